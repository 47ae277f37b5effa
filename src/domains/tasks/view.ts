import type { TaskError, TaskStatus } from "../../protocol/tasks.js";
import type { TaskView } from "../../protocol/views.js";

/** A task row as PostgreSQL returns it, and the task as clients see it (REST and every task event). */

export interface TaskRow {
  id: string;
  tenantId: string;
  poolId: string;
  type: string;
  payload: unknown;
  status: string;
  priority: number;
  maxAttempts: number;
  attempts: number;
  timeoutMs: number | null;
  result: unknown;
  error: unknown;
  workerId: string | null;
  workflowId: string | null;
  stepKey: string | null;
  scheduleId: string | null;
  createdAt: Date;
  updatedAt: Date;
  queuedAt: Date | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  lease: string | null;
  requeues: number;
  retries: number;
}

export function serializeTask(task: TaskRow): TaskView {
  return {
    id: task.id,
    type: task.type,
    poolId: task.poolId,
    status: task.status as TaskStatus,
    payload: task.payload,
    priority: task.priority,
    maxAttempts: task.maxAttempts,
    attempts: task.attempts,
    retries: task.retries,
    timeoutMs: task.timeoutMs,
    result: task.result ?? null,
    error: (task.error ?? null) as TaskError | null,
    workerId: task.workerId,
    workflowId: task.workflowId,
    stepKey: task.stepKey,
    scheduleId: task.scheduleId,
    createdAt: task.createdAt.toISOString(),
    updatedAt: task.updatedAt.toISOString(),
    queuedAt: task.queuedAt?.toISOString() ?? null,
    startedAt: task.startedAt?.toISOString() ?? null,
    finishedAt: task.finishedAt?.toISOString() ?? null,
  };
}
export type { TaskView };

/**
 * The same view as serializeTask, built by PostgreSQL from a row, so a state change's event is written in the
 * statement that makes the change. Timestamps are stored as UTC `timestamp(3)`; to_char gives what
 * Date#toISOString gives. Kept next to serializeTask, and test/task-view.test.ts checks the two agree.
 */
/** A `timestamp(3)` column (stored as UTC) as Date#toISOString would print it; NULL stays NULL. */
export function isoSql(column: string): string {
  return `to_char(${column}, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
}

export function taskViewSql(t: string): string {
  return `(${taskEventViewSql(t)} || jsonb_build_object('payload', ${t}."payload", 'result', ${t}."result"))`;
}

/** The task as its events show it (TaskEventView): the view without payload and result. */
export function taskEventViewSql(t: string): string {
  const iso = (column: string) => isoSql(`${t}."${column}"`);
  return `jsonb_build_object(
    'id', ${t}."id", 'type', ${t}."type", 'poolId', ${t}."poolId", 'status', ${t}."status",
    'priority', ${t}."priority", 'maxAttempts', ${t}."maxAttempts", 'attempts', ${t}."attempts", 'retries', ${t}."retries",
    'timeoutMs', ${t}."timeoutMs",
    'error', ${t}."error", 'workerId', ${t}."workerId", 'workflowId', ${t}."workflowId",
    'stepKey', ${t}."stepKey", 'scheduleId', ${t}."scheduleId", 'createdAt', ${iso("createdAt")}, 'updatedAt', ${iso("updatedAt")},
    'queuedAt', ${iso("queuedAt")}, 'startedAt', ${iso("startedAt")}, 'finishedAt', ${iso("finishedAt")})`;
}

type TimeColumn = "createdAt" | "updatedAt" | "queuedAt" | "startedAt" | "finishedAt";

/**
 * A task row PostgreSQL returned as jsonb (`to_jsonb` of the row, from a batched write): timestamps come as
 * UTC without a zone ("2026-12-07T03:16:29.123") and become Dates, as node-postgres' own reading of the row would.
 */
export function taskRowFromJson(value: unknown): TaskRow {
  const row = value as Record<string, unknown>;
  const time = (v: unknown): Date | null => (typeof v === "string" ? new Date(/[zZ]|[+-]\d\d:\d\d$/.test(v) ? v : `${v}Z`) : null);
  const task = {
    id: row.id,
    tenantId: row.tenantId,
    poolId: row.poolId,
    type: row.type,
    payload: row.payload ?? null,
    status: row.status,
    priority: row.priority,
    maxAttempts: row.maxAttempts,
    attempts: row.attempts,
    timeoutMs: row.timeoutMs ?? null,
    result: row.result ?? null,
    error: row.error ?? null,
    workerId: row.workerId ?? null,
    workflowId: row.workflowId ?? null,
    stepKey: row.stepKey ?? null,
    scheduleId: row.scheduleId ?? null,
    lease: row.lease ?? null,
    requeues: row.requeues,
    retries: row.retries ?? 0,
  } as Omit<TaskRow, TimeColumn>;
  return {
    ...task,
    createdAt: time(row.createdAt)!,
    updatedAt: time(row.updatedAt)!,
    queuedAt: time(row.queuedAt),
    startedAt: time(row.startedAt),
    finishedAt: time(row.finishedAt),
  };
}
