import type { PrismaClient } from "../db/client.js";
import type { Sql } from "../db/sql.js";
import type { NamespaceName } from "../protocol/namespaces.js";
import type { CursorPosition } from "../protocol/cursor.js";
import { newEpoch, UNOBSERVED, type EventLogObserver } from "./event-log.js";

/**
 * The read side of the event log: a room's current position (its head, created at 0 the first time a room is
 * asked for, so a subscriber's cursor exists before the room's first event), and pages of a room's stored events
 * for replay and history. It never numbers or stores an event; EventLogWriter does.
 */
export class EventLogReader {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly sql: Sql,
    private readonly observer: Pick<EventLogObserver, "timeQuery"> = UNOBSERVED,
  ) {}

  /** The room's current position; creates the room's sequence (position 0) when it has none yet. */
  async head(tenantId: string, namespace: NamespaceName, room: string): Promise<CursorPosition> {
    return this.observer.timeQuery("head", () => this.readOrCreateHead(tenantId, namespace, room));
  }

  /** The room's current position, or null when the room has no sequence yet (nothing is created). */
  async peekHead(tenantId: string, namespace: NamespaceName, room: string): Promise<CursorPosition | null> {
    const existing = await this.sql.query<Array<{ seq: number; epoch: string }>>(
      `SELECT "seq", "epoch" FROM "RoomSequence" WHERE "tenantId" = $1 AND "namespace" = $2 AND "room" = $3`,
      [tenantId, namespace, room],
    );
    return existing[0] ? { epoch: existing[0].epoch, seq: Number(existing[0].seq) } : null;
  }

  /**
   * The current positions of many rooms of one namespace in one statement (rooms without a sequence are left
   * out): a node's periodic look at the rooms it has subscribers in.
   */
  async peekHeads(
    namespace: NamespaceName,
    rooms: ReadonlyArray<{ tenantId: string; room: string }>,
  ): Promise<Array<{ tenantId: string; room: string; head: CursorPosition }>> {
    if (rooms.length === 0) return [];
    const rows = await this.observer.timeQuery("head", () =>
      this.sql.query<Array<{ tenantId: string; room: string; seq: number; epoch: string }>>(
        `SELECT s."tenantId", s."room", s."seq", s."epoch"
         FROM unnest($2::text[], $3::text[]) AS t(tenant, room)
         JOIN "RoomSequence" s ON s."tenantId" = t.tenant AND s."namespace" = $1 AND s."room" = t.room`,
        [namespace, rooms.map((r) => r.tenantId), rooms.map((r) => r.room)],
      ),
    );
    return rows.map((row) => ({ tenantId: row.tenantId, room: row.room, head: { epoch: row.epoch, seq: Number(row.seq) } }));
  }

  private async readOrCreateHead(tenantId: string, namespace: NamespaceName, room: string): Promise<CursorPosition> {
    // A plain read first: every subscribe asks, and almost every room exists already. Writing (and locking
    // the room's row, which publishers need) only for a room's very first subscriber.
    const existing = await this.peekHead(tenantId, namespace, room);
    if (existing) return existing;
    // DO UPDATE (a no-op) rather than DO NOTHING: it waits for a concurrent creator and then returns the row,
    // where DO NOTHING would return nothing and the statement's snapshot could not see the new row either.
    const rows = await this.sql.query<Array<{ seq: number; epoch: string }>>(
      `INSERT INTO "RoomSequence" ("tenantId", "namespace", "room", "seq", "epoch")
       VALUES ($1, $2, $3, 0, $4)
       ON CONFLICT ("tenantId", "namespace", "room") DO UPDATE SET "seq" = "RoomSequence"."seq"
       RETURNING "seq", "epoch"`,
      [tenantId, namespace, room, newEpoch()],
    );
    const row = rows[0];
    if (!row) throw new Error(`room sequence missing for ${namespace}/${room}`);
    return { epoch: row.epoch, seq: Number(row.seq) };
  }

  /**
   * Stored events of one room strictly after `afterSeq`, oldest first, at most `limit` of them. With `maxBytes`,
   * the page also ends before the event that would take the sum of `octet_length(data::text)` over the page past
   * `maxBytes`; the first event is always returned, however large.
   */
  async readAfter(
    tenantId: string,
    namespace: NamespaceName,
    room: string,
    afterSeq: number,
    limit: number,
    maxBytes?: number,
  ): Promise<Array<{ seq: number; eventId: string; type: string; data: unknown; ts: Date }>> {
    return this.observer.timeQuery("replay_read", () => this.readPage(tenantId, namespace, room, afterSeq, limit, maxBytes));
  }

  private async readPage(
    tenantId: string,
    namespace: NamespaceName,
    room: string,
    afterSeq: number,
    limit: number,
    maxBytes: number | undefined,
  ): Promise<Array<{ seq: number; eventId: string; type: string; data: unknown; ts: Date }>> {
    if (maxBytes === undefined) {
      const rows = await this.sql.query<Array<{ seq: number; eventId: string; type: string; data: unknown; ts: Date }>>(
        `SELECT r."seq", e."id" AS "eventId", e."type", e."data", e."ts"
           FROM "RoomEvent" r JOIN "Event" e ON e."id" = r."eventId"
          WHERE r."tenantId" = $1 AND r."namespace" = $2 AND r."room" = $3 AND r."seq" > $4::int
          ORDER BY r."seq" LIMIT $5::int`,
        [tenantId, namespace, room, afterSeq, limit],
      );
      return rows.map((row) => ({ ...row, seq: Number(row.seq) }));
    }
    // The running sum walks the room one index lookup at a time and stops at the first event past the budget, so
    // only the page (and that one event) is converted to text. A window sum over the next `limit` rows would
    // convert all of them: with 50 KB events that is 500 events read to return 10 (80 ms instead of 1 ms a page).
    const rows = await this.sql.query<Array<{ seq: number; eventId: string; type: string; data: unknown; ts: Date }>>(
      `WITH RECURSIVE page ("seq", "bytes", "n") AS (
         (SELECT r."seq", octet_length(e."data"::text)::bigint, 1
            FROM "RoomEvent" r JOIN "Event" e ON e."id" = r."eventId"
           WHERE r."tenantId" = $1 AND r."namespace" = $2 AND r."room" = $3 AND r."seq" > $4::int
           ORDER BY r."seq" LIMIT 1)
         UNION ALL
         SELECT next."seq", page."bytes" + octet_length(next."data"::text), page."n" + 1
           FROM page CROSS JOIN LATERAL (
             SELECT r."seq", e."data" FROM "RoomEvent" r JOIN "Event" e ON e."id" = r."eventId"
              WHERE r."tenantId" = $1 AND r."namespace" = $2 AND r."room" = $3 AND r."seq" > page."seq"
              ORDER BY r."seq" LIMIT 1
           ) next
          WHERE page."n" < $5::int AND page."bytes" <= $6::bigint
       )
       SELECT r."seq", e."id" AS "eventId", e."type", e."data", e."ts"
         FROM "RoomEvent" r JOIN "Event" e ON e."id" = r."eventId"
        WHERE r."tenantId" = $1 AND r."namespace" = $2 AND r."room" = $3 AND r."seq" > $4::int
          AND r."seq" <= (SELECT max("seq") FROM page WHERE "n" = 1 OR "bytes" <= $6::bigint)
        ORDER BY r."seq"`,
      [tenantId, namespace, room, afterSeq, limit, maxBytes],
    );
    return rows.map((row) => ({ ...row, seq: Number(row.seq) }));
  }

  /** The oldest stored sequence number of a room (null when none is stored). */
  async oldestSeq(tenantId: string, namespace: NamespaceName, room: string): Promise<number | null> {
    const first = await this.prisma.roomEvent.findFirst({
      where: { tenantId, namespace, room },
      orderBy: { seq: "asc" },
      select: { seq: true },
    });
    return first?.seq ?? null;
  }
}
