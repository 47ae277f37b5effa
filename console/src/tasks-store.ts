import { applyTaskEvent, isEvent, type RoomEvent, type TaskEventView, type TaskView } from "../../src/client/index.js";
import type { TaskStatus } from "../../src/protocol/tasks.js";
import { Observable } from "./observable.js";

export interface TaskEntry {
  task: TaskView;
  /** The last task.progress of the current attempt (REST does not keep progress: unknown until one arrives). */
  progress: number | null;
  progressDetail: string | null;
}

export const TASK_STATUS_LIST: readonly TaskStatus[] = [
  "created",
  "queued",
  "assigned",
  "started",
  "retrying",
  "completed",
  "failed",
  "cancelled",
];
const TERMINAL: ReadonlySet<TaskStatus> = new Set(["completed", "failed", "cancelled"]);
/** A new attempt starts over: the previous attempt's progress no longer says anything. */
const RESETS_PROGRESS: ReadonlySet<string> = new Set(["task.queued", "task.assigned", "task.started", "task.retrying"]);
/** How many tasks the tab keeps: the oldest finished ones go first. */
const KEEP = 500;

export function isTerminal(status: TaskStatus): boolean {
  return TERMINAL.has(status);
}

/** The tenant's tasks as the `tasks` room tells them, on top of `GET /api/v1/tasks`. */
export class TaskStore extends Observable {
  readonly byId = new Map<string, TaskEntry>();
  /** `<workflowId>|<stepKey>` → task id: a workflow step's live status comes from its task. */
  private readonly byStep = new Map<string, string>();

  /** The snapshot replaces everything (first load, or after the room's history was lost). */
  reset(tasks: TaskView[]): void {
    this.byId.clear();
    this.byStep.clear();
    for (const task of tasks) this.put(task, null);
    this.changed();
  }

  /** Tasks read later (a filter's own query) only fill in what the store does not have: events are newer. */
  merge(tasks: TaskView[]): void {
    let added = false;
    for (const task of tasks) {
      if (this.byId.has(task.id)) continue;
      this.put(task, null);
      added = true;
    }
    if (added) this.trimAndNotify();
  }

  apply(event: RoomEvent<"tasks">): void {
    if (isEvent(event, "task.progress")) {
      const entry = this.byId.get(event.data.taskId);
      if (!entry || isTerminal(entry.task.status)) return;
      entry.progress = event.data.progress;
      entry.progressDetail = event.data.detail;
      this.changed();
      return;
    }
    // Every other built-in task event carries the task as stored by the change it announces (payload and result
    // only in the events about them: the rest is kept from what the store knew).
    const update = event.type.startsWith("task.") ? (event.data as { task?: TaskEventView }).task : undefined;
    if (!update) return;
    const previous = this.byId.get(update.id);
    const task = applyTaskEvent(previous?.task, update);
    const progress = task.status === "completed" ? 100 : RESETS_PROGRESS.has(event.type) ? null : (previous?.progress ?? null);
    this.put(task, progress, progress === null ? null : (previous?.progressDetail ?? null));
    this.trimAndNotify();
  }

  forStep(workflowId: string, stepKey: string): TaskEntry | undefined {
    const id = this.byStep.get(`${workflowId}|${stepKey}`);
    return id === undefined ? undefined : this.byId.get(id);
  }

  /** The task a worker is on: assigned to it or started by it, not finished. */
  currentOf(workerId: string): TaskEntry | undefined {
    for (const entry of this.byId.values()) {
      if (entry.task.workerId === workerId && (entry.task.status === "assigned" || entry.task.status === "started")) return entry;
    }
    return undefined;
  }

  /** Newest first, optionally only one pool's and one status'. */
  list(filter: { poolId?: string; status?: TaskStatus }): TaskEntry[] {
    return [...this.byId.values()]
      .filter(
        (e) =>
          (filter.poolId === undefined || e.task.poolId === filter.poolId) &&
          (filter.status === undefined || e.task.status === filter.status),
      )
      .sort((a, b) => b.task.createdAt.localeCompare(a.task.createdAt) || b.task.id.localeCompare(a.task.id));
  }

  private put(task: TaskView, progress: number | null, progressDetail: string | null = null): void {
    this.byId.set(task.id, { task, progress: task.status === "completed" ? 100 : progress, progressDetail });
    if (task.workflowId && task.stepKey) this.byStep.set(`${task.workflowId}|${task.stepKey}`, task.id);
  }

  private trimAndNotify(): void {
    if (this.byId.size > KEEP) {
      const finished = [...this.byId.values()]
        .filter((e) => isTerminal(e.task.status))
        .sort((a, b) => a.task.createdAt.localeCompare(b.task.createdAt));
      for (const entry of finished.slice(0, this.byId.size - KEEP)) this.byId.delete(entry.task.id);
    }
    this.changed();
  }
}
