import type { Sql } from "../db/sql.js";
import { outsideRequest } from "../observability/request-context.js";
import { newEpoch, UNOBSERVED, type EventLogObserver, type SequencedEvent } from "./event-log.js";
import {
  CLAIMED_OUTBOX_INPUT,
  claimOrphanedOutboxRows,
  claimOutboxRows,
  targetKey,
  targetNamespaceSql,
  targetOfSql,
  targetRoomSql,
  type EventTarget,
} from "./outbox.js";
import { MAX_EVENTS_PER_CHANGE, Params, type StateChangeKind } from "./state-change.js";
import type { NamespaceName } from "../protocol/namespaces.js";

/** An event whose data is in memory: numbered and stored directly, no state change rides with it. */
export interface StoredEventInput {
  tenantId: string;
  targets: readonly EventTarget[];
  eventId: string;
  type: string;
  data: unknown;
  ts: Date;
}

type PendingItem =
  | { kind: "direct"; input: StoredEventInput }
  /** An event already committed to the Outbox together with its state change; identified by its row id. */
  | { kind: "staged"; outboxId: string }
  /** Several direct events that are stored together or not at all: never split across statements. */
  | { kind: "group"; inputs: readonly StoredEventInput[] }
  /** A state change written in the numbering statement itself, with its events (see StateChangeKind). */
  | { kind: "change"; changeKind: StateChangeKind<unknown, unknown>; change: unknown };
/** What an item's statement gave back: the stored copies of each of its events, and a change's new state. */
interface ItemResult {
  events: SequencedEvent[][];
  row?: unknown;
}
type PendingAppend = PendingItem & { resolve: (result: ItemResult) => void; reject: (error: unknown) => void };

/** The result of `EventLogWriter.write`: the change's new state (null when refused) and the stored copies of its events. */
export interface WriteResult<R> {
  row: R | null;
  events: SequencedEvent[][];
}

/** The direct events an item carries, in order (none for a staged one). */
function directInputs(item: PendingItem): readonly StoredEventInput[] {
  return item.kind === "direct" ? [item.input] : item.kind === "group" ? item.inputs : [];
}

/** Event × room rows an item adds to a statement (a staged row's or change's rooms are unknown here: a typical task event). */
function rowsOf(item: PendingItem): number {
  if (item.kind === "staged") return 4;
  if (item.kind === "change") return 8;
  return directInputs(item).reduce((sum, input) => sum + input.targets.length, 0);
}

/** Rows (event × room) per statement: large enough to amortise a round trip, small enough to keep it short. */
const MAX_BATCH_ROWS = 2000;
/** Outbox rows or state changes per statement; their rooms are only known inside the statement. */
const MAX_BATCH_STAGED = 500;

interface NumberedRow {
  /** "e": one stored copy of an event; "r": a state change's new row (in `data`, `ns` naming its kind). */
  k: "e" | "r";
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
 * The write side of the event log: numbers and stores events, each room with its own gapless sequence, kept in
 * PostgreSQL (see event-log.ts for the tables).
 *
 * Why gapless: numbers are taken (`seq + n` under the row lock of the room's RoomSequence row) in the same
 * statement that stores the events, so a number is consumed if and only if its event is stored, whichever
 * node publishes. Rooms are locked in sorted order, so concurrent publishers on several nodes cannot deadlock.
 *
 * State changes and their events: the hot one (a task's) is written by the numbering statement itself
 * (`write`), so the change, its events and their numbers commit together with nothing in between. Changes that
 * need a multi-statement transaction (pools, workers, workflows) commit their events to "Outbox" (no shared
 * row touched, so they commit in parallel), and numbering moves them into the log afterwards: the DELETE of the
 * outbox rows and the INSERT of the numbered events are one statement, so an event is numbered exactly once, by
 * whichever node gets there first.
 *
 * Why batched: one statement per event capped publishing at about a thousand events per second. Appends and
 * changes that arrive while a statement is in flight wait and go together in the next one (group commit), so a
 * burst costs one round trip; a lone one still goes at once. One statement in flight per node also means this
 * node's events leave in the order they were numbered.
 */
export class EventLogWriter {
  private queue: PendingAppend[] = [];
  private flushing = false;
  private stored: (copies: SequencedEvent[]) => void = () => undefined;

  constructor(
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

  private settle(pending: PendingAppend, result: ItemResult): void {
    for (const copies of result.events) this.stored(copies);
    pending.resolve(result);
  }

  /** Stores one event in every room it belongs to and returns each stored copy. */
  async append(input: StoredEventInput): Promise<SequencedEvent[]> {
    return (await this.enqueue({ kind: "direct", input })).events[0]!;
  }

  /**
   * Stores several events as one unit: all of them, in one statement, or none (the promise rejects). Returns the
   * stored copies of each event, in input order. Within a room, the events get consecutive numbers in input
   * order. The group still queues with every other append (group commit), but is never split, and when its
   * statement fails it is retried alone, as a whole.
   */
  async appendGroup(inputs: readonly StoredEventInput[]): Promise<SequencedEvent[][]> {
    if (inputs.length === 0) return [];
    return (await this.enqueue({ kind: "group", inputs })).events;
  }

  /**
   * Numbers an event its state change already committed to the outbox. Resolves with nothing when another node
   * numbered it first (the orphan relay), or when numbering failed: the row stays in the outbox for the relay.
   */
  async number(outboxId: string): Promise<SequencedEvent[]> {
    return (await this.enqueue({ kind: "staged", outboxId })).events[0] ?? [];
  }

  /**
   * Makes a state change and stores its events in one statement, group-committed with everything else waiting.
   * Rejects when the statement fails (then nothing of the change was stored); `row` is null when the change's
   * own conditions refused it.
   */
  async write<C, R>(changeKind: StateChangeKind<C, R>, change: C): Promise<WriteResult<R>> {
    const result = await this.enqueue({ kind: "change", changeKind: changeKind, change });
    return { row: result.row === undefined ? null : (result.row as R), events: result.events };
  }

  private enqueue(item: PendingItem): Promise<ItemResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ...item, resolve, reject });
      // The flush loop serves every caller's appends: it must not run (and log) as the request that started it.
      if (!this.flushing) outsideRequest(() => void this.flush());
    });
  }

  /** The next batch: everything waiting, up to the row budget, never two changes of one row (see StateChangeKind.key). */
  private takeBatch(): PendingAppend[] {
    const batch: PendingAppend[] = [];
    const keys = new Set<string>();
    let rows = 0;
    let staged = 0;
    while (this.queue.length > 0) {
      const next = this.queue[0]!;
      const size = rowsOf(next);
      const counted = next.kind === "staged" || next.kind === "change";
      const key = next.kind === "change" ? `${next.changeKind.name}|${next.changeKind.key(next.change)}` : undefined;
      if (batch.length > 0 && (rows + size > MAX_BATCH_ROWS || (counted && staged >= MAX_BATCH_STAGED) || (key && keys.has(key)))) break;
      this.queue.shift();
      rows += size;
      if (counted) staged++;
      if (key) keys.add(key);
      batch.push(next);
    }
    return batch;
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.queue.length > 0) {
      const batch = this.takeBatch();
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

  /** A direct append, group or change fails its caller; a staged one is still safe in the outbox, where the relay finds it. */
  private settleFailed(pending: PendingAppend, error: unknown): void {
    if (pending.kind === "staged") pending.resolve({ events: [] });
    else pending.reject(error);
  }

  /**
   * Numbers and stores a batch in one statement: per room, numbers are handed out in batch order. Direct events
   * come in as arrays; staged ones are deleted from the outbox in the same statement (exactly once across nodes);
   * changes are made by their kind's SQL, and their events come from the rows they wrote. Every event of the batch
   * gets its own position (`ord`), a group's or change's events consecutive ones, in order.
   */
  private async appendBatch(batch: PendingAppend[]): Promise<ItemResult[]> {
    const params = new Params();
    const direct = {
      ord: [] as number[],
      tenant: [] as string[],
      eventId: [] as string[],
      type: [] as string[],
      data: [] as string[],
      ts: [] as string[],
      targets: [] as string[],
    };
    const staged = { id: [] as string[], ord: [] as number[] };
    const changes = new Map<StateChangeKind<unknown, unknown>, { items: unknown[]; ords: number[] }>();
    /** ord → the batch item and the index of the event within it; `input` for direct events (their data). */
    const owners: Array<{ item: number; index: number; input: StoredEventInput | undefined }> = [];
    batch.forEach((pending, item) => {
      if (pending.kind === "staged") {
        staged.id.push(pending.outboxId);
        staged.ord.push(owners.length);
        owners.push({ item, index: 0, input: undefined });
        return;
      }
      if (pending.kind === "change") {
        let group = changes.get(pending.changeKind);
        if (!group) changes.set(pending.changeKind, (group = { items: [], ords: [] }));
        group.items.push(pending.change);
        group.ords.push(owners.length);
        for (let index = 0; index < MAX_EVENTS_PER_CHANGE; index++) owners.push({ item, index, input: undefined });
        return;
      }
      directInputs(pending).forEach((input, index) => {
        direct.ord.push(owners.length);
        owners.push({ item, index, input });
        direct.tenant.push(input.tenantId);
        direct.eventId.push(input.eventId);
        direct.type.push(input.type);
        direct.data.push(JSON.stringify(input.data ?? null));
        direct.ts.push(input.ts.toISOString());
        direct.targets.push([...new Set(input.targets.map(targetKey))].join("\n"));
      });
    });
    const sources: string[] = [];
    const ctes: string[] = [];
    if (direct.ord.length > 0) {
      const p = params.add;
      ctes.push(`direct AS (
         SELECT ord, tenant, event_id, type, data::jsonb AS data, (ts::timestamptz AT TIME ZONE 'UTC') AS ts,
                string_to_array(targets, chr(10)) AS targets, false AS returned
         FROM unnest(${p(direct.ord)}::int[], ${p(direct.tenant)}::text[], ${p(direct.eventId)}::text[], ${p(direct.type)}::text[],
                     ${p(direct.data)}::text[], ${p(direct.ts)}::text[], ${p(direct.targets)}::text[])
           AS t(ord, tenant, event_id, type, data, ts, targets)
       )`);
      sources.push("direct");
    }
    if (staged.id.length > 0) {
      ctes.push(...claimOutboxRows(staged.id, staged.ord, params.add));
      sources.push(CLAIMED_OUTBOX_INPUT);
    }
    for (const [changeKind, group] of changes) {
      const name = changeKind.name;
      ctes.push(changeKind.build(group.items, params.add));
      ctes.push(`${name}_in AS (
         SELECT (${params.add(group.ords)}::int[])[e.item + 1] + e.sub AS ord, e.tenant, e.event_id, e.type, e.data, e.ts, e.targets, true AS returned
         FROM ${name}_events e
       )`);
      sources.push(`${name}_in`);
    }
    const changeRows = [...changes.entries()].map(
      ([changeKind, group]) =>
        `SELECT 'r'::text, (${params.add(group.ords)}::int[])[r.item + 1], NULL, ${params.add(changeKind.name)}::text, NULL, NULL::int, NULL, NULL, NULL, r.row, NULL::timestamp, NULL::int FROM ${changeKind.name}_rows r`,
    );
    const epoch = params.add(newEpoch());
    const rows = await this.numbering(numberingStatement(ctes, sources, epoch, changeRows), params.values);
    const results: ItemResult[] = batch.map((pending) => ({
      events: Array.from(
        { length: pending.kind === "change" ? MAX_EVENTS_PER_CHANGE : Math.max(1, directInputs(pending).length) },
        () => [],
      ),
    }));
    const returnedData = returnedDataByOrd(rows);
    const kinds = new Map([...changes.keys()].map((kind) => [kind.name, kind]));
    for (const row of rows) {
      const owner = owners[row.ord]!;
      if (row.k === "r") {
        results[owner.item]!.row = kinds.get(row.ns)!.parse(row.data);
        continue;
      }
      results[owner.item]!.events[owner.index]!.push(toSequenced(row, owner.input ? owner.input.data : returnedData.get(row.ord)));
    }
    batch.forEach((pending, i) => {
      if (pending.kind === "change") results[i]!.events = results[i]!.events.filter((copies) => copies.length > 0);
    });
    return results;
  }

  /**
   * Numbers outbox rows older than `olderThanMs` that nobody numbered: their node died (or lost the database)
   * between committing a change and numbering its events (see claimOrphanedOutboxRows).
   */
  async relayOrphans(olderThanMs: number, limit: number): Promise<SequencedEvent[]> {
    const params = new Params();
    const claim = claimOrphanedOutboxRows(olderThanMs, limit, params.add);
    const epoch = params.add(newEpoch());
    const rows = await this.numbering(numberingStatement(claim, [CLAIMED_OUTBOX_INPUT], epoch, []), params.values);
    const data = returnedDataByOrd(rows);
    return rows.map((row) => toSequenced(row, data.get(row.ord)));
  }

  /** Runs a numbering statement: timed, and its size recorded (how much group commit gathered). */
  private async numbering(text: string, values: readonly unknown[]): Promise<NumberedRow[]> {
    const rows = await this.observer.timeQuery("event_numbering", () => this.sql.query<NumberedRow[]>(text, values));
    const copies = rows.reduce((n, row) => n + (row.k === "e" ? 1 : 0), 0);
    if (copies > 0) this.observer.batchRows(copies);
    return rows;
  }
}

/** A staged event's or change's event data comes back once, on its first copy; every copy of the event shares it. */
function returnedDataByOrd(rows: NumberedRow[]): Map<number, unknown> {
  const data = new Map<number, unknown>();
  for (const row of rows) if (row.k === "e" && row.copy === 1) data.set(row.ord, row.data);
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
 * The one numbering statement. `ctes` define the inputs named in `sources`, each one row per event
 * (ord, tenant, event_id, type, data, ts, targets, returned). Each room's block of numbers is reserved under its
 * RoomSequence row lock (rows upserted in sorted order: no deadlocks); the event is stored once in "Event" with
 * its positions, and once per room in "RoomEvent", all in the same statement. Events whose data the caller does
 * not hold (staged, changes) return it once, on their first room; `changeRows` add the changes' new rows.
 */
function numberingStatement(ctes: readonly string[], sources: readonly string[], epoch: string, changeRows: readonly string[]): string {
  // Every later step reads `numbered` alone, which carries each event's fields (its data on its first copy only):
  // no step joins back to `events_in` by ord. The planner cannot estimate these CTEs (a change's UPDATE is
  // guessed at one row), so such joins ran as nested loops over every pair, about two thirds of a 250-change
  // statement (docs/performance.md).
  return `WITH ${ctes.join(",\n")},
     events_in AS (
       ${sources.map((source) => `SELECT ord, tenant, event_id, type, data, ts, targets, returned FROM ${source}`).join(" UNION ALL ")}
     ), input AS (
       SELECT e.ord, e.tenant, ${targetNamespaceSql("t.target")} AS ns, ${targetRoomSql("t.target")} AS room,
              e.event_id, e.type, e.ts, e.returned, t.copy::int AS copy, CASE WHEN t.copy = 1 THEN e.data END AS data
       FROM events_in e
       CROSS JOIN LATERAL unnest(ARRAY(SELECT DISTINCT u.target FROM unnest(e.targets) AS u(target))) WITH ORDINALITY AS t(target, copy)
     ), counts AS (
       SELECT tenant, ns, room, count(*)::int AS n FROM input GROUP BY tenant, ns, room
     ), seqs AS (
       INSERT INTO "RoomSequence" ("tenantId", "namespace", "room", "seq", "epoch")
       SELECT tenant, ns, room, n, ${epoch} FROM counts ORDER BY tenant, ns, room
       ON CONFLICT ("tenantId", "namespace", "room") DO UPDATE SET "seq" = "RoomSequence"."seq" + EXCLUDED."seq"
       RETURNING "tenantId", "namespace", "room", "seq", "epoch"
     ), numbered AS (
       SELECT i.ord, i.tenant, i.ns, i.room, s."epoch",
              (s."seq" - c.n + row_number() OVER (PARTITION BY i.tenant, i.ns, i.room ORDER BY i.ord))::int AS seq,
              i.copy, i.event_id, i.type, i.ts, i.returned, i.data
       FROM input i
       JOIN counts c ON c.tenant = i.tenant AND c.ns = i.ns AND c.room = i.room
       JOIN seqs s ON s."tenantId" = i.tenant AND s."namespace" = i.ns AND s."room" = i.room
     ), stored_events AS (
       INSERT INTO "Event" ("id", "tenantId", "type", "data", "ts", "targets", "seqs")
       SELECT min(event_id), min(tenant), min(type), (array_agg(data) FILTER (WHERE copy = 1))[1], min(ts),
              array_agg(${targetOfSql("ns", "room")} ORDER BY ns, room), array_agg(seq ORDER BY ns, room)
       FROM numbered GROUP BY ord
       RETURNING 1
     ), stored_rooms AS (
       INSERT INTO "RoomEvent" ("tenantId", "namespace", "room", "seq", "eventId")
       SELECT tenant, ns, room, seq, event_id FROM numbered
       RETURNING 1
     )
     SELECT 'e'::text AS k, n.ord, n.tenant, n.ns, n.room, n.seq, n.epoch, n.event_id, n.type,
            CASE WHEN n.returned AND n.copy = 1 THEN n.data END AS data, n.ts, n.copy
     FROM numbered n
     ${changeRows.map((select) => `UNION ALL ${select}`).join("\n     ")}
     ORDER BY 2, 4, 5`;
}
