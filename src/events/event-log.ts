import { randomBytes } from "node:crypto";
import type { PrismaClient } from "../db/client.js";
import type { NamespaceName } from "../protocol/namespaces.js";
import { encodeCursor, type CursorPosition } from "../protocol/cursor.js";
import type { Envelope } from "../protocol/events.js";

/** One room of one namespace an event is stored (and delivered) in. */
export interface EventTarget {
  namespace: NamespaceName;
  room: string;
}

export interface StoredEventInput {
  tenantId: string;
  targets: readonly EventTarget[];
  eventId: string;
  type: string;
  data: unknown;
  ts: Date;
}

interface SequencedRow {
  namespace: NamespaceName;
  room: string;
  seq: number;
  epoch: string;
}

function newEpoch(): string {
  return randomBytes(5).toString("hex");
}

interface PendingAppend {
  input: StoredEventInput;
  resolve: (rows: SequencedRow[]) => void;
  reject: (error: unknown) => void;
}

/** Rows (event × room) per statement: large enough to amortise a round trip, small enough to keep it short. */
const MAX_BATCH_ROWS = 2000;

/**
 * The event log: each room has its own gapless sequence, kept in PostgreSQL.
 *
 * Why gapless: numbers are taken (`seq + n` under the row lock of the room's RoomSequence row) in the same
 * statement that stores the events, so a number is consumed if and only if its event is stored, whichever
 * node publishes. Rooms are locked in sorted order, so concurrent publishers on several nodes cannot deadlock.
 *
 * Why batched: one statement per event capped publishing at about a thousand events per second. Appends that
 * arrive while a statement is in flight wait and go together in the next one (group commit), so a burst costs
 * one round trip; a lone event still goes at once. One statement in flight per node also means this node's
 * events leave in sequence order.
 */
export class EventLog {
  private queue: PendingAppend[] = [];
  private flushing = false;

  constructor(private readonly prisma: PrismaClient) {}

  /** Stores one event in every room it belongs to and returns each room's position. */
  append(input: StoredEventInput): Promise<SequencedRow[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.queue.length > 0) {
      const batch: PendingAppend[] = [];
      let rows = 0;
      while (this.queue.length > 0 && (batch.length === 0 || rows + this.queue[0]!.input.targets.length <= MAX_BATCH_ROWS)) {
        const next = this.queue.shift()!;
        rows += next.input.targets.length;
        batch.push(next);
      }
      try {
        const results = await this.appendBatch(batch.map((p) => p.input));
        batch.forEach((pending, i) => pending.resolve(results[i]!));
      } catch (error) {
        if (batch.length === 1) {
          batch[0]!.reject(error);
          continue;
        }
        // One event PostgreSQL refuses (e.g. a \u0000 in its data) must not take its batch-mates with it:
        // retry each alone, so only the bad one fails.
        for (const pending of batch) {
          try {
            pending.resolve((await this.appendBatch([pending.input]))[0]!);
          } catch (single) {
            pending.reject(single);
          }
        }
      }
    }
    this.flushing = false;
  }

  /** One statement for many events: per room, numbers are handed out in the order the events were appended. */
  private async appendBatch(inputs: StoredEventInput[]): Promise<SequencedRow[][]> {
    const columns = { tenant: [] as string[], ns: [] as string[], room: [] as string[], eventId: [] as string[], type: [] as string[], data: [] as string[], ts: [] as string[], ord: [] as number[] };
    const owners: number[] = [];
    inputs.forEach((input, index) => {
      const data = JSON.stringify(input.data ?? null);
      const ts = input.ts.toISOString();
      const unique = new Map(input.targets.map((t) => [`${t.namespace}|${t.room}`, t]));
      for (const { namespace, room } of unique.values()) {
        columns.tenant.push(input.tenantId);
        columns.ns.push(namespace);
        columns.room.push(room);
        columns.eventId.push(input.eventId);
        columns.type.push(input.type);
        columns.data.push(data);
        columns.ts.push(ts);
        columns.ord.push(owners.length);
        owners.push(index);
      }
    });
    const rows = await this.prisma.$queryRawUnsafe<Array<{ ord: number; ns: NamespaceName; room: string; seq: number; epoch: string }>>(
      `WITH input AS (
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int[])
           AS t(tenant, ns, room, event_id, type, data, ts, ord)
       ), counts AS (
         SELECT tenant, ns, room, count(*)::int AS n FROM input GROUP BY tenant, ns, room
       ), seqs AS (
         INSERT INTO "RoomSequence" ("tenantId", "namespace", "room", "seq", "epoch")
         SELECT tenant, ns, room, n, $9 FROM counts ORDER BY tenant, ns, room
         ON CONFLICT ("tenantId", "namespace", "room") DO UPDATE SET "seq" = "RoomSequence"."seq" + EXCLUDED."seq"
         RETURNING "tenantId", "namespace", "room", "seq", "epoch"
       ), numbered AS (
         SELECT i.*, s."epoch",
                (s."seq" - c.n + row_number() OVER (PARTITION BY i.tenant, i.ns, i.room ORDER BY i.ord))::int AS seq
         FROM input i
         JOIN counts c ON c.tenant = i.tenant AND c.ns = i.ns AND c.room = i.room
         JOIN seqs s ON s."tenantId" = i.tenant AND s."namespace" = i.ns AND s."room" = i.room
       ), stored AS (
         INSERT INTO "Event" ("tenantId", "namespace", "room", "seq", "eventId", "type", "data", "ts")
         SELECT tenant, ns, room, seq, event_id, type, data::jsonb, (ts::timestamptz AT TIME ZONE 'UTC') FROM numbered
         RETURNING 1
       )
       SELECT ord, ns, room, seq, epoch FROM numbered`,
      columns.tenant,
      columns.ns,
      columns.room,
      columns.eventId,
      columns.type,
      columns.data,
      columns.ts,
      columns.ord,
      newEpoch(),
    );
    const results: SequencedRow[][] = inputs.map(() => []);
    for (const row of rows) results[owners[row.ord]!]!.push({ namespace: row.ns, room: row.room, seq: Number(row.seq), epoch: row.epoch });
    return results;
  }

  /** The room's current position; creates the room's sequence (position 0) when it has none yet. */
  async head(tenantId: string, namespace: NamespaceName, room: string): Promise<CursorPosition> {
    // A plain read first: every subscribe asks, and almost every room exists already. Writing (and locking
    // the room's row, which publishers need) only for a room's very first subscriber.
    const existing = await this.prisma.$queryRawUnsafe<Array<{ seq: number; epoch: string }>>(
      `SELECT "seq", "epoch" FROM "RoomSequence" WHERE "tenantId" = $1 AND "namespace" = $2 AND "room" = $3`,
      tenantId,
      namespace,
      room,
    );
    if (existing[0]) return { epoch: existing[0].epoch, seq: Number(existing[0].seq) };
    // DO UPDATE (a no-op) rather than DO NOTHING: it waits for a concurrent creator and then returns the row,
    // where DO NOTHING would return nothing and the statement's snapshot could not see the new row either.
    const rows = await this.prisma.$queryRawUnsafe<Array<{ seq: number; epoch: string }>>(
      `INSERT INTO "RoomSequence" ("tenantId", "namespace", "room", "seq", "epoch")
       VALUES ($1, $2, $3, 0, $4)
       ON CONFLICT ("tenantId", "namespace", "room") DO UPDATE SET "seq" = "RoomSequence"."seq"
       RETURNING "seq", "epoch"`,
      tenantId,
      namespace,
      room,
      newEpoch(),
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
    if (maxBytes === undefined) {
      return this.prisma.event.findMany({
        where: { tenantId, namespace, room, seq: { gt: afterSeq } },
        orderBy: { seq: "asc" },
        take: limit,
        select: { seq: true, eventId: true, type: true, data: true, ts: true },
      });
    }
    // The running sum walks the room one index lookup at a time and stops at the first event past the budget, so
    // only the page (and that one event) is converted to text. A window sum over the next `limit` rows would
    // convert all of them: with 50 KB events that is 500 events read to return 10 (80 ms instead of 1 ms a page).
    const rows = await this.prisma.$queryRawUnsafe<Array<{ seq: number; eventId: string; type: string; data: unknown; ts: Date }>>(
      `WITH RECURSIVE page ("seq", "bytes", "n") AS (
         (SELECT "seq", octet_length("data"::text)::bigint, 1
            FROM "Event"
           WHERE "tenantId" = $1 AND "namespace" = $2 AND "room" = $3 AND "seq" > $4::int
           ORDER BY "seq" LIMIT 1)
         UNION ALL
         SELECT next."seq", page."bytes" + octet_length(next."data"::text), page."n" + 1
           FROM page CROSS JOIN LATERAL (
             SELECT "seq", "data" FROM "Event"
              WHERE "tenantId" = $1 AND "namespace" = $2 AND "room" = $3 AND "seq" > page."seq"
              ORDER BY "seq" LIMIT 1
           ) next
          WHERE page."n" < $5::int AND page."bytes" <= $6::bigint
       )
       SELECT "seq", "eventId", "type", "data", "ts" FROM "Event"
        WHERE "tenantId" = $1 AND "namespace" = $2 AND "room" = $3 AND "seq" > $4::int
          AND "seq" <= (SELECT max("seq") FROM page WHERE "n" = 1 OR "bytes" <= $6::bigint)
        ORDER BY "seq"`,
      tenantId,
      namespace,
      room,
      afterSeq,
      limit,
      maxBytes,
    );
    return rows.map((row) => ({ ...row, seq: Number(row.seq) }));
  }

  /** The oldest stored sequence number of a room (null when none is stored). */
  async oldestSeq(tenantId: string, namespace: NamespaceName, room: string): Promise<number | null> {
    const first = await this.prisma.event.findFirst({
      where: { tenantId, namespace, room },
      orderBy: { seq: "asc" },
      select: { seq: true },
    });
    return first?.seq ?? null;
  }
}

export function toEnvelope(
  room: string,
  epoch: string,
  event: { seq: number; eventId: string; type: string; data: unknown; ts: Date },
): Envelope {
  return {
    id: event.eventId,
    type: event.type,
    room,
    cursor: encodeCursor({ epoch, seq: event.seq }),
    ts: event.ts.toISOString(),
    data: event.data,
  };
}
