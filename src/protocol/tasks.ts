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

/** Text PostgreSQL can store: it refuses NUL characters in text and jsonb. */
export const storableText = (max: number) => z.string().max(max).refine((text) => !text.includes("\u0000"), "must not contain NUL characters");

const TaskErrorSchema = z.object({ message: storableText(4000), code: storableText(64), retryable: z.boolean() });
const taskId = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/);
const attempt = z.number().int().min(1).max(1000);
const lease = z.string().min(3).max(300).refine((value) => leaseLockToken(value) !== null, "must be <lock token>#<attempt>");

/** Validates a report arriving over the wire from a standalone pool worker. */
export const TaskReportSchema: z.ZodType<TaskReport> = z.discriminatedUnion("kind", [
  z.object({ taskId, lease, kind: z.literal("assigned"), attempt, workerId: z.string().min(1).max(200) }),
  z.object({ taskId, lease, kind: z.literal("started"), attempt, workerId: z.string().min(1).max(200).optional() }),
  z.object({ taskId, lease, kind: z.literal("progress"), progress: z.number().min(0).max(100), detail: storableText(1000).optional() }),
  z.object({ taskId, lease, kind: z.literal("retrying"), attempt, error: TaskErrorSchema, nextAttemptInMs: z.number().int().min(0) }),
  z.object({ taskId, lease, kind: z.literal("completed"), result: z.json() }),
  z.object({ taskId, lease, kind: z.literal("failed"), attempt, error: TaskErrorSchema }),
  z.object({ taskId, lease, kind: z.literal("cancelled") }),
]) as z.ZodType<TaskReport>;
