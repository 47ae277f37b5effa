import { randomUUID } from "node:crypto";
import { targetSql } from "../../events/outbox.js";
import type { StateChangeKind } from "../../events/state-change.js";
import type { EventName } from "../../protocol/events.js";
import { roomNames } from "../../protocol/rooms.js";
import type { SubmitTaskInput } from "./submission.js";
import { TRANSITIONS, type TransitionName } from "./state-machine.js";
import { isoSql, taskEventViewSql, taskRowFromJson, type TaskRow } from "./view.js";

/*
 * The task store: the only SQL that writes task state. A write is a `TaskWrite`, and `TASK_WRITES` turns a
 * batch of them into SQL that the event log runs inside its numbering statement (EventLogWriter.write): the rows are
 * inserted or updated, and the events announcing them are built by PostgreSQL from the rows just written and
 * stored and numbered in the same statement, so a change and its events commit together (or not at all), and a
 * node's concurrent task changes share one statement (group commit). Inside a workflow's transaction the same SQL
 * stages the events in the outbox instead (stageChange, src/events/outbox.ts).
 *
 * What an event carries: the task without its two unbounded fields, except the one the event is about: the
 * payload in task.created, the result in task.completed (the error, bounded by the report limits, is in every
 * event). The task itself (REST) has them all. So a task's payload and result are each stored once in its
 * events, not once per event and room.
 */

/** The rooms of a task's event `type`, as event targets built from the row (task.assigned also goes to /pools). */
function taskTargetsSql(t: string, type: string): string {
  const targets = [
    targetSql("tasks", roomNames.tasks()),
    targetSql("tasks", roomNames.task(""), `${t}."id"`),
    targetSql("tasks", roomNames.pool(""), `${t}."poolId"`),
  ];
  // Pool dashboards watch assignments too: who took what.
  const assigned: EventName = "task.assigned";
  return `(ARRAY[${targets.join(", ")}]::text[] || CASE WHEN ${type} = '${assigned}' THEN ARRAY[${targetSql("pools", roomNames.pool(""), `${t}."poolId"`)}] ELSE '{}'::text[] END)`;
}

/** The big field an event of `type` adds to the task's event view: the one it is about. */
function eventFieldSql(t: string, type: string): string {
  return `CASE WHEN ${type} = '${"task.created" satisfies EventName}' THEN jsonb_build_object('payload', ${t}."payload")
               WHEN ${type} = '${"task.completed" satisfies EventName}' THEN jsonb_build_object('result', ${t}."result")
               ELSE '{}'::jsonb END`;
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
  retries: "plain",
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

/** A committed transition inside a caller's transaction: the new row and the outbox rows of its events. */
export interface TransitionResult {
  task: TaskRow | null;
  outboxIds: string[];
}

/** Column bits of `TaskChanges` (which columns a transition sets). */
const COLUMN_BIT: Record<keyof typeof COLUMN_KIND, number> = {
  workerId: 1,
  attempts: 2,
  lease: 4,
  requeues: 8,
  queuedAt: 16,
  startedAt: 32,
  finishedAt: 64,
  result: 128,
  error: 256,
  retries: 512,
};

/**
 * A new task, stored directly as `queued` with its task.created and task.queued events; null when its Idempotency-Key
 * is taken, or when it is a schedule's task and its schedule is gone or paused.
 */
export interface TaskInsert {
  op: "insert";
  tenantId: string;
  id: string;
  input: Omit<SubmitTaskInput, "poolId"> & { poolId: string };
  idempotencyKey: string | null;
  requestHash: string | null;
  workflowId?: string;
  stepKey?: string;
  /** The schedule whose due time this task is (its idempotencyKey names the due time). */
  scheduleId?: string;
}

/** A state change of one task, made if (and only if) the state machine and the guard allow it; null otherwise. */
export interface TaskTransition {
  op: "transition";
  tenantId: string;
  taskId: string;
  change: TransitionName;
  data: TaskChanges;
  guard: TransitionGuard;
  eventExtra: Record<string, unknown>;
}

export type TaskWrite = TaskInsert | TaskTransition;

/**
 * Task writes as the event log runs them. Inserts and transitions of one batch are two expressions of one
 * statement; each transition carries its own from-states, new state, guard and the columns it sets (a bit mask),
 * so transitions of every kind share one UPDATE. The event of each written row is built from the row.
 */
export const TASK_WRITES: StateChangeKind<TaskWrite, TaskRow> = {
  name: "tasks",
  key: (write) => (write.op === "insert" ? write.id : write.taskId),
  parse: (row) => taskRowFromJson(row),
  build(writes, p) {
    const inserts: Array<{ item: number; write: TaskInsert }> = [];
    const updates: Array<{ item: number; write: TaskTransition }> = [];
    writes.forEach((write, item) => (write.op === "insert" ? inserts.push({ item, write }) : updates.push({ item, write })));
    const ctes: string[] = [];
    const events: string[] = [];
    const rows: string[] = [];
    if (inserts.length > 0) {
      const col = <T>(f: (w: TaskInsert) => T) => inserts.map(({ write }) => f(write));
      ctes.push(`tasks_ins_in AS (
         SELECT * FROM unnest(${p(inserts.map((i) => i.item))}::int[], ${p(col((w) => w.id))}::text[], ${p(col((w) => w.tenantId))}::text[],
           ${p(col((w) => w.input.poolId))}::text[], ${p(col((w) => w.input.type))}::text[], ${p(col((w) => JSON.stringify(w.input.payload ?? {})))}::text[],
           ${p(col((w) => w.input.priority))}::int[], ${p(col((w) => w.input.maxAttempts))}::int[], ${p(col((w) => w.input.timeoutMs ?? null))}::int[],
           ${p(col((w) => w.idempotencyKey))}::text[], ${p(col((w) => w.requestHash))}::text[], ${p(col((w) => w.workflowId ?? null))}::text[],
           ${p(col((w) => w.stepKey ?? null))}::text[], ${p(col((w) => w.scheduleId ?? null))}::text[],
           ${p(col(() => randomUUID()))}::text[], ${p(col(() => randomUUID()))}::text[])
           AS t(item, id, tenant, pool, type, payload, priority, max_attempts, timeout_ms, idempotency_key, request_hash, workflow_id, step_key, schedule_id,
                created_id, queued_id)
       ), tasks_inserted AS (
         INSERT INTO "Task" ("id", "tenantId", "poolId", "type", "payload", "status", "priority", "maxAttempts", "timeoutMs",
                             "idempotencyKey", "requestHash", "workflowId", "stepKey", "scheduleId", "createdAt", "updatedAt", "queuedAt")
         SELECT id, tenant, pool, type, payload::jsonb, 'queued', priority, max_attempts, timeout_ms,
                idempotency_key, request_hash, workflow_id, step_key, schedule_id, ${NOW_UTC}, ${NOW_UTC}, ${NOW_UTC}
         FROM tasks_ins_in
         -- The task of a schedule only while the schedule exists and is not paused, checked in this statement.
         WHERE schedule_id IS NULL
            OR EXISTS (SELECT 1 FROM "Schedule" s WHERE s."tenantId" = tenant AND s."id" = schedule_id AND NOT s."paused")
         ON CONFLICT ("tenantId", "idempotencyKey") DO NOTHING
         RETURNING *
       )`);
      // task.created shows the task as created (status and queuedAt of that moment); task.queued as stored.
      events.push(`SELECT i.item, e.sub, t."tenantId" AS tenant, CASE e.sub WHEN 0 THEN i.created_id ELSE i.queued_id END AS event_id, e.type,
              jsonb_build_object('task', ${taskEventViewSql("t")} || ${eventFieldSql("t", "e.type")} || e.patch) AS data,
              ${EVENT_TS} AS ts, ${taskTargetsSql("t", "e.type")} AS targets
         FROM tasks_inserted t JOIN tasks_ins_in i ON i.id = t."id"
         CROSS JOIN (VALUES (0, '${"task.created" satisfies EventName}', '{"status":"created","queuedAt":null}'::jsonb),
                            (1, '${"task.queued" satisfies EventName}', '{}'::jsonb)) AS e(sub, type, patch)`);
      rows.push(`SELECT i.item, to_jsonb(t) AS row FROM tasks_inserted t JOIN tasks_ins_in i ON i.id = t."id"`);
    }
    if (updates.length > 0) {
      const col = <T>(f: (w: TaskTransition) => T) => updates.map(({ write }) => f(write));
      const value = (column: keyof typeof COLUMN_KIND) =>
        col((w) => {
          const v = w.data[column];
          if (v === undefined || v === null) return null;
          if (v instanceof Date) return v.toISOString();
          return COLUMN_KIND[column] === "json" ? JSON.stringify(v) : v;
        });
      const mask = col((w) =>
        (Object.keys(w.data) as Array<keyof typeof COLUMN_KIND>).reduce((bits, column) => bits | COLUMN_BIT[column], 0),
      );
      const set = (column: keyof typeof COLUMN_KIND, expr: string) =>
        `"${column}" = CASE WHEN u.mask & ${COLUMN_BIT[column]} <> 0 THEN ${expr} ELSE t."${column}" END`;
      const time = (v: string) => `(${v}::timestamptz AT TIME ZONE 'UTC')`;
      ctes.push(`tasks_upd_in AS (
         SELECT * FROM unnest(${p(updates.map((u) => u.item))}::int[], ${p(col((w) => w.taskId))}::text[], ${p(col((w) => w.tenantId))}::text[],
           ${p(col((w) => TRANSITIONS[w.change].from.join(",")))}::text[], ${p(col((w) => TRANSITIONS[w.change].to))}::text[], ${p(mask)}::int[],
           ${p(value("workerId"))}::text[], ${p(value("attempts"))}::int[], ${p(value("lease"))}::text[], ${p(value("requeues"))}::int[], ${p(value("retries"))}::int[],
           ${p(value("queuedAt"))}::text[], ${p(value("startedAt"))}::text[], ${p(value("finishedAt"))}::text[],
           ${p(value("result"))}::text[], ${p(value("error"))}::text[],
           ${p(col((w) => w.guard.poolId ?? null))}::text[], ${p(col((w) => w.guard.lease ?? null))}::text[],
           ${p(col((w) => w.guard.newLease ?? null))}::text[], ${p(col((w) => w.guard.updatedAt?.toISOString() ?? null))}::text[],
           ${p(col((w) => JSON.stringify(w.eventExtra)))}::text[], ${p(col((w) => TRANSITIONS[w.change].first ?? null))}::text[],
           ${p(col((w) => TRANSITIONS[w.change].event))}::text[], ${p(col(() => randomUUID()))}::text[], ${p(col(() => randomUUID()))}::text[])
           AS u(item, id, tenant, from_states, to_state, mask, worker_id, attempts, lease, requeues, retries, queued_at, started_at, finished_at,
                result, error, guard_pool, guard_lease, guard_new_lease, guard_updated_at, extra, first_type, event_type, first_id, event_id)
       ), tasks_old AS MATERIALIZED (
         -- Materialized: read once. Inlined, the planner (which guesses the UPDATE below at one row) ran this join
         -- again for every updated row.
         SELECT t."id", t."attempts", t."startedAt" FROM "Task" t JOIN tasks_upd_in u ON t."id" = u.id AND u.first_type IS NOT NULL
       ), tasks_updated AS (
         UPDATE "Task" t SET "status" = u.to_state, "updatedAt" = ${NOW_UTC},
           ${set("workerId", "u.worker_id")}, ${set("attempts", "u.attempts")}, ${set("lease", "u.lease")}, ${set("requeues", "u.requeues")},
           ${set("retries", "u.retries")},
           ${set("queuedAt", time("u.queued_at"))}, ${set("startedAt", time("u.started_at"))}, ${set("finishedAt", time("u.finished_at"))},
           ${set("result", "u.result::jsonb")}, ${set("error", "u.error::jsonb")}
         FROM tasks_upd_in u
         WHERE t."id" = u.id AND t."tenantId" = u.tenant AND t."status" = ANY(string_to_array(u.from_states, ','))
           AND (u.guard_pool IS NULL OR t."poolId" = u.guard_pool)
           AND (u.guard_lease IS NULL OR t."lease" = u.guard_lease)
           AND (u.guard_new_lease IS NULL OR t."lease" IS DISTINCT FROM u.guard_new_lease)
           AND (u.guard_updated_at IS NULL OR t."updatedAt" = ${time("u.guard_updated_at")})
         RETURNING t.*, u.item AS "_item", u.extra::jsonb AS "_extra", u.first_type AS "_firstType", u.event_type AS "_eventType",
                   u.first_id AS "_firstId", u.event_id AS "_eventId"
       )`);
      // `patch` rewrites the new row's view for an event that describes an earlier moment of the same change (a
      // claim is assignment and start at once: its task.assigned shows the task as it was assigned, before the
      // start set attempts and startedAt). A retry's task.retried shows the task as it is now, like its task.queued.
      events.push(`SELECT t."_item" AS item, e.sub, t."tenantId" AS tenant, e.event_id, e.type,
              CASE WHEN e.type = '${"task.progress" satisfies EventName}'
                   THEN jsonb_build_object('taskId', t."id", 'status', t."status") || t."_extra"
                   ELSE jsonb_build_object('task', ${taskEventViewSql("t")} || ${eventFieldSql("t", "e.type")} || e.patch) || t."_extra" END AS data,
              ${EVENT_TS} AS ts, ${taskTargetsSql("t", "e.type")} AS targets
         FROM tasks_updated t LEFT JOIN tasks_old o ON o."id" = t."id"
         CROSS JOIN LATERAL (VALUES
           (0, t."_firstType", t."_firstId", CASE WHEN t."_firstType" = '${"task.assigned" satisfies EventName}'
              THEN jsonb_build_object('status', 'assigned', 'attempts', o."attempts", 'startedAt', ${isoSql(`o."startedAt"`)}) ELSE '{}'::jsonb END),
           (1, t."_eventType", t."_eventId", '{}'::jsonb)) AS e(sub, type, event_id, patch)
         WHERE e.type IS NOT NULL`);
      rows.push(`SELECT t."_item" AS item, to_jsonb(t) AS row FROM tasks_updated t`);
    }
    ctes.push(`tasks_events AS (${events.join(" UNION ALL ")})`, `tasks_rows AS (${rows.join(" UNION ALL ")})`);
    return ctes.join(",\n");
  },
};

/** A new task's write (its id made here, so that its job and workflow step can name it). */
export function taskInsert(
  tenantId: string,
  input: Omit<SubmitTaskInput, "poolId"> & { poolId: string },
  extra: {
    idempotencyKey: string | null;
    requestHash: string | null;
    workflowId?: string;
    stepKey?: string;
    scheduleId?: string;
    id?: string;
  },
): TaskInsert {
  return {
    op: "insert",
    tenantId,
    id: extra.id ?? randomUUID(),
    input,
    idempotencyKey: extra.idempotencyKey,
    requestHash: extra.requestHash,
    ...(extra.workflowId !== undefined ? { workflowId: extra.workflowId } : {}),
    ...(extra.stepKey !== undefined ? { stepKey: extra.stepKey } : {}),
    ...(extra.scheduleId !== undefined ? { scheduleId: extra.scheduleId } : {}),
  };
}
