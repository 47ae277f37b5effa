import { randomUUID } from "node:crypto";
import type { Db, PrismaClient } from "../db/client.js";
import type { FailureReporter } from "../dependencies/status.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { NamespaceName } from "../protocol/namespaces.js";
import type { Envelope, EventData, EventName, EventNamespaces } from "../protocol/events.js";
import { toEnvelope, type SequencedEvent } from "./event-log.js";
import type { EventLogReader } from "./event-log-reader.js";
import type { EventLogWriter } from "./event-log-writer.js";
import { insertOutboxEvents, type EventTarget } from "./outbox.js";
import type { StateChangeKind } from "./state-change.js";
import type { CursorPosition } from "../protocol/cursor.js";
import { prismaSql } from "../db/sql.js";
import { roomKey } from "./room-key.js";
import { every, type Periodic } from "../every.js";

/** Delivers one envelope to every socket of a room key, on every node (Socket.IO + Redis adapter). */
export type Broadcast = (namespace: NamespaceName, roomKey: string, envelope: Envelope) => void;

/**
 * A built-in event to publish. The catalogue (src/protocol/events.ts) decides which namespaces it goes to, so
 * `rooms` names rooms (as clients name them) for exactly those namespaces, and the shape of `data`. The event is
 * stored and delivered once per room, with one id.
 */
export interface EventDraft<K extends EventName> {
  tenantId: string;
  type: K;
  rooms: { readonly [N in EventNamespaces<K>]: readonly string[] };
  data: EventData<K>;
}

/** An event a backend publishes (`POST /api/v1/events`): its own type, outside the catalogue, into one room. */
export interface CustomEventInput {
  tenantId: string;
  namespace: NamespaceName;
  room: string;
  type: string;
  data: unknown;
}

/** The stored form of an event: its type, data and every (namespace, room) it is delivered in. */
interface StoredDraft {
  tenantId: string;
  type: string;
  targets: EventTarget[];
  data: unknown;
}

/** What a state change's transaction uses to commit its events with it. */
export interface Outbox {
  /** Commits this event with the transaction (written to the outbox when the work returns). */
  add<K extends EventName>(draft: EventDraft<K>): void;
  /** Outbox rows the work inserted itself, in one statement with its state change (see TaskService). */
  staged(ids: readonly string[]): void;
}

export interface EventPublisherOptions {
  /** Outbox rows older than this were left by a node that died (or lost the database): any node relays them. */
  relayAfterMs: number;
  /** Where a failed relay is reported (an outage is logged once, not once per interval). */
  failures: FailureReporter;
}

/** How often each node looks for outbox rows to relay: twice per relayAfterMs, between 250 ms and 1 s. */
function relayIntervalFor(relayAfterMs: number): number {
  return Math.max(250, Math.min(1000, Math.floor(relayAfterMs / 2)));
}

function stored<K extends EventName>(draft: EventDraft<K>): StoredDraft {
  const targets = (Object.entries(draft.rooms) as Array<[NamespaceName, readonly string[]]>).flatMap(([namespace, rooms]) =>
    rooms.map((room) => ({ namespace, room })),
  );
  return { tenantId: draft.tenantId, type: draft.type, targets, data: draft.data };
}

/**
 * The only way an event reaches clients: store it in the event log (which assigns each room's cursor), then
 * broadcast the envelope to each room. Storing first means a client that sees an event can always find it
 * again in the history.
 *
 * Events that announce a state change are committed in the change's own transaction (`transaction()`, or a
 * statement that writes the outbox itself), so a crash can never leave a change without its events or an
 * event without its change; they are numbered and broadcast only after the commit.
 */
export class EventPublisher {
  private relayTimer: Periodic | undefined;
  private relaying = false;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly log: EventLogWriter,
    /** Only for `head`: the domains read a room's position through the publisher they hold. */
    private readonly reader: EventLogReader,
    private readonly broadcast: Broadcast,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    private readonly options: EventPublisherOptions,
  ) {
    // Broadcast in the event log's own flush, in numbering order (see EventLogWriter.onStored); callers only wait.
    log.onStored((copies) => this.sent.set(copies, this.deliver(copies)));
  }

  /** The envelopes each stored event was broadcast as, for callers that answer with them (the publish API). */
  private readonly sent = new WeakMap<SequencedEvent[], Envelope[]>();

  /** Publishes a built-in event that announces no stored state change (pool aggregates). */
  async publish<K extends EventName>(draft: EventDraft<K>): Promise<Array<Envelope<EventData<K>>>> {
    const stopTimer = this.metrics.publishDuration.startTimer();
    const copies = await this.log.append({ ...stored(draft), eventId: randomUUID(), ts: new Date() });
    const envelopes = (this.sent.get(copies) ?? []) as Array<Envelope<EventData<K>>>;
    stopTimer();
    return envelopes;
  }

  /**
   * Publishes several events that announce no stored state change as one unit: all are stored (in one
   * statement) and then broadcast, or none is and the promise rejects. Returns the envelopes of each input, in
   * input order; within a room the events get consecutive cursors in input order, and are broadcast in that order.
   */
  async publishBatch(inputs: readonly CustomEventInput[]): Promise<Envelope[][]> {
    if (inputs.length === 0) return [];
    const stopTimer = this.metrics.publishDuration.startTimer();
    const ts = new Date();
    const copies = await this.log.appendGroup(
      inputs.map((input) => ({
        tenantId: input.tenantId,
        targets: [{ namespace: input.namespace, room: input.room }],
        eventId: randomUUID(),
        type: input.type,
        data: input.data,
        ts,
      })),
    );
    const envelopes = copies.map((event) => this.sent.get(event) ?? []);
    stopTimer();
    return envelopes;
  }

  /**
   * Runs `work` in one PostgreSQL transaction; the events it adds to the outbox commit with it, and are numbered
   * and broadcast once it has committed. A crash after the commit leaves them in the outbox for the relay.
   */
  async transaction<R>(work: (tx: Db, outbox: Outbox) => Promise<R>): Promise<R> {
    let staged: string[] = [];
    const result = await this.prisma.$transaction(
      async (tx) => {
        staged = [];
        const drafts: StoredDraft[] = [];
        const ids: string[] = [];
        const outbox: Outbox = {
          add: (draft) => {
            drafts.push(stored(draft));
            ids.push(""); // placeholder, keeps drafts and externally staged rows in the order they were added
          },
          staged: (rows) => ids.push(...rows),
        };
        const value = await work(tx, outbox);
        const inserted = await insertOutboxEvents(prismaSql(tx), drafts);
        let next = 0;
        staged = ids.map((id) => (id === "" ? inserted[next++]! : id));
        return value;
        // Generous: under load a transaction may wait for a pooled connection, and a timeout here is a failed change.
      },
      { maxWait: 10_000, timeout: 30_000 },
    );
    await this.relay(staged);
    return result;
  }

  /**
   * Makes a state change of a kind the event log writes itself (tasks): the change and its events commit in the
   * log's group-committed statement, and the events are broadcast as soon as it returns. Null when refused.
   */
  async write<C, R>(kind: StateChangeKind<C, R>, change: C): Promise<R | null> {
    const stopTimer = this.metrics.publishDuration.startTimer();
    const { row } = await this.log.write(kind, change);
    stopTimer();
    return row;
  }

  /** A room's current position (created at 0 for a room without events yet). */
  head(tenantId: string, namespace: NamespaceName, room: string): Promise<CursorPosition> {
    return this.reader.head(tenantId, namespace, room);
  }

  /** Numbers (and so broadcasts) committed outbox rows, in order. Never throws: what fails stays for the relay. */
  async relay(outboxIds: readonly string[]): Promise<void> {
    if (outboxIds.length === 0) return;
    const stopTimer = this.metrics.publishDuration.startTimer();
    await Promise.all(outboxIds.map((id) => this.log.number(id)));
    stopTimer();
  }

  private deliver(stored: SequencedEvent[]): Envelope[] {
    const envelopes: Envelope[] = [];
    for (const event of stored) {
      const envelope = toEnvelope(event.room, event.epoch, event);
      this.broadcast(event.namespace, roomKey(event.tenantId, event.room), envelope);
      this.metrics.eventPublished(event.namespace, event.tenantId);
      envelopes.push(envelope);
    }
    return envelopes;
  }

  /** Starts relaying orphaned outbox rows (every node does; they never wait for each other). */
  startRelay(): void {
    this.relayTimer = every(relayIntervalFor(this.options.relayAfterMs), () => this.relayOrphans(), {
      name: "outbox relay",
      logger: this.logger,
    });
  }

  stopRelay(): void {
    this.relayTimer?.stop();
  }

  async relayOrphans(): Promise<number> {
    if (this.relaying) return 0;
    this.relaying = true;
    let total = 0;
    try {
      for (;;) {
        const stored = await this.log.relayOrphans(this.options.relayAfterMs, 500);
        if (stored.length === 0) break;
        this.deliver(stored);
        const events = new Set(stored.map((e) => e.eventId)).size;
        total += events;
        this.metrics.outboxRelayed.inc(events);
        if (events < 500) break;
      }
      if (total > 0) this.logger.warn({ events: total }, "relayed events a node had committed but not numbered");
    } catch (error) {
      this.options.failures.report(error, "outbox relay failed; retrying next interval");
    } finally {
      this.relaying = false;
    }
    return total;
  }
}
