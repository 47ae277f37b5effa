import type { Namespace } from "socket.io";
import type { FailureReporter } from "../dependencies/status.js";
import type { EventLogReader } from "../events/event-log-reader.js";
import { readHistory } from "../events/history.js";
import { roomKey } from "../events/room-key.js";
import type { TenantFairShare } from "../limits/tenant-fair-share.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { decodeCursor, type CursorPosition } from "../protocol/cursor.js";
import type { Envelope } from "../protocol/events.js";
import type { NamespaceName } from "../protocol/namespaces.js";
import type { EngineConnection, OutboundGuard } from "./outbound.js";
import { RoomFeed } from "./room-feed.js";
import { emitStored } from "./types.js";

/** A room of one namespace, as the log names it. */
export interface RoomWhere {
  tenantId: string;
  namespace: NamespaceName;
  room: string;
}

/** The part of a Socket.IO socket the feeds use. */
export interface FeedSocket {
  readonly id: string;
  readonly conn: unknown;
}

/** Rooms per statement of the periodic head check. */
const HEAD_CHECK_BATCH = 500;

/**
 * The sockets whose connection fell behind (see OutboundGuard) while live in a room, and what to run for each once
 * the connection has drained: the socket's catch-up from the log. Shared by the namespaces, which share connections.
 */
export class BehindConnections {
  private readonly byConnection = new WeakMap<object, Array<() => void>>();

  note(conn: object, resume: () => void): void {
    let waiting = this.byConnection.get(conn);
    if (!waiting) this.byConnection.set(conn, (waiting = []));
    waiting.push(resume);
  }

  /** The connection drained: runs (and forgets) what waited for it. */
  resume(conn: object): void {
    const waiting = this.byConnection.get(conn);
    this.byConnection.delete(conn);
    for (const run of waiting ?? []) run();
  }
}

export interface RoomFeedsOptions {
  namespace: NamespaceName;
  eventLog: EventLogReader;
  fairShare: TenantFairShare;
  outbound: OutboundGuard;
  behind: BehindConnections;
  metrics: Metrics;
  logger: Logger;
  failures: FailureReporter;
  /** A gap larger than this is not filled from the log (the replay bound): the room's sockets start again. */
  maxGap: number;
  /** Rows and event bytes per page read from the log (the replay's page sizes). */
  pageRows: number;
  pageBytes: number;
  /** Bytes of events a feed keeps while it waits for a gap (MAX_SOCKET_BUFFER_BYTES). */
  maxPendingBytes: number;
  gapWaitMs?: number;
}

type Adapter = Namespace["adapter"];
/** The part of socket.io-adapter's BroadcastOptions that selects sockets. */
interface BroadcastOptions {
  rooms: Set<string>;
  except?: Set<string>;
}
/** The two methods of socket.io-adapter 2.5's in-memory Adapter that a local broadcast goes through. */
interface BroadcastInternals {
  _encode(packet: { data?: unknown }, options: unknown): ReadonlyArray<string | { byteLength: number }>;
  apply(opts: BroadcastOptions, callback: (socket: FeedSocket) => void): void;
}

/**
 * The room feeds of one namespace on this node: one RoomFeed per room that has sockets here, and the hook through
 * which every live event of those rooms reaches its feed.
 *
 * Every adapter (in-memory, Redis, sharded Redis) writes to local sockets through the in-memory Adapter's
 * `broadcast`, whether the broadcast started on this node or came from another one, and that method encodes the
 * packet (`_encode`) and then, synchronously, walks the room's sockets (`apply`). The packet is seen on its way
 * through `_encode` and judged by the room's feed in the `apply` that follows: written to the room's live sockets
 * (once encoded for all of them), kept for later, or dropped. `apply` called alone (addSockets, fetchSockets) finds
 * no packet and is left as it was; so are packets that are not stored events (notices) and rooms without a feed.
 */
export class RoomFeeds {
  private readonly feeds = new Map<string, { feed: RoomFeed; where: RoomWhere }>();
  /** The envelope a feed is writing itself (kept or read from the log): the hook writes it without asking again. */
  private writing: Envelope | undefined;
  private readonly gaps;
  private readonly gapEvents;
  /** Told when a socket's connection drained after it fell behind in a room: the subscriptions catch it up. */
  onCaughtUp: (socket: FeedSocket, room: string) => void = () => undefined;

  constructor(
    private readonly nsp: Namespace,
    private readonly options: RoomFeedsOptions,
  ) {
    this.gaps = options.metrics.deliveryGaps;
    this.gapEvents = options.metrics.deliveryGapEvents.labels({ namespace: options.namespace });
    const adapter = nsp.adapter;
    this.hook(adapter);
    // The last socket left the room on this node: nothing more to deliver here.
    adapter.on("delete-room", (key: string) => {
      const entry = this.feeds.get(key);
      if (!entry) return;
      entry.feed.close();
      this.feeds.delete(key);
    });
  }

  /**
   * The room's feed on this node, created for its first subscriber. Call it in the same tick as the socket's
   * `join`: a feed lives while the room has sockets here (it is closed when the adapter deletes the room).
   */
  open(where: RoomWhere): RoomFeed {
    const key = roomKey(where.tenantId, where.room);
    const existing = this.feeds.get(key);
    if (existing && !existing.feed.isClosed) return existing.feed;
    const feed = this.create(key, where);
    this.feeds.set(key, { feed, where });
    return feed;
  }

  get(tenantId: string, room: string): RoomFeed | undefined {
    return this.feeds.get(roomKey(tenantId, room))?.feed;
  }

  /** Feeds on this node (for tests and metrics). */
  get size(): number {
    return this.feeds.size;
  }

  /**
   * Reads the heads of every room with a started feed, a batch of rooms per statement, and tells each feed: one
   * that is behind its room's head reads what it missed after a short wait (it may still be on its way).
   */
  async checkHeads(): Promise<void> {
    const started = [...this.feeds.values()].filter(({ feed }) => feed.position !== null);
    for (let i = 0; i < started.length; i += HEAD_CHECK_BATCH) {
      const batch = started.slice(i, i + HEAD_CHECK_BATCH);
      const heads = await this.options.eventLog.peekHeads(
        this.options.namespace,
        batch.map(({ where }) => where),
      );
      for (const { tenantId, room, head } of heads) this.feeds.get(roomKey(tenantId, room))?.feed.check(head);
    }
  }

  private create(key: string, where: RoomWhere): RoomFeed {
    const { eventLog, fairShare, logger, failures, outbound, pageRows, pageBytes, namespace } = this.options;
    const inTurn = <T>(work: () => Promise<T>): Promise<T> => fairShare.run(where.tenantId, work, false);
    return new RoomFeed({
      log: {
        head: () => inTurn(() => eventLog.head(where.tenantId, namespace, where.room)),
        page: (from: CursorPosition, upTo: CursorPosition) =>
          inTurn(async () => (await readHistory(eventLog, where, upTo, from, pageRows, pageBytes)).events),
      },
      write: (envelope) => {
        this.writing = envelope;
        try {
          emitStored(this.nsp.local.to(key), envelope);
        } finally {
          this.writing = undefined;
        }
      },
      lost: (reason) => {
        this.gaps.inc({ namespace, outcome: "lost" });
        const sockets = this.nsp.adapter.rooms.get(key);
        logger.warn(
          { tenant: where.tenantId, nsp: namespace, room: where.room, sockets: sockets?.size ?? 0, reason },
          "a room's events cannot be continued from the log: its sockets reconnect and resume from their cursors",
        );
        // The clients reconnect and subscribe again with their cursors, which tells each to resume or to reload.
        for (const id of sockets ?? []) {
          const socket = this.nsp.sockets.get(id);
          if (socket) outbound.closeSlowConsumer(socket.conn, "catch_up_failed");
        }
      },
      failed: (error) => failures.report(error, "could not read a room's missed events from the log; trying again", { room: where.room }),
      filled: (events) => {
        this.gaps.inc({ namespace, outcome: "filled" });
        this.gapEvents.inc(events);
      },
      maxGap: this.options.maxGap,
      maxPendingBytes: this.options.maxPendingBytes,
      gapWaitMs: this.options.gapWaitMs,
    });
  }

  private hook(adapter: Adapter): void {
    const internals = adapter as unknown as BroadcastInternals;
    const encode = internals._encode.bind(adapter);
    const apply = internals.apply.bind(adapter);
    const { outbound, behind } = this.options;
    let packet: { data?: unknown } | undefined;
    let packetBytes = 0;
    internals._encode = (next, options) => {
      packet = next;
      const encoded = encode(next, options);
      packetBytes = 0;
      // A string's length, not its UTF-8 byte length: O(1), and the JSON of events is nearly all ASCII.
      for (const part of encoded) packetBytes += typeof part === "string" ? part.length : part.byteLength;
      return encoded;
    };
    internals.apply = (opts, callback) => {
      const current = packet;
      packet = undefined;
      const envelope = current && opts.rooms.size === 1 ? storedEnvelope(current.data) : undefined;
      const key = envelope ? opts.rooms.values().next().value : undefined;
      const entry = key === undefined ? undefined : this.feeds.get(key);
      if (!envelope || !entry) return apply(opts, callback);
      const { feed } = entry;
      const cursor = decodeCursor(envelope.cursor);
      if (!cursor) return apply(opts, callback);
      // The feed's own writes (kept events, reads of the log) were judged already; every other one is judged here.
      const own = this.writing === envelope;
      if (!own && !feed.accept(envelope, cursor, packetBytes)) return;
      const lagging = feed.lagging;
      const anyBehind = outbound.behindCount > 0;
      // Sockets that are not live, or whose connection fell behind, are skipped: a check per socket only while there
      // are any (the usual room is written with the adapter's own loop). The packet stays encoded once for the room.
      apply(
        opts,
        lagging.size === 0 && !anyBehind
          ? callback
          : (socket) => {
              if (lagging.has(socket.id)) return;
              if (anyBehind && outbound.isBehind(socket.conn as EngineConnection)) {
                feed.setLag(socket.id, { reason: "behind", position: { epoch: cursor.epoch, seq: cursor.seq - 1 } });
                behind.note(socket.conn as object, () => this.onCaughtUp(socket, entry.where.room));
                return;
              }
              callback(socket);
            },
      );
      if (!own) feed.delivered(cursor);
    };
  }
}

/** A packet's data is `[type, envelope]` for a stored event; anything else (acks, notices) is not judged. */
function storedEnvelope(data: unknown): Envelope | undefined {
  if (!Array.isArray(data) || data.length < 2) return undefined;
  const envelope: unknown = data[1];
  if (typeof envelope !== "object" || envelope === null) return undefined;
  const { cursor, room } = envelope as Partial<Envelope>;
  return typeof cursor === "string" && typeof room === "string" ? (envelope as Envelope) : undefined;
}
