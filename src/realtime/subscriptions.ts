import { z } from "zod";
import type { FailureReporter } from "../dependencies/status.js";
import type { ResourceDirectory } from "../domains/resources.js";
import { authorizeRoom } from "../domains/room-access.js";
import { AppError, BadRequestError, CursorExpiredError, InvalidRoomError, RateLimitedError, SocketDisconnectedError } from "../errors.js";
import type { EventLogReader } from "../events/event-log-reader.js";
import { parseAfter, readHistory, startOf } from "../events/history.js";
import { roomKey } from "../events/room-key.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { encodeCursor, type CursorPosition } from "../protocol/cursor.js";
import type { SubscribeAck, UnsubscribeAck } from "../protocol/events.js";
import type { NamespaceName } from "../protocol/namespaces.js";
import { parseRoom } from "../protocol/rooms.js";
import { emitStored, type RoomState, type SwitchyardSocket } from "./types.js";
import { acknowledge } from "./ack.js";
import { lowWatermarkOf, SlowConsumerError, type EngineConnection, type OutboundGuard } from "./outbound.js";
import { ReplayLane, SupersededError, type ReplayTicket, type Semaphore } from "./replay.js";
import type { RoomFeeds, RoomWhere } from "./room-feeds.js";
import type { RoomFeed } from "./room-feed.js";
import type { TenantFairShare } from "../limits/tenant-fair-share.js";

const SubscribeSchema = z.object({ room: z.string(), after: z.string().max(64).optional() });
const UnsubscribeSchema = z.object({ room: z.string() });

/** How many stored events one subscribe replays at most; a client further behind pages through /api/v1/events. */
export const MAX_REPLAY = 10_000;
/** Rows per replay page, at most; pages are also bounded by bytes (see ReplaySizing). */
const REPLAY_PAGE_ROWS = 500;
/** Event data per replay page, at most (the first event of a page always fits). */
const REPLAY_PAGE_MAX_BYTES = 1_048_576;

/**
 * Replay page sizes and the watermark they wait for, from the connection's buffer limit: a page is sent only once
 * at most a quarter of the limit is unsent, and holds at most half the limit of event data and a row count whose
 * envelopes (id, type, room, cursor, ts: a few hundred bytes) fit in the last quarter. A replay alone therefore
 * never takes a connection that reads over its limit, whatever the size of the events.
 */
export interface ReplaySizing {
  lowWatermark: number;
  pageBytes: number;
  pageRows: number;
}
export function replaySizing(maxSocketBufferBytes: number): ReplaySizing {
  return {
    lowWatermark: lowWatermarkOf(maxSocketBufferBytes),
    pageBytes: Math.min(REPLAY_PAGE_MAX_BYTES, Math.floor(maxSocketBufferBytes / 2)),
    pageRows: Math.max(1, Math.min(REPLAY_PAGE_ROWS, Math.floor(maxSocketBufferBytes / 2048))),
  };
}

export interface SubscriptionDeps {
  namespace: NamespaceName;
  resources: ResourceDirectory;
  eventLog: EventLogReader;
  metrics: Metrics;
  logger: Logger;
  /** Where an unavailable database is recorded (logged once per outage, not once per failed subscribe). */
  failures: FailureReporter;
  maxRoomsPerSocket: number;
  /** Knows how much a connection has not sent yet; closes connections that do not read. */
  outbound: OutboundGuard;
  /** Node-wide: replay pages held in memory at once (read from the database, not yet handed to a socket). */
  replayPages: Semaphore;
  /** The namespace's rooms as this node delivers them: where each stands, and which sockets are not live in it. */
  feeds: RoomFeeds;
  /** The node's database-bound work shared among tenants: each read of the log for a socket takes its turn. */
  fairShare: TenantFairShare;
}

/**
 * `subscribe` / `unsubscribe` for one namespace: the client names a room, the tenant comes from its token.
 * One instance per namespace; its listeners are shared by every socket (they find the socket as `this`), so a
 * connected socket costs no closures here.
 *
 * A socket's place in a room: live (at the room's feed position, see RoomFeed: it is written every live event of
 * the room once, in order), or lagging with its own position, which a replay moves forward through the log until
 * it equals the feed's; then it is live. A subscribe with `after`, the catch-up of a connection that fell behind,
 * and the wait of a socket that is ahead of this node are that one mechanism.
 */
export class RoomSubscriptions {
  private readonly gauge;
  private readonly onSubscribe;
  private readonly onUnsubscribe;
  private readonly onDisconnect;
  private readonly sizing: ReplaySizing;

  constructor(private readonly deps: SubscriptionDeps) {
    this.gauge = deps.metrics.subscriptions.labels({ namespace: deps.namespace });
    this.sizing = replaySizing(deps.outbound.maxBytes);
    const self = this;
    this.onSubscribe = function (this: SwitchyardSocket, ...args: unknown[]): void {
      void self.handle(this, args, (state, payload) => self.subscribe(this, state, payload));
    };
    this.onUnsubscribe = function (this: SwitchyardSocket, ...args: unknown[]): void {
      void self.handle(this, args, (state, payload) => self.unsubscribe(this, state, payload));
    };
    this.onDisconnect = function (this: SwitchyardSocket): void {
      const state = this.data.roomState;
      if (!state) return;
      self.gauge.dec(state.rooms.size);
      state.replays?.abortAll(new SocketDisconnectedError());
      // Socket.IO took the socket out of its rooms; a room that still has other sockets keeps its feed.
      for (const rooms of [state.rooms, state.joining ?? []]) {
        for (const room of rooms) deps.feeds.get(this.data.principal.tenantId, room)?.unlag(this.id);
      }
    };
    deps.feeds.onCaughtUp = (socket, room) => this.catchUp(socket as SwitchyardSocket, room);
  }

  attach(socket: SwitchyardSocket): void {
    socket.on("subscribe", this.onSubscribe);
    socket.on("unsubscribe", this.onUnsubscribe);
    // `on`, not `once` (a disconnect comes once): `once` would wrap the shared listener in new objects per socket.
    socket.on("disconnect", this.onDisconnect);
  }

  private state(socket: SwitchyardSocket): RoomState {
    const data = socket.data;
    data.roomState ??= { rooms: new Set() };
    return data.roomState;
  }

  private handle(socket: SwitchyardSocket, args: unknown[], run: (state: RoomState, payload: unknown) => Promise<object>): Promise<void> {
    const { logger, metrics, failures, namespace } = this.deps;
    return acknowledge(
      args,
      // The socket's event rate was checked before this handler ran (event-gate.ts).
      async (payload) => run(this.state(socket), payload),
      { logger, metrics, failures, context: { nsp: namespace } },
    );
  }

  private async subscribe(socket: SwitchyardSocket, state: RoomState, payload: unknown): Promise<SubscribeAck> {
    const { deps } = this;
    const { principal } = socket.data;
    const subscribed = state.rooms;
    const request = SubscribeSchema.safeParse(payload);
    if (!request.success) throw new BadRequestError("subscribe expects { room: string, after?: string }");
    const { room: name, after } = request.data;
    const room = await authorizeRoom(principal, deps.namespace, name, deps.resources);
    const requested = parseAfter(after);
    if (!subscribed.has(room.name) && subscribed.size >= deps.maxRoomsPerSocket) {
      throw new RateLimitedError(`at most ${deps.maxRoomsPerSocket} rooms per socket`);
    }
    if (socket.disconnected) throw new SocketDisconnectedError();
    const where = { tenantId: principal.tenantId, namespace: deps.namespace, room: room.name };
    const key = roomKey(principal.tenantId, room.name);

    // The subscribe decides where the socket stands in the room: a replay of the room under way for it (an earlier
    // subscribe, or a catch-up) stops here, and leaves the room to this one.
    state.replays?.supersede(room.name);
    const wasSubscribed = subscribed.has(room.name);
    // Opened and joined in one tick: the feed lives while the room has sockets on this node.
    const feed = deps.feeds.open(where);
    // Where a socket already subscribed stood, to put it back there should this subscribe be refused.
    const previous = wasSubscribed ? (feed.lagging.has(socket.id) ? (feed.lagging.get(socket.id)!.position ?? null) : feed.position) : null;
    // Not live until it has its position: live events written meanwhile must not reach it out of turn.
    feed.setLag(socket.id, {
      reason: requested ? "replaying" : "starting",
      position: requested && requested !== "start" ? requested : null,
    });
    const joined = socket.join(key);
    (state.joining ??= new Set()).add(room.name);
    const undo = (error: unknown): void => this.undo(socket, room.name, feed, previous, error);
    if (!requested) {
      try {
        await joined;
        await feed.start();
        if (socket.disconnected) throw new SocketDisconnectedError();
        // A later subscribe of the room (a replay), or an unsubscribe, came meanwhile: that one decides.
        if (state.replays?.has(room.name) || !socket.rooms.has(key) || feed.isClosed) throw new SupersededError(room.name);
      } catch (error) {
        undo(error);
        throw error;
      } finally {
        state.joining.delete(room.name);
      }
      // Live from here, synchronously with reading where the feed stands: every later event of the room comes once.
      feed.unlag(socket.id);
      this.subscribed(socket, state, room.name);
      return { ok: true as const, room: room.name, cursor: encodeCursor(feed.position!), replayed: 0 };
    }
    // One replay at a time per socket (replays of other rooms go first); a later subscribe of this room
    // supersedes this one (SUPERSEDED).
    state.replays ??= new ReplayLane();
    try {
      return await state.replays.run(room.name, async (ticket) => {
        try {
          await joined;
          await feed.start();
          ticket.signal.throwIfAborted();
          const from = requested === "start" ? await startOf(deps.eventLog, where, feed.position!) : requested;
          const { position, replayed } = await this.moveForward(socket, feed, ticket, where, from, true);
          this.subscribed(socket, state, room.name);
          return { ok: true as const, room: room.name, cursor: encodeCursor(position), replayed };
        } catch (error) {
          // Superseded: the later subscribe (or the unsubscribe) decides where the socket stands.
          if (!(ticket.signal.aborted && ticket.signal.reason instanceof SupersededError)) undo(error);
          throw error;
        }
      });
    } finally {
      state.joining.delete(room.name);
    }
  }

  /**
   * A refused subscribe leaves the socket as it was: out of the room unless it was subscribed to it, and then
   * back where it stood, caught up from there as after a fall behind (it may have missed events meanwhile).
   */
  private undo(socket: SwitchyardSocket, room: string, feed: RoomFeed, previous: CursorPosition | null, error: unknown): void {
    if (error instanceof SupersededError || socket.disconnected) return;
    if (previous && !feed.isClosed) {
      feed.setLag(socket.id, { reason: "behind", position: previous });
      // Once this subscribe's replay has left the socket's lane (it is still in it now).
      setImmediate(() => this.catchUp(socket, room));
      return;
    }
    feed.unlag(socket.id);
    void socket.leave(roomKey(socket.data.principal.tenantId, room));
  }

  /**
   * A socket whose connection fell behind has drained: sends it, from the log, what it missed in `room`, then it
   * is live in the room again. A subscribe of the room under way decides the socket's position itself. If the log
   * no longer has what the socket missed (retention, a new epoch, more than a replay sends), the connection is
   * closed: the client reconnects and resubscribes from its own cursor, which tells it to reload (CURSOR_EXPIRED).
   */
  catchUp(socket: SwitchyardSocket, room: string): void {
    const { deps } = this;
    const state = socket.data.roomState;
    if (!state?.rooms.has(room) || socket.disconnected) return;
    const feed = deps.feeds.get(socket.data.principal.tenantId, room);
    const lag = feed?.lagging.get(socket.id);
    if (!feed || lag?.reason !== "behind" || !lag.position) return;
    state.replays ??= new ReplayLane();
    if (state.replays.has(room)) return;
    const where = { tenantId: socket.data.principal.tenantId, namespace: deps.namespace, room };
    const from = lag.position;
    feed.setLag(socket.id, { reason: "replaying", position: from });
    state.replays
      .run(room, (ticket) => this.moveForward(socket, feed, ticket, where, from, false))
      .catch((error: unknown) => {
        if (socket.disconnected || error instanceof SupersededError || error instanceof SlowConsumerError) return;
        if (error instanceof AppError && (error.code === "CURSOR_EXPIRED" || error.code === "BAD_REQUEST")) {
          deps.logger.info({ tenant: where.tenantId, room, reason: error.message }, "a slow reader cannot be caught up from the log");
        } else {
          deps.failures.report(error, "could not catch a slow reader up", { room });
        }
        // Either way the client is told by a reconnect rather than left with a silent gap.
        deps.outbound.closeSlowConsumer(socket.conn, "catch_up_failed");
      });
  }

  /**
   * Moves a lagging socket forward through the room's log from `from`, page by page, until its position equals
   * the feed's; at that moment (synchronously with the comparison) it is live. A socket ahead of the feed (its
   * cursor came from a node that had more) waits in the feed, which makes it live when it gets there. The bound
   * (MAX_REPLAY) and a cursor of another epoch, past retention or ahead of the room, are refused as they always
   * were; the socket stays lagging until the caller undoes it.
   */
  private async moveForward(
    socket: SwitchyardSocket,
    feed: RoomFeed,
    ticket: ReplayTicket,
    where: RoomWhere,
    from: CursorPosition,
    bounded: boolean,
  ): Promise<{ position: CursorPosition; replayed: number }> {
    let position = from;
    let replayed = 0;
    if (bounded && feed.position!.epoch === from.epoch && feed.position!.seq - from.seq > MAX_REPLAY) {
      throw new CursorExpiredError(`more than ${MAX_REPLAY} events behind; reload state`);
    }
    for (;;) {
      ticket.signal.throwIfAborted();
      if (socket.disconnected || feed.isClosed) throw new SocketDisconnectedError();
      const live = feed.position!;
      if (position.epoch === live.epoch && position.seq === live.seq) {
        feed.unlag(socket.id);
        return { position, replayed };
      }
      if (position.epoch === live.epoch && position.seq > live.seq) {
        // Ahead of this node: fine if the log has it (this node will get there), refused if the room never had it.
        const head = await this.head(where);
        ticket.signal.throwIfAborted();
        if (position.seq > head.seq || head.epoch !== position.epoch) {
          // Through readHistory, for the same answers as a history read: CURSOR_EXPIRED or BAD_REQUEST.
          await readHistory(this.deps.eventLog, where, head, position, 1);
        }
        if (feed.position!.seq >= position.seq) continue;
        feed.waitFor(socket.id, position);
        return { position, replayed };
      }
      const sent = await this.page(socket, ticket, where, position, live);
      replayed += sent.count;
      position = sent.position;
      ticket.signal.throwIfAborted();
      const lag = feed.lagging.get(socket.id);
      if (lag) lag.position = position;
    }
  }

  /** The room's head, read in the tenant's turn (a subscribe is database work like a request). */
  private head(where: RoomWhere): Promise<CursorPosition> {
    return this.deps.fairShare.run(where.tenantId, () => this.deps.eventLog.head(where.tenantId, where.namespace, where.room), false);
  }

  private subscribed(socket: SwitchyardSocket, state: RoomState, room: string): void {
    // After the disconnect the gauge has already been given back for this socket's rooms.
    if (state.rooms.has(room) || socket.disconnected) return;
    state.rooms.add(room);
    this.gauge.inc();
  }

  /**
   * Sends one page of the room's stored events after `start` (up to `upTo`) to this one socket, in order. Before
   * it waits until the connection has sent all but the low watermark (or closes it as a slow consumer once it has
   * read nothing for SLOW_CONSUMER_TIMEOUT_MS), and holds one of the node's replay-page permits from reading the
   * page until it is handed to the socket. Stops as soon as the ticket is superseded. readHistory refuses a
   * cursor of another epoch or past retention.
   */
  private async page(
    socket: SwitchyardSocket,
    ticket: ReplayTicket,
    where: RoomWhere,
    start: CursorPosition,
    upTo: CursorPosition,
  ): Promise<{ position: CursorPosition; count: number }> {
    const { eventLog, outbound, replayPages, fairShare } = this.deps;
    const { lowWatermark, pageBytes, pageRows } = this.sizing;
    const conn = socket.conn as unknown as EngineConnection;
    if (outbound.unsentBytes(conn) > lowWatermark) await outbound.waitForDrain(conn, lowWatermark, ticket.signal);
    // The page is read in the tenant's turn, and the turn is taken before a page permit: a tenant's replays
    // waiting for their turn hold none of the node's few permits meanwhile.
    return fairShare.run(
      where.tenantId,
      async () => {
        const release = await replayPages.acquire(ticket.signal);
        try {
          const page = await readHistory(eventLog, where, upTo, start, pageRows, pageBytes);
          ticket.signal.throwIfAborted();
          if (socket.disconnected) throw new SocketDisconnectedError();
          for (const envelope of page.events) emitStored(socket, envelope);
          return { position: { epoch: upTo.epoch, seq: start.seq + page.events.length }, count: page.events.length };
        } finally {
          release();
        }
      },
      false,
    );
  }

  private async unsubscribe(socket: SwitchyardSocket, state: RoomState, payload: unknown): Promise<UnsubscribeAck> {
    const { deps } = this;
    const { principal } = socket.data;
    const request = UnsubscribeSchema.safeParse(payload);
    if (!request.success) throw new BadRequestError("unsubscribe expects { room: string }");
    const room = parseRoom(deps.namespace, request.data.room);
    if (!room) throw new InvalidRoomError(`"${request.data.room.slice(0, 64)}" is not a room of /${deps.namespace}`);
    // A replay of the room still under way would make the socket live afterwards: stop it (its ack answers SUPERSEDED).
    state.replays?.supersede(room.name);
    deps.feeds.get(principal.tenantId, room.name)?.unlag(socket.id);
    await socket.leave(roomKey(principal.tenantId, room.name));
    if (state.rooms.delete(room.name)) this.gauge.dec();
    return { ok: true as const, room: room.name };
  }
}
