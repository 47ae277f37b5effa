import type { TaskReportKind, TaskStatus } from "../../protocol/tasks.js";

/**
 * The task state machine, in one place. For each change, the states it may start from; anything else is
 * refused. `assigned` may follow `started` or `assigned` because BullMQ hands a stalled job (its worker
 * died) to another worker; `progress` leaves the state as it is.
 */
export const TRANSITIONS: Record<"queued" | TaskReportKind, { from: readonly TaskStatus[]; to: TaskStatus }> = {
  queued: { from: ["created"], to: "queued" },
  assigned: { from: ["queued", "retrying", "assigned", "started"], to: "assigned" },
  started: { from: ["assigned"], to: "started" },
  progress: { from: ["started"], to: "started" },
  retrying: { from: ["assigned", "started"], to: "retrying" },
  completed: { from: ["started"], to: "completed" },
  failed: { from: ["created", "queued", "assigned", "started", "retrying"], to: "failed" },
  cancelled: { from: ["created", "queued", "assigned", "started", "retrying"], to: "cancelled" },
};

export type TransitionName = keyof typeof TRANSITIONS;

export function canTransition(from: TaskStatus, change: TransitionName): boolean {
  return TRANSITIONS[change].from.includes(from);
}
