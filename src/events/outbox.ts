import { randomUUID } from "node:crypto";
import type { Sql } from "../db/sql.js";
import type { NamespaceName } from "../protocol/namespaces.js";
import { Params, type StateChangeKind } from "./state-change.js";

/*
 * The outbox ("Outbox"): events committed with a multi-statement transaction's state change, waiting to be
 * numbered into the event log. Every statement that writes or claims outbox rows is here, so the table's
 * contract (who inserts, who deletes, exactly once) can be read in one place; the publisher, the event log and
 * the domains call these. So is the way an event lists its rooms, `<namespace>|<room>`, which the outbox rows,
 * the numbering statement, the stored "Event" and the events a state change builds in SQL all share.
 */

/** One room of one namespace an event is stored (and delivered) in. */
export interface EventTarget {
  namespace: NamespaceName;
  room: string;
}

/** "<namespace>|<room>": how an event lists its rooms (room names never contain '|'). */
export function targetKey(target: EventTarget): string {
  return `${target.namespace}|${target.room}`;
}

/**
 * The SQL text of a target built in a statement: `room` in `namespace`, followed by the SQL text expression
 * `roomSuffixSql` when the room's name ends with a column (`task:` and the task's id).
 */
export function targetSql(namespace: NamespaceName, room: string, roomSuffixSql?: string): string {
  const literal = `'${targetKey({ namespace, room }).replaceAll("'", "''")}'`;
  return roomSuffixSql === undefined ? literal : `${literal} || ${roomSuffixSql}`;
}

/** SQL reading a target expression back: its namespace. */
export function targetNamespaceSql(target: string): string {
  return `split_part(${target}, '|', 1)`;
}

/** SQL reading a target expression back: its room. */
export function targetRoomSql(target: string): string {
  return `substr(${target}, strpos(${target}, '|') + 1)`;
}

/** SQL writing a target from a namespace and a room expression. */
export function targetOfSql(namespace: string, room: string): string {
  return `${namespace} || '|' || ${room}`;
}

/** An event to commit with a transaction: its rooms, type and data. */
export interface OutboxEvent {
  tenantId: string;
  type: string;
  targets: readonly EventTarget[];
  data: unknown;
}

/** Inserts events into the outbox inside the caller's transaction; returns their row ids, in the events' order. */
export async function insertOutboxEvents(tx: Sql, events: readonly OutboxEvent[]): Promise<string[]> {
  if (events.length === 0) return [];
  const eventIds = events.map(() => randomUUID());
  const rows = await tx.query<Array<{ id: bigint | string; eventId: string }>>(
    `INSERT INTO "Outbox" ("tenantId", "eventId", "type", "targets", "data", "ts")
     SELECT tenant, event_id, type, string_to_array(targets, chr(10)), data::jsonb, (clock_timestamp() AT TIME ZONE 'UTC')
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS t(tenant, event_id, type, targets, data)
     RETURNING "id", "eventId"`,
    [
      events.map((e) => e.tenantId),
      eventIds,
      events.map((e) => e.type),
      events.map((e) => e.targets.map(targetKey).join("\n")),
      events.map((e) => JSON.stringify(e.data ?? null)),
    ],
  );
  const byEvent = new Map(rows.map((row) => [row.eventId, String(row.id)]));
  return eventIds.map((id) => byEvent.get(id)!);
}

/**
 * Makes a state change of a kind the event log usually writes itself (see StateChangeKind) inside a caller's
 * transaction (`db`, e.g. a workflow's): the same SQL makes the change, and its events go to the outbox in the
 * same statement, to be numbered once the transaction has committed (hand the ids to `Outbox.staged`).
 */
export async function stageChange<C, R>(db: Sql, kind: StateChangeKind<C, R>, change: C): Promise<{ row: R | null; outboxIds: string[] }> {
  const params = new Params();
  const ctes = kind.build([change], params.add);
  const [result] = await db.query<Array<{ row: unknown; outboxIds: string[] }>>(
    `WITH ${ctes}, staged AS (
       INSERT INTO "Outbox" ("tenantId", "eventId", "type", "targets", "data", "ts")
       SELECT tenant, event_id, type, targets, data, ts FROM ${kind.name}_events ORDER BY item, sub
       RETURNING "id"
     )
     -- Ordered as numbers, then cast: "id"::text in the select list would make ORDER BY "id" sort the text, and
     -- at 999 → 1000 a change's events would be numbered in reverse.
     SELECT (SELECT row FROM ${kind.name}_rows LIMIT 1) AS row, ARRAY(SELECT "id" FROM staged ORDER BY "id")::text[] AS "outboxIds"`,
    params.values,
  );
  const row = result?.row ?? null;
  return { row: row === null ? null : kind.parse(row), outboxIds: result?.outboxIds ?? [] };
}

/** The numbering input the claims below define: one row per claimed event (see the event log's numbering statement). */
export const CLAIMED_OUTBOX_INPUT = "staged";

/** Claimed outbox rows as numbering input: one row per event, its rooms as targets. */
const CLAIMED_AS_INPUT = `${CLAIMED_OUTBOX_INPUT} AS (
   SELECT c.ord, c."tenantId" AS tenant, c."eventId" AS event_id, c."type" AS type, c."data" AS data, c."ts" AS ts, c."targets" AS targets, true AS returned
   FROM claimed c
 )`;

/**
 * CTEs that claim the given outbox rows, each with its position `ord` in the numbering statement: they are deleted
 * in the statement that numbers them, so an event is numbered exactly once, whichever node gets there first.
 */
export function claimOutboxRows(ids: readonly string[], ords: readonly number[], param: (value: unknown) => string): string[] {
  return [
    `claimed AS (
         DELETE FROM "Outbox" o USING unnest(${param(ids)}::bigint[], ${param(ords)}::int[]) AS s(id, ord) WHERE o."id" = s.id
         RETURNING s.ord, o."tenantId", o."eventId", o."type", o."targets", o."data", o."ts"
       )`,
    CLAIMED_AS_INPUT,
  ];
}

/**
 * CTEs that claim up to `limit` outbox rows older than `olderThanMs` (by the database's clock, which also stamped
 * them), in outbox order. SKIP LOCKED: nodes relaying at once never wait for each other, and a row its owner is
 * numbering right now is left to the owner.
 */
export function claimOrphanedOutboxRows(olderThanMs: number, limit: number, param: (value: unknown) => string): string[] {
  return [
    `claimed AS (
         DELETE FROM "Outbox" o USING (
           SELECT "id", (row_number() OVER (ORDER BY "id"))::int AS ord FROM "Outbox"
           WHERE "id" IN (SELECT "id" FROM "Outbox" WHERE "ts" < (clock_timestamp() AT TIME ZONE 'UTC') - make_interval(secs => ${param(olderThanMs)}::int / 1000.0)
                          ORDER BY "id" LIMIT ${param(limit)} FOR UPDATE SKIP LOCKED)
         ) s WHERE o."id" = s."id"
         RETURNING s.ord, o."tenantId", o."eventId", o."type", o."targets", o."data", o."ts"
       )`,
    CLAIMED_AS_INPUT,
  ];
}
