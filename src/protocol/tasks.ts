/** Task states, shared by the server, the pool workers and clients. */
export const TASK_STATUSES = ["created", "queued", "assigned", "started", "retrying", "completed", "failed", "cancelled"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const TERMINAL_STATUSES: ReadonlySet<TaskStatus> = new Set(["completed", "failed", "cancelled"]);

export function isTerminal(status: string): boolean {
  return TERMINAL_STATUSES.has(status as TaskStatus);
}

export const BUILTIN_TASK_TYPES = ["echo", "sleep", "fail"] as const;

export interface TaskError {
  message: string;
  /** TIMEOUT, CANCELLED, HANDLER_ERROR, UNKNOWN_TYPE, WORKER_LOST … */
  code: string;
  retryable: boolean;
}

/** What a pool worker tells the server about a task it executes; the server decides what is stored and published. */
export type TaskReport =
  | { taskId: string; kind: "assigned"; attempt: number; workerId: string }
  | { taskId: string; kind: "started"; attempt: number }
  | { taskId: string; kind: "progress"; progress: number; detail?: string }
  | { taskId: string; kind: "retrying"; attempt: number; error: TaskError; nextAttemptInMs: number }
  | { taskId: string; kind: "completed"; result: unknown }
  | { taskId: string; kind: "failed"; attempt: number; error: TaskError }
  | { taskId: string; kind: "cancelled" };

export type TaskReportKind = TaskReport["kind"];

/** The server's answer to a report: `accepted` false when the report no longer applies (e.g. the task was cancelled). */
export interface TaskReportReply {
  accepted: boolean;
  status: TaskStatus;
}

/** What a BullMQ job carries: everything a worker without database access needs to run the task. */
export interface TaskJobData {
  tenantId: string;
  taskId: string;
  poolId: string;
  type: string;
  payload: unknown;
  timeoutMs: number | null;
  maxAttempts: number;
}
