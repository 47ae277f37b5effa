import { randomBytes } from "node:crypto";
import type { PrismaClient } from "../db/client.js";
import type { Sql } from "../db/sql.js";
import type { NamespaceName } from "../protocol/namespaces.js";
import { encodeCursor, type CursorPosition } from "../protocol/cursor.js";
import type { Envelope } from "../protocol/events.js";
import { outsideRequest } from "../observability/request-context.js";
import { untimedQuery, type QueryTimer } from "../observability/metrics.js";

/** How the event log reports on its statements (the node's metrics; nothing for tests and scripts). */
export interface EventLogObserver {
  timeQuery: QueryTimer;
  /** Event rows (event x room) one numbering statement stored. */
  batchRows(rows: number): void;
}

const UNOBSERVED: EventLogObserver = { timeQuery: untimedQuery, batchRows: () => undefined };

/** One room of one namespace an event is stored (and delivered) in. */
export interface EventTarget {
  namespace: NamespaceName;
  room: string;
}

/** An event whose data is in memory: numbered and stored directly, no state change rides with it. */
export interface StoredEventInput {
  tenantId: string;
  targets: readonly EventTarget[];
  eventId: string;
  type: string;
  data: unknown;
  ts: Date;
}

/** One stored copy of an event: everything needed to build its envelope for one room. */
export interface SequencedEvent {
  tenantId: string;
  namespace: NamespaceName;
  room: string;
  seq: number;
  epoch: string;
  eventId: string;
  type: string;
  data: unknown;
  ts: Date;
}

/** "<namespace>|<room>": how the outbox lists an event's rooms (room names never contain '|'). */
export function targetKey(target: EventTarget): string {
  return `${target.namespace}|${target.room}`;
}

function newEpoch(): string {
  return randomBytes(5).toString("hex");
}

type PendingItem =
  | { kind: "direct"; input: StoredEventInput }
  /** An event already committed to the Outbox together with its state change; identified by its row id. */
  | { kind: "staged"; outboxId: string }
  /** Several direct events that are stored together or not at all: never split across statements. */
  | { kind: "group"; inputs: readonly StoredEventInput[] };
/** Resolves with the stored copies of each event of the item, in the item's order (one entry unless a group). */
type PendingAppend = PendingItem & { resolve: (rows: SequencedEvent[][]) => void; reject: (error: unknown) => void };

/** The direct events an item carries, in order (none for a staged one). */
function directInputs(item: PendingItem): readonly StoredEventInput[] {
  return item.kind === "direct" ? [item.input] : item.kind === "group" ? item.inputs : [];
}

/** Event × room rows an item adds to a statement (a staged row's rooms are unknown here: a typical task event). */
function rowsOf(item: PendingItem): number {
  return item.kind === "staged" ? 4 : directInputs(item).reduce((sum, input) => sum + input.targets.length, 0);
}

/** Rows (event × room) per statement: large enough to amortise a round trip, small enough to keep it short. */
const MAX_BATCH_ROWS = 2000;
/** Outbox rows per statement; an outbox row names its own rooms, which are only known inside the statement. */
const MAX_BATCH_STAGED = 500;

interface NumberedRow {
  ord: number;
  tenant: string;
  ns: NamespaceName;
  room: string;
  seq: number;
  epoch: string;
  event_id: string;
  type: string;
  data: unknown;
  ts: Date;
  copy: number;
}

/**
 * The event log: each room has its own gapless sequence, kept in PostgreSQL.
 *
 * Why gapless: numbers are taken (`seq + n` under the row lock of the room's RoomSequence row) in the same
 * statement that stores the events, so a number is consumed if and only if its event is stored, whichever
 * node publishes. Rooms are locked in sorted order, so concurrent publishers on several nodes cannot deadlock.
 *
 * Why an outbox: a state change and the events announcing it must commit together, but numbering inside the
 * state change's transaction would hold the hot per-room sequence rows (every task event goes to `tasks`) for
 * the whole transaction. So the change commits its events to "Outbox" (no shared row touched), and numbering
 * moves them into "Event" afterwards: the DELETE of the outbox rows and the INSERT of the numbered events are
 * one statement, so an event is numbered exactly once, by whichever node gets there first.
 *
 * Why batched: one statement per event capped publishing at about a thousand events per second. Appends that
 * arrive while a statement is in flight wait and go together in the next one (group commit), so a burst costs
 * one round trip; a lone event still goes at once. One statement in flight per node also means this node's
 * events leave in the order they were appended.
 */
export class EventLog {
  private queue: PendingAppend[] = [];
  private flushing = false;
  private stored: (copies: SequencedEvent[]) => void = () => undefined;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly sql: Sql,
    private readonly observer: EventLogObserver = UNOBSERVED,
  ) {}

  /**
   * Called with each event's stored copies as soon as its statement returns, synchronously and in numbering
   * order, before whoever appended it hears back. The publisher broadcasts here, so a node's events leave in
   * the order they were numbered, however many callers wait on them and however their promises interleave.
   */
  onStored(listener: (copies: SequencedEvent[]) => void): void {
    this.stored = listener;
  }

  private settle(pending: PendingAppend, result: SequencedEvent[][]): void {
    for (const copies of result) this.stored(copies);
    pending.resolve(result);
  }

  /** Stores one event in every room it belongs to and returns each stored copy. */
  async append(input: StoredEventInput): Promise<SequencedEvent[]> {
    return (await this.enqueue({ kind: "direct", input }))[0]!;
  }

  /**
   * Stores several events as one unit: all of them, in one statement, or none (the promise rejects). Returns the
   * stored copies of each event, in input order. Within a room, the events get consecutive numbers in input
   * order. The group still queues with every other append (group commit), but is never split, and when its
   * statement fails it is retried alone, as a whole.
   */
  async appendGroup(inputs: readonly StoredEventInput[]): Promise<SequencedEvent[][]> {
    if (inputs.length === 0) return [];
    return this.enqueue({ kind: "group", inputs });
  }

  /**
   * Numbers an event its state change already committed to the outbox. Resolves with nothing when another node
   * numbered it first (the orphan relay), or when numbering failed: the row stays in the outbox for the relay.
   */
  async number(outboxId: string): Promise<SequencedEvent[]> {
    return (await this.enqueue({ kind: "staged", outboxId }))[0]!;
  }

  private enqueue(item: PendingItem): Promise<SequencedEvent[][]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ...item, resolve, reject });
      // The flush loop serves every caller's appends: it must not run (and log) as the request that started it.
      if (!this.flushing) outsideRequest(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.queue.length > 0) {
      const batch: PendingAppend[] = [];
      let rows = 0;
      let staged = 0;
      while (this.queue.length > 0) {
        const next = this.queue[0]!;
        const size = rowsOf(next);
        if (batch.length > 0 && (rows + size > MAX_BATCH_ROWS || (next.kind === "staged" && staged >= MAX_BATCH_STAGED))) break;
        this.queue.shift();
        rows += size;
        if (next.kind === "staged") staged++;
        batch.push(next);
      }
      try {
        const results = await this.appendBatch(batch);
        batch.forEach((pending, i) => this.settle(pending, results[i]!));
      } catch (error) {
        if (batch.length === 1) {
          this.settleFailed(batch[0]!, error);
          continue;
        }
        // One event PostgreSQL refuses (e.g. a \u0000 in its data) must not take its batch-mates with it:
        // retry each alone, so only the bad one fails (a group is one item: it fails or succeeds as a whole).
        for (const pending of batch) {
          try {
            this.settle(pending, (await this.appendBatch([pending]))[0]!);
          } catch (single) {
            this.settleFailed(pending, single);
          }
        }
      }
    }
    this.flushing = false;
  }

  /** A direct append (or group) fails its caller; a staged one is still safe in the outbox, where the relay finds it. */
  private settleFailed(pending: PendingAppend, error: unknown): void {
    if (pending.kind === "staged") pending.resolve([[]]);
    else pending.reject(error);
  }

  /**
   * Numbers and stores a batch in one statement: per room, numbers are handed out in batch order. Direct events
   * come in as arrays; staged ones are deleted from the outbox in the same statement (exactly once across nodes).
   * Every event of the batch gets its own position (`ord`), a group's events consecutive ones, in input order.
   */
  private async appendBatch(batch: PendingAppend[]): Promise<SequencedEvent[][][]> {
    const direct = { tenant: [] as string[], ns: [] as string[], room: [] as string[], eventId: [] as string[], type: [] as string[], data: [] as string[], ts: [] as string[], ord: [] as number[] };
    const staged = { id: [] as string[], ord: [] as number[] };
    /** ord → the batch item and the index of the event within it; `input` for direct events (their data). */
    const owners: Array<{ item: number; index: number; input: StoredEventInput | undefined }> = [];
    batch.forEach((pending, item) => {
      if (pending.kind === "staged") {
        staged.id.push(pending.outboxId);
        staged.ord.push(owners.length);
        owners.push({ item, index: 0, input: undefined });
        return;
      }
      directInputs(pending).forEach((input, index) => {
        const ord = owners.length;
        owners.push({ item, index, input });
        const data = JSON.stringify(input.data ?? null);
        const ts = input.ts.toISOString();
        const unique = new Map(input.targets.map((t) => [targetKey(t), t]));
        for (const { namespace, room } of unique.values()) {
          direct.tenant.push(input.tenantId);
          direct.ns.push(namespace);
          direct.room.push(room);
          direct.eventId.push(input.eventId);
          direct.type.push(input.type);
          direct.data.push(data);
          direct.ts.push(ts);
          direct.ord.push(ord);
        }
      });
    });
    const claim = staged.id.length === 0 ? null : `DELETE FROM "Outbox" o USING unnest($10::bigint[], $11::int[]) AS s(id, ord) WHERE o."id" = s.id
         RETURNING s.ord, o."tenantId", o."eventId", o."type", o."targets", o."data", o."ts"`;
    const rows = await this.numbering(numberingStatement(claim), [
      direct.tenant,
      direct.ns,
      direct.room,
      direct.eventId,
      direct.type,
      direct.data,
      direct.ts,
      direct.ord,
      newEpoch(),
      ...(claim ? [staged.id, staged.ord] : [])
    ]);
    const stagedData = stagedDataByOrd(rows);
    const results: SequencedEvent[][][] = batch.map((pending) => Array.from({ length: Math.max(1, directInputs(pending).length) }, () => []));
    for (const row of rows) {
      const owner = owners[row.ord]!;
      results[owner.item]![owner.index]!.push(toSequenced(row, owner.input ? owner.input.data : stagedData.get(row.ord)));
    }
    return results;
  }

  /**
   * Numbers outbox rows older than `olderThanMs` (by the database's clock, which also stamped them) that nobody numbered: their node died (or lost the database)
   * between committing a change and numbering its events. SKIP LOCKED: nodes relaying at once never wait for
   * each other, and a row its owner is numbering right now is left to the owner.
   */
  async relayOrphans(olderThanMs: number, limit: number): Promise<SequencedEvent[]> {
    const claim = `DELETE FROM "Outbox" o USING (
           SELECT "id", (row_number() OVER (ORDER BY "id"))::int AS ord FROM "Outbox"
           WHERE "id" IN (SELECT "id" FROM "Outbox" WHERE "ts" < (clock_timestamp() AT TIME ZONE 'UTC') - make_interval(secs => $10::int / 1000.0) ORDER BY "id" LIMIT $11 FOR UPDATE SKIP LOCKED)
         ) s WHERE o."id" = s."id"
         RETURNING s.ord, o."tenantId", o."eventId", o."type", o."targets", o."data", o."ts"`;
    const rows = await this.numbering(numberingStatement(claim), [
      [], [], [], [], [], [], [], [],
      newEpoch(),
      olderThanMs,
      limit
    ]);
    const data = stagedDataByOrd(rows);
    return rows.map((row) => toSequenced(row, data.get(row.ord)));
  }

  /** Runs a numbering statement: timed, and its size recorded (how much group commit gathered). */
  private async numbering(text: string, values: readonly unknown[]): Promise<NumberedRow[]> {
    const rows = await this.observer.timeQuery("event_numbering", () => this.sql.query<NumberedRow[]>(text, values));
    if (rows.length > 0) this.observer.batchRows(rows.length);
    return rows;
  }

  /** The room's current position; creates the room's sequence (position 0) when it has none yet. */
  async head(tenantId: string, namespace: NamespaceName, room: string): Promise<CursorPosition> {
    return this.observer.timeQuery("head", () => this.readOrCreateHead(tenantId, namespace, room));
  }

  private async readOrCreateHead(tenantId: string, namespace: NamespaceName, room: string): Promise<CursorPosition> {
    // A plain read first: every subscribe asks, and almost every room exists already. Writing (and locking
    // the room's row, which publishers need) only for a room's very first subscriber.
    const existing = await this.sql.query<Array<{ seq: number; epoch: string }>>(
      `SELECT "seq", "epoch" FROM "RoomSequence" WHERE "tenantId" = $1 AND "namespace" = $2 AND "room" = $3`, [
      tenantId,
      namespace,
      room
    ]);
    if (existing[0]) return { epoch: existing[0].epoch, seq: Number(existing[0].seq) };
    // DO UPDATE (a no-op) rather than DO NOTHING: it waits for a concurrent creator and then returns the row,
    // where DO NOTHING would return nothing and the statement's snapshot could not see the new row either.
    const rows = await this.sql.query<Array<{ seq: number; epoch: string }>>(
      `INSERT INTO "RoomSequence" ("tenantId", "namespace", "room", "seq", "epoch")
       VALUES ($1, $2, $3, 0, $4)
       ON CONFLICT ("tenantId", "namespace", "room") DO UPDATE SET "seq" = "RoomSequence"."seq"
       RETURNING "seq", "epoch"`, [
      tenantId,
      namespace,
      room,
      newEpoch()
    ]);
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
    const rows = await this.sql.query<Array<{ seq: number; eventId: string; type: string; data: unknown; ts: Date }>>(
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
        ORDER BY "seq"`, [
      tenantId,
      namespace,
      room,
      afterSeq,
      limit,
      maxBytes
    ]);
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

/** A staged event's data comes back once, on its first copy; every copy of the event shares it. */
function stagedDataByOrd(rows: NumberedRow[]): Map<number, unknown> {
  const data = new Map<number, unknown>();
  for (const row of rows) if (row.copy === 1) data.set(row.ord, row.data);
  return data;
}

function toSequenced(row: NumberedRow, data: unknown): SequencedEvent {
  return {
    tenantId: row.tenant,
    namespace: row.ns,
    room: row.room,
    seq: Number(row.seq),
    epoch: row.epoch,
    eventId: row.event_id,
    type: row.type,
    data,
    ts: row.ts instanceof Date ? row.ts : new Date(row.ts),
  };
}

/**
 * The one numbering statement. `claim` (optional) deletes outbox rows and returns them with their batch order;
 * their rooms come from the rows' targets. Each room's block of numbers is reserved under its RoomSequence row
 * lock (rows upserted in sorted order: no deadlocks), and the Event rows are inserted in the same statement.
 * Staged events return their data once (on their first room), direct ones not at all: the caller has it.
 */
function numberingStatement(claim: string | null): string {
  const stagedInput = claim
    ? `, claimed AS (${claim}),
       staged AS (
         SELECT DISTINCT c."tenantId" AS tenant, split_part(t.target, '|', 1) AS ns, substr(t.target, strpos(t.target, '|') + 1) AS room,
                c."eventId" AS event_id, c."type" AS type, c."data" AS data, c."ts" AS ts, c.ord AS ord, true AS staged
         FROM claimed c CROSS JOIN LATERAL unnest(c."targets") AS t(target)
       )`
    : "";
  return `WITH direct AS (
       SELECT tenant, ns, room, event_id, type, data::jsonb AS data, (ts::timestamptz AT TIME ZONE 'UTC') AS ts, ord, false AS staged
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int[])
         AS t(tenant, ns, room, event_id, type, data, ts, ord)
     )${stagedInput}, input AS (
       SELECT * FROM direct${claim ? " UNION ALL SELECT * FROM staged" : ""}
     ), counts AS (
       SELECT tenant, ns, room, count(*)::int AS n FROM input GROUP BY tenant, ns, room
     ), seqs AS (
       INSERT INTO "RoomSequence" ("tenantId", "namespace", "room", "seq", "epoch")
       SELECT tenant, ns, room, n, $9 FROM counts ORDER BY tenant, ns, room
       ON CONFLICT ("tenantId", "namespace", "room") DO UPDATE SET "seq" = "RoomSequence"."seq" + EXCLUDED."seq"
       RETURNING "tenantId", "namespace", "room", "seq", "epoch"
     ), numbered AS (
       SELECT i.*, s."epoch",
              (s."seq" - c.n + row_number() OVER (PARTITION BY i.tenant, i.ns, i.room ORDER BY i.ord))::int AS seq,
              row_number() OVER (PARTITION BY i.ord ORDER BY i.ns, i.room) AS copy
       FROM input i
       JOIN counts c ON c.tenant = i.tenant AND c.ns = i.ns AND c.room = i.room
       JOIN seqs s ON s."tenantId" = i.tenant AND s."namespace" = i.ns AND s."room" = i.room
     ), stored AS (
       INSERT INTO "Event" ("tenantId", "namespace", "room", "seq", "eventId", "type", "data", "ts")
       SELECT tenant, ns, room, seq, event_id, type, data, ts FROM numbered
       RETURNING 1
     )
     SELECT ord, tenant, ns, room, seq, epoch, event_id, type, ts, copy::int AS copy, CASE WHEN staged AND copy = 1 THEN data END AS data
     FROM numbered ORDER BY ord, ns, room`;
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
