import type { TaskError, TaskStatus } from "./tasks.js";
import type { WorkerStatus } from "./workers.js";

/*
 * Resources as clients see them: REST answers (`{ task }`, `{ pool }`, `{ workflow }`, lists) and the
 * payloads of events. Declared here once; the server's serializers are typed with them, and tests and the
 * client helper import them instead of re-declaring them. Timestamps are ISO-8601 strings.
 */

export interface TaskView {
  id: string;
  type: string;
  poolId: string;
  status: TaskStatus;
  payload: unknown;
  priority: number;
  maxAttempts: number;
  /** Runs started (a run cut short by a dead worker counts, but not against maxAttempts); a retry starts over at 0. */
  attempts: number;
  /** How often the task was retried by hand (`POST /api/v1/tasks/:id/retry`) after it failed or was cancelled. */
  retries: number;
  timeoutMs: number | null;
  result: unknown;
  error: TaskError | null;
  workerId: string | null;
  workflowId: string | null;
  stepKey: string | null;
  /** The schedule whose due time created this task, if one did. */
  scheduleId: string | null;
  createdAt: string;
  updatedAt: string;
  queuedAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
}

/**
 * A task as its events show it: without the two fields of unbounded size, `payload` and `result`, except in the
 * event that is about them: `task.created` carries the payload, `task.completed` the result. The task read over
 * REST has both. `applyTaskEvent` keeps a full view up to date from events.
 */
export type TaskEventView = Omit<TaskView, "payload" | "result"> & Partial<Pick<TaskView, "payload" | "result">>;

/**
 * The full view after an event: the event's fields over what was known before, `payload` and `result` kept from
 * before when the event does not carry them (null when never seen: a view built from events alone has the
 * payload once it saw task.created, and the result once it saw task.completed).
 */
export function applyTaskEvent(previous: TaskView | undefined, task: TaskEventView): TaskView {
  return {
    ...task,
    payload: "payload" in task ? task.payload : (previous?.payload ?? null),
    result: "result" in task ? task.result : task.status === "completed" ? (previous?.result ?? null) : null,
  };
}

export interface PoolView {
  id: string;
  name: string;
  description: string | null;
  desiredWorkers: number;
  status: string;
  /** A paused pool starts no new task; running ones finish. */
  paused: boolean;
  /** At most this many of the pool's tasks are assigned or started at once, across all workers; null: unbounded. */
  maxConcurrency: number | null;
  /**
   * Autoscaling: with `targetQueuedPerWorker` set, the hub sets `desiredWorkers` to ceil(queued and running tasks
   * / targetQueuedPerWorker), within `minWorkers` and `maxWorkers` (null: 0 / no bound), and announces `pool.scaling`.
   */
  minWorkers: number | null;
  maxWorkers: number | null;
  targetQueuedPerWorker: number | null;
  createdAt: string;
  updatedAt: string;
}

export interface WorkerView {
  id: string;
  status: WorkerStatus;
  detail: string | null;
  /** The node the worker last spoke to. */
  node: string | null;
  version: string | null;
  lastHeartbeatAt: string;
}

/** `GET /api/v1/pools/:id`. */
export interface PoolWithWorkersView extends PoolView {
  workers: WorkerView[];
}

export type WorkflowStatus = "running" | "completed" | "failed" | "cancelled";
export type WorkflowStepStatus = "pending" | "queued" | "running" | "completed" | "failed" | "cancelled";

export interface WorkflowView {
  id: string;
  name: string;
  status: WorkflowStatus;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

export interface WorkflowStepView {
  key: string;
  type: string;
  payload: unknown;
  dependsOn: string[];
  status: WorkflowStepStatus;
  taskId: string | null;
}

/** `GET /api/v1/workflows/:id`: the steps with a summary of each one's task. */
export interface WorkflowWithStepsView extends WorkflowView {
  steps: Array<WorkflowStepView & { task: Pick<TaskView, "id" | "status" | "attempts" | "result" | "error"> | null }>;
}

/** Counts of a pool's workers by status, and its waiting jobs (`null` when Redis could not say). */
export interface PoolStatusView {
  poolId: string;
  workers: Record<WorkerStatus, number>;
  queueDepth: number | null;
}

/** What each due time of a schedule submits: the fields of `POST /api/v1/tasks`, defaults filled in. */
export interface ScheduleTaskTemplate {
  type: string;
  payload: unknown;
  poolId: string;
  priority: number;
  maxAttempts: number;
  timeoutMs: number | null;
}

/** A recurring task: exactly one of `every` (ms) and `cron` (5 fields, read in `timezone`, UTC when null). */
export interface ScheduleView {
  id: string;
  name: string;
  task: ScheduleTaskTemplate;
  every: number | null;
  cron: string | null;
  timezone: string | null;
  paused: boolean;
  /** The next due time; null while paused (or when Redis could not say). */
  nextRunAt: string | null;
  createdAt: string;
  updatedAt: string;
}
