import type { EventsOf } from "../../protocol/events.js";
import type { TaskReportKind, TaskStatus } from "../../protocol/tasks.js";

const OPEN: readonly TaskStatus[] = ["created", "queued", "assigned", "started", "retrying"];

/**
 * The task state machine, in one place. For each change, the states it may start from, the state it leads to
 * and the event that announces it; anything else is refused. `assigned` may follow `started` or `assigned`
 * because BullMQ hands a stalled job (its worker died) to another worker; `progress` leaves the state as it is.
 * `claimed` is `assigned` and `started` at once (a worker's first report of an attempt).
 * `requeued` and `settled` are the reconciler's: a task whose job Redis lost goes back on its queue, and a task
 * whose job BullMQ finished without the worker's report getting through takes the job's outcome.
 */
export const TRANSITIONS: Record<
  "queued" | "requeued" | "settled" | "claimed" | "retried" | TaskReportKind,
  { from: readonly TaskStatus[]; to: TaskStatus; event: EventsOf<"tasks">; first?: "task.assigned" | "task.retried" }
> = {
  queued: { from: ["created"], to: "queued", event: "task.queued" },
  requeued: { from: ["queued", "assigned", "started", "retrying"], to: "queued", event: "task.queued" },
  assigned: { from: ["queued", "retrying", "assigned", "started"], to: "assigned", event: "task.assigned" },
  started: { from: ["assigned"], to: "started", event: "task.started" },
  /** Assigned and started in one report (and one statement): both events are stored, task.assigned first. */
  claimed: { from: ["queued", "retrying", "assigned", "started"], to: "started", event: "task.started", first: "task.assigned" },
  progress: { from: ["started"], to: "started", event: "task.progress" },
  retrying: { from: ["assigned", "started"], to: "retrying", event: "task.retrying" },
  completed: { from: ["started"], to: "completed", event: "task.completed" },
  settled: { from: OPEN, to: "completed", event: "task.completed" },
  failed: { from: OPEN, to: "failed", event: "task.failed" },
  cancelled: { from: OPEN, to: "cancelled", event: "task.cancelled" },
  /** An operator's retry of a task that failed or was cancelled: back to queued, attempts starting over. */
  retried: { from: ["failed", "cancelled"], to: "queued", event: "task.queued", first: "task.retried" },
};

export type TransitionName = keyof typeof TRANSITIONS;

/**
 * The states a committed change moved its task into, in order (a claim is assignment and start at once); none
 * for progress, which leaves the state as it is. `inserted` is a new task: created and queued in one statement.
 */
export function statusesEntered(change: TransitionName | "inserted"): TaskStatus[] {
  if (change === "inserted") return ["created", "queued"];
  const rule = TRANSITIONS[change];
  if (rule.event === "task.progress") return [];
  return rule.first === "task.assigned" ? ["assigned", rule.to] : [rule.to];
}

export function canTransition(from: TaskStatus, change: TransitionName): boolean {
  return TRANSITIONS[change].from.includes(from);
}
