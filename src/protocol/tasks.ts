/** Task states, shared by the server, the pool workers and clients. */
export const TASK_STATUSES = ["created", "queued", "assigned", "started", "retrying", "completed", "failed", "cancelled"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const TERMINAL_STATUSES: ReadonlySet<TaskStatus> = new Set(["completed", "failed", "cancelled"]);

export function isTerminal(status: string): boolean {
  return TERMINAL_STATUSES.has(status as TaskStatus);
}

export const BUILTIN_TASK_TYPES = ["echo", "sleep", "fail"] as const;

/** The longest texts a task report may carry: the server refuses longer ones, and workers cut theirs to fit. */
export const MAX_TASK_ERROR_MESSAGE = 4000;
export const MAX_TASK_ERROR_STACK = 4000;
export const MAX_PROGRESS_DETAIL = 1000;
/** MAX_PAYLOAD_BYTES when a node does not set it: the largest message it takes from a socket. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1_048_576;

export interface TaskError {
  message: string;
  /** TIMEOUT, CANCELLED, HANDLER_ERROR, UNKNOWN_TYPE, WORKER_LOST … */
  code: string;
  retryable: boolean;
  /** Where a handler's error was thrown (its `stack`, cut to MAX_TASK_ERROR_STACK), when the worker knows it. */
  stack?: string;
}

/**
 * What a pool worker tells the server about a task it executes; the server decides what is stored and published.
 * Every report carries the attempt's lease, `"<BullMQ lock token>#<attempt>"`: `assigned` binds it to the task
 * (the server checks that the token holds the job's lock in Redis, so only the worker that took the job from
 * the queue can claim it), and every later report must carry the bound lease, so stale and forged reports
 * change nothing.
 */
export type TaskReport = { taskId: string; lease: string } & (
  | { kind: "assigned"; attempt: number; workerId: string }
  /** With `workerId`: the attempt's first report, assignment and start at once (a claim; binds the lease). */
  | { kind: "started"; attempt: number; workerId?: string }
  | { kind: "progress"; progress: number; detail?: string }
  | { kind: "retrying"; attempt: number; error: TaskError; nextAttemptInMs: number }
  | { kind: "completed"; result: unknown }
  | { kind: "failed"; attempt: number; error: TaskError }
  | { kind: "cancelled" }
);

/** The lease of one attempt: BullMQ's lock token for the job, and BullMQ's count of started attempts. */
export function formatLease(lockToken: string, attemptsStarted: number): string {
  return `${lockToken}#${attemptsStarted}`;
}

/** The lock token inside a lease (tokens may contain ':' but never end in "#<digits>"). */
export function leaseLockToken(lease: string): string | null {
  const match = /^(.+)#\d{1,9}$/.exec(lease);
  return match ? match[1]! : null;
}

export type TaskReportKind = TaskReport["kind"];

/** The server's answer to a report: `accepted` false when the report no longer applies (e.g. the task was cancelled). */
export interface TaskReportReply {
  accepted: boolean;
  status: TaskStatus;
}

/** What a BullMQ job carries: everything a worker without database access needs to run the task. */
/**
 * Hub mode: a worker that takes its jobs over its Socket.IO connection (it never connects to Redis). It grants the
 * node credit (`worker.credit`), the node takes BullMQ jobs on its behalf up to that credit, holds their locks,
 * reports every step, and sends each job as a `task.run`; the worker answers with `task.done`.
 */
export interface WorkerCredit {
  /** More jobs the worker is ready to take now (each `task.run` uses one). */
  credit: number;
}
export interface TaskRun {
  taskId: string;
  type: string;
  payload: unknown;
  /** The attempt this run is (1 for the first). */
  attempt: number;
  /** The task's timeout; the node also enforces it (and sends `task.cancel` with `reason: "timeout"`). */
  timeoutMs: number | null;
}
export interface TaskRunCancel {
  taskId: string;
  /** `cancelled` by a user, over its `timeout`, or `lost`: the node gave up the job (it will run elsewhere). */
  reason: "cancelled" | "timeout" | "lost";
}
export interface TaskRunProgress {
  taskId: string;
  /** 0-100. */
  progress: number;
  detail?: string;
}
/** How a run ended: its result, or an error (`retryable` unless said otherwise; the node decides about retries). */
export type TaskRunOutcome =
  { taskId: string; result: unknown } | { taskId: string; error: { message: string; code?: string; retryable?: boolean; stack?: string } };
/** The node's answer to `task.done`: `accepted: false` when it no longer holds the run (the worker drops it). */
export interface TaskRunReply {
  accepted: boolean;
}

export interface TaskJobData {
  tenantId: string;
  taskId: string;
  poolId: string;
  type: string;
  payload: unknown;
  timeoutMs: number | null;
  maxAttempts: number;
  /** Runs the task had already started before this job (a job re-added after Redis lost the first one). */
  attemptOffset?: number;
}
