import { z } from "zod";

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

/** Text PostgreSQL can store: it refuses NUL characters in text and jsonb. */
export const storableText = (max: number) => z.string().max(max).refine((text) => !text.includes("\u0000"), "must not contain NUL characters");

const TaskErrorSchema = z.object({ message: storableText(4000), code: storableText(64), retryable: z.boolean() });
const taskId = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/);
const attempt = z.number().int().min(1).max(1000);

/** Validates a report arriving over the wire from a standalone pool worker. */
export const TaskReportSchema: z.ZodType<TaskReport> = z.discriminatedUnion("kind", [
  z.object({ taskId, kind: z.literal("assigned"), attempt, workerId: z.string().min(1).max(200) }),
  z.object({ taskId, kind: z.literal("started"), attempt }),
  z.object({ taskId, kind: z.literal("progress"), progress: z.number().min(0).max(100), detail: storableText(1000).optional() }),
  z.object({ taskId, kind: z.literal("retrying"), attempt, error: TaskErrorSchema, nextAttemptInMs: z.number().int().min(0) }),
  z.object({ taskId, kind: z.literal("completed"), result: z.json() }),
  z.object({ taskId, kind: z.literal("failed"), attempt, error: TaskErrorSchema }),
  z.object({ taskId, kind: z.literal("cancelled") }),
]) as z.ZodType<TaskReport>;
