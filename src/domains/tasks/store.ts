import { randomUUID } from "node:crypto";
import { targetKey } from "../../events/event-log.js";
import type { Sql } from "../../db/sql.js";
import type { EventName } from "../../protocol/events.js";
import { roomNames } from "../../protocol/rooms.js";
import type { SubmitTaskInput } from "./service.js";
import { TRANSITIONS, type TransitionName } from "./state-machine.js";
import { isoSql, taskViewSql, type TaskRow } from "./view.js";

/*
 * The task store: the only SQL that writes task state. Every write is ONE statement that also writes the
 * event announcing it to the outbox, built by PostgreSQL from the row it just wrote, so the change and its event
 * commit together (or not at all). Publishing the event afterwards is the caller's job (EventPublisher.relay).
 */

/** The rooms of a task's events, as outbox targets built from the row (task.assigned also goes to /pools). */
function taskTargetsSql(t: string, alsoInPools: boolean): string {
  const literal = (namespace: "tasks" | "pools", room: string) => `'${targetKey({ namespace, room })}'`;
  const targets = [
    literal("tasks", roomNames.tasks()),
    `${literal("tasks", roomNames.task(""))} || ${t}."id"`,
    `${literal("tasks", roomNames.pool(""))} || ${t}."poolId"`,
  ];
  // Pool dashboards watch assignments too: who took what.
  if (alsoInPools) targets.push(`${literal("pools", roomNames.pool(""))} || ${t}."poolId"`);
  return `ARRAY[${targets.join(", ")}]::text[]`;
}

const NOW_UTC = `(now() AT TIME ZONE 'UTC')`;
/** An event's time: the real current time, not the transaction's start (the outbox relay compares with it). */
const EVENT_TS = `(clock_timestamp() AT TIME ZONE 'UTC')`;


/** The columns a transition may set besides the status, and how each is passed to SQL. */
const COLUMN_KIND = {
  workerId: "plain",
  attempts: "plain",
  lease: "plain",
  requeues: "plain",
  queuedAt: "time",
  startedAt: "time",
  finishedAt: "time",
  result: "json",
  error: "json",
} as const;
export type TaskChanges = Partial<Record<keyof typeof COLUMN_KIND, unknown>>;

/** Conditions a transition needs besides the state machine's. */
export interface TransitionGuard {
  /** A pool worker may only touch its own pool's tasks (and the queue a report's lease belongs to). */
  poolId?: string;
  /** The attempt's lease, as bound by `assigned`: reports of any other attempt are refused. */
  lease?: string;
  /** The change binds this lease: refused when the task already has it (a re-sent claim changes nothing). */
  newLease?: string;
  /** Optimistic check for the reconciler: the row must still be exactly as it was read. */
  updatedAt?: Date;
}

/** A committed transition: the new row and the outbox rows of its event, to be numbered and broadcast. */
export interface TransitionResult {
  task: TaskRow | null;
  outboxIds: string[];
}

/**
 * Inserts a task directly as `queued` together with its task.created and task.queued events, in one statement
 * on `db` (the pool, or a Prisma transaction for workflow steps). The row is the durable enqueue intent: the BullMQ job is
 * added from it after the commit. `task` is null when the Idempotency-Key is already taken.
 */
export async function insertQueuedTask(
  db: Sql,
  tenantId: string,
  input: Omit<SubmitTaskInput, "poolId"> & { poolId: string },
  extra: { idempotencyKey: string | null; requestHash: string | null; workflowId?: string; stepKey?: string; id?: string },
): Promise<TransitionResult> {
  const rows = await db.query<Array<TaskRow & { outboxIds: string[] }>>(
    `WITH inserted AS (
       INSERT INTO "Task" ("id", "tenantId", "poolId", "type", "payload", "status", "priority", "maxAttempts", "timeoutMs",
                           "idempotencyKey", "requestHash", "workflowId", "stepKey", "createdAt", "updatedAt", "queuedAt")
       VALUES ($1, $2, $3, $4, $5::jsonb, 'queued', $6, $7, $8, $9, $10, $11, $12, ${NOW_UTC}, ${NOW_UTC}, ${NOW_UTC})
       ON CONFLICT ("tenantId", "idempotencyKey") DO NOTHING
       RETURNING *
     ), staged AS (
       INSERT INTO "Outbox" ("tenantId", "eventId", "type", "targets", "data", "ts")
       SELECT i."tenantId", e.event_id, e.type, ${taskTargetsSql("i", false)},
              jsonb_build_object('task', ${taskViewSql("i")} || e.patch), ${EVENT_TS}
       FROM inserted i CROSS JOIN (VALUES
         (1, $13, $15, '{"status":"created","queuedAt":null}'::jsonb),
         (2, $14, $16, '{}'::jsonb)) AS e(n, event_id, type, patch)
       ORDER BY e.n
       RETURNING "id"
     )
     -- Ordered as numbers, then cast: "id"::text in the select list would make ORDER BY "id" sort the text, and
     -- at 999 → 1000 a task's events would be numbered in reverse.
     SELECT i.*, ARRAY(SELECT "id" FROM staged ORDER BY "id")::text[] AS "outboxIds" FROM inserted i`,
    [
    extra.id ?? randomUUID(),
    tenantId,
    input.poolId,
    input.type,
    JSON.stringify(input.payload ?? {}),
    input.priority,
    input.maxAttempts,
    input.timeoutMs ?? null,
    extra.idempotencyKey,
    extra.requestHash,
    extra.workflowId ?? null,
    extra.stepKey ?? null,
    randomUUID(),
    randomUUID(),
    "task.created" satisfies EventName,
    "task.queued" satisfies EventName,
    ],
  );
  const row = rows[0];
  if (!row) return { task: null, outboxIds: [] };
  const { outboxIds, ...task } = row;
  return { task, outboxIds };
}


/** One UPDATE … RETURNING that also writes the event to the outbox, on `db` (the client or a transaction). */
export async function writeTransition(
  db: Sql,
  tenantId: string,
  taskId: string,
  change: TransitionName,
  data: TaskChanges,
  guard: TransitionGuard,
  eventExtra: Record<string, unknown> = {},
): Promise<TransitionResult> {
  const rule = TRANSITIONS[change];
  const params: unknown[] = [taskId, tenantId, [...rule.from], rule.to];
  const sets = [`"status" = $4`, `"updatedAt" = ${NOW_UTC}`];
  for (const [column, value] of Object.entries(data) as Array<[keyof TaskChanges, unknown]>) {
    params.push(value instanceof Date ? value.toISOString() : COLUMN_KIND[column] === "json" ? (value === null ? null : JSON.stringify(value)) : value);
    const placeholder = `$${params.length}`;
    const kind = COLUMN_KIND[column];
    sets.push(`"${column}" = ${kind === "json" ? `${placeholder}::jsonb` : kind === "time" ? `(${placeholder}::timestamptz AT TIME ZONE 'UTC')` : placeholder}`);
  }
  const conditions = [`"id" = $1`, `"tenantId" = $2`, `"status" = ANY($3::text[])`];
  const condition = (sql: (placeholder: string) => string, value: unknown): void => {
    params.push(value);
    conditions.push(sql(`$${params.length}`));
  };
  if (guard.poolId !== undefined) condition((p) => `"poolId" = ${p}`, guard.poolId);
  if (guard.lease !== undefined) condition((p) => `"lease" = ${p}`, guard.lease);
  if (guard.newLease !== undefined) condition((p) => `"lease" IS DISTINCT FROM ${p}`, guard.newLease);
  if (guard.updatedAt !== undefined) condition((p) => `"updatedAt" = (${p}::timestamptz AT TIME ZONE 'UTC')`, guard.updatedAt.toISOString());
  params.push(JSON.stringify(eventExtra));
  const extra = `$${params.length}::jsonb`;
  // The events of this change, in order; `patch` rewrites the new row's view for an event that describes an
  // earlier moment of the same change (a claim is assignment and start at once: its task.assigned shows the
  // task as it was assigned, before the start set attempts and startedAt).
  const events: Array<{ type: string; patch: string }> = [];
  if (rule.first) {
    events.push({ type: rule.first, patch: `jsonb_build_object('status', 'assigned', 'attempts', o."attempts", 'startedAt', ${isoSql(`o."startedAt"`)})` });
  }
  events.push({ type: rule.event, patch: `'{}'::jsonb` });
  const rowsSql = events.map((event, i) => {
    params.push(randomUUID(), event.type);
    return `(${i + 1}, $${params.length - 1}, $${params.length}, ${event.patch})`;
  });
  const eventData =
    change === "progress"
      ? `jsonb_build_object('taskId', u."id", 'status', u."status") || ${extra}`
      : `jsonb_build_object('task', ${taskViewSql("u")} || e.patch) || ${extra}`;
  const rows = await db.query<Array<TaskRow & { outboxIds: string[] }>>(
    `WITH ${rule.first ? `old AS (SELECT "attempts", "startedAt" FROM "Task" WHERE "id" = $1 AND "tenantId" = $2), ` : ""}updated AS (
       UPDATE "Task" SET ${sets.join(", ")} WHERE ${conditions.join(" AND ")} RETURNING *
     ), staged AS (
       INSERT INTO "Outbox" ("tenantId", "eventId", "type", "targets", "data", "ts")
       SELECT u."tenantId", e.event_id, e.type,
              CASE WHEN e.type = 'task.assigned' THEN ${taskTargetsSql("u", true)} ELSE ${taskTargetsSql("u", false)} END,
              ${eventData}, ${EVENT_TS}
       FROM updated u${rule.first ? " CROSS JOIN old o" : ""} CROSS JOIN LATERAL (VALUES ${rowsSql.join(", ")}) AS e(n, event_id, type, patch)
       ORDER BY e.n
       RETURNING "id"
     )
     SELECT u.*, ARRAY(SELECT "id" FROM staged ORDER BY "id")::text[] AS "outboxIds" FROM updated u`,
    params,
  );
  const row = rows[0];
  if (!row) return { task: null, outboxIds: [] };
  const { outboxIds, ...task } = row;
  return { task, outboxIds };
}
