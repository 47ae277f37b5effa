import { z } from "zod";
import type { FailureReporter } from "../dependencies/status.js";
import type { ResourceDirectory } from "../domains/resources.js";
import { authorizeRoom } from "../domains/room-access.js";
import { AppError, CursorExpiredError, InvalidRoomError } from "../errors.js";
import type { EventLog } from "../events/event-log.js";
import { parseAfter, readHistory, startOf } from "../events/history.js";
import { roomKey } from "../events/room-key.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { encodeCursor, type CursorPosition } from "../protocol/cursor.js";
import type { SubscribeAck, UnsubscribeAck } from "../protocol/events.js";
import type { NamespaceName } from "../protocol/namespaces.js";
import { parseRoom } from "../protocol/rooms.js";
import { emitStored, type SwitchyardSocket } from "./types.js";
import { acknowledge } from "./ack.js";
import { lowWatermarkOf, SlowConsumerError, type EngineConnection, type OutboundGuard } from "./outbound.js";
import { ReplayLane, SupersededError, type ReplayTicket, type Semaphore } from "./replay.js";
import type { RoomSeams } from "./room-seams.js";
import type { MissedEvents } from "./missed-events.js";
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
  eventLog: EventLog;
  metrics: Metrics;
  logger: Logger;
  /** Where an unavailable database is recorded (logged once per outage, not once per failed subscribe). */
  failures: FailureReporter;
  maxRoomsPerSocket: number;
  /** Knows how much a connection has not sent yet; closes connections that do not read. */
  outbound: OutboundGuard;
  /** Node-wide: replay pages held in memory at once (read from the database, not yet handed to a socket). */
  replayPages: Semaphore;
  /** The namespace's replay/live seams: what its adapter holds back from, or does not send again to, a socket. */
  seams: RoomSeams;
  /** What sockets whose connection fell behind missed (shared by the namespaces: they share connections). */
  missed: MissedEvents<SwitchyardSocket>;
  /** The node's database-bound work shared among tenants: each read of the log for a socket takes its turn. */
  fairShare: TenantFairShare;
}

/** Per-socket room state, created on the socket's first room operation (idle sockets carry none). */
export interface RoomState {
  rooms: Set<string>;
  /** The socket's replays, one at a time; created by its first `subscribe { after }`. */
  replays?: ReplayLane;
}

/**
 * `subscribe` / `unsubscribe` for one namespace: the client names a room, the tenant comes from its token.
 * One instance per namespace; its listeners are shared by every socket (they find the socket as `this`), so a
 * connected socket costs no closures here.
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
      for (const room of state.rooms) deps.seams.forget(roomKey(this.data.principal.tenantId, room), this.id);
      state.replays?.abortAll(new AppError("BAD_REQUEST", "socket disconnected", 400));
    };
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
    if (!request.success) throw new AppError("BAD_REQUEST", "subscribe expects { room: string, after?: string }", 400);
    const { room: name, after } = request.data;
    const room = await authorizeRoom(principal, deps.namespace, name, deps.resources);
    const requested = parseAfter(after);
    if (!subscribed.has(room.name) && subscribed.size >= deps.maxRoomsPerSocket) {
      throw new AppError("RATE_LIMITED", `at most ${deps.maxRoomsPerSocket} rooms per socket`, 429);
    }
    if (socket.disconnected) throw new AppError("BAD_REQUEST", "socket disconnected", 400);
    // The subscribe sets where the socket stands in the room: what it missed there while behind no longer counts.
    deps.missed.forget(socket, room.name);

    // With a cursor: replay up to the current head before joining (nothing live interleaves with the bulk),
    // join with live events held back (room-seams.ts), replay what was stored meanwhile, then release the held
    // events the replay did not cover: each event after `after` arrives once, in cursor order. Without one:
    // join, then read the head for the ack; every event after the returned cursor reaches the socket.
    const key = roomKey(principal.tenantId, room.name);
    const where = { tenantId: principal.tenantId, namespace: deps.namespace, room: room.name };
    if (!requested) {
      const wasSubscribed = subscribed.has(room.name);
      let head: CursorPosition;
      try {
        await socket.join(key);
        head = await this.head(where);
      } catch (error) {
        // A refused subscribe must not leave the socket listening to the room.
        if (!wasSubscribed) await socket.leave(key);
        throw error;
      }
      this.subscribed(socket, state, room.name);
      return { ok: true as const, room: room.name, cursor: encodeCursor(head), replayed: 0 };
    }
    // One replay at a time per socket; a later one for the same room supersedes this one (SUPERSEDED).
    state.replays ??= new ReplayLane();
    return state.replays.run(room.name, async (ticket) => {
      const { head, replayed } = await this.replayThenLive(socket, state, ticket, where, requested);
      this.subscribed(socket, state, room.name);
      return { ok: true as const, room: room.name, cursor: encodeCursor(head), replayed };
    });
  }

  /**
   * A socket whose connection fell behind has drained: sends it, from the log, what it missed in `room` after
   * `from`, then it is live in the room again, exactly as after a subscribe with `after` (it is still in the
   * room, so its live events are held from the start). A subscribe of the room under way decides the socket's
   * position itself. If the log no longer has what the socket missed (retention, a new epoch, more than a
   * replay sends), the connection is closed: the client reconnects and resubscribes from its own cursor, which
   * tells it to reload (CURSOR_EXPIRED).
   */
  catchUp(socket: SwitchyardSocket, room: string, from: CursorPosition): void {
    const { deps } = this;
    const state = socket.data.roomState;
    if (!state?.rooms.has(room) || socket.disconnected) return;
    state.replays ??= new ReplayLane();
    if (state.replays.has(room)) return;
    const where = { tenantId: socket.data.principal.tenantId, namespace: deps.namespace, room };
    // Held now, not when the lane gets to it: the connection is live again, and the room's next events must not
    // overtake what it missed while the catch-up of another room runs first.
    deps.seams.hold(roomKey(where.tenantId, room), socket.id);
    state.replays
      .run(room, (ticket) => this.replayThenLive(socket, state, ticket, where, from))
      .catch((error: unknown) => {
        if (socket.disconnected || error instanceof SupersededError || error instanceof SlowConsumerError) return;
        if (error instanceof AppError && (error.code === "CURSOR_EXPIRED" || error.code === "BAD_REQUEST")) {
          deps.logger.info({ tenant: where.tenantId, room, reason: error.message }, "a slow reader cannot be caught up from the log");
        } else {
          deps.failures.report(error, "could not catch a slow reader up", { room });
        }
        // Either way the client is told by a reconnect rather than left with a silent gap.
        deps.outbound.closeSlowConsumer(socket.conn as unknown as EngineConnection, "catch_up_failed");
      });
  }

  /**
   * The replay of a room to one socket and its move to the live stream: replays up to the head, joins with live
   * events held back (room-seams.ts), replays what was stored meanwhile, then releases the held events the replay
   * did not cover, so each event after `from` arrives once, in cursor order. A socket already in the room is held
   * from the start (its live events would interleave with the replay). On failure the socket is left as it was:
   * out of the room unless it was in it, and not held.
   */
  private async replayThenLive(
    socket: SwitchyardSocket,
    state: RoomState,
    ticket: ReplayTicket,
    where: { tenantId: string; namespace: NamespaceName; room: string },
    requested: CursorPosition | "start",
  ): Promise<{ head: CursorPosition; replayed: number }> {
    const { deps } = this;
    const key = roomKey(where.tenantId, where.room);
    // Read here, not before queueing: a replay of this room that ran before may have subscribed it.
    const wasSubscribed = state.rooms.has(where.room);
    let head: CursorPosition;
    let replayed = 0;
    const counted = (n: number): void => {
      replayed += n;
    };
    if (wasSubscribed) deps.seams.hold(key, socket.id);
    try {
      const before = await this.head(where);
      // `after: "0"`: from the first event retention kept (the same bound applies).
      const from = requested === "start" ? await startOf(deps.eventLog, where, before) : requested;
      if (before.seq - from.seq > MAX_REPLAY) throw new CursorExpiredError(`more than ${MAX_REPLAY} events behind; reload state`);
      let position = await this.replay(socket, ticket, where, from, before, counted);
      ticket.signal.throwIfAborted();
      deps.seams.hold(key, socket.id);
      await socket.join(key);
      for (;;) {
        head = await this.head(where);
        if (head.seq > position.seq) position = await this.replay(socket, ticket, where, position, head, counted);
        // Superseded after the last page: the later replay answers for the room, and joins it after its own bulk.
        ticket.signal.throwIfAborted();
        if (socket.disconnected) throw new AppError("BAD_REQUEST", "socket disconnected", 400);
        // Synchronously with the release: nothing else can be broadcast to the socket in between.
        const late = deps.seams.release(key, socket.id, position);
        if (!late) continue; // more held than kept: the log has them, read it once more
        for (const envelope of late) emitStored(socket, envelope);
        break;
      }
    } catch (error) {
      // A refused (or superseded) replay must not leave the socket listening to the room, nor held.
      deps.seams.forget(key, socket.id);
      if (!wasSubscribed) await socket.leave(key);
      throw error;
    }
    return { head, replayed };
  }

  /** The room's head, read in the tenant's turn (a subscribe is database work like a request). */
  private head(where: { tenantId: string; namespace: NamespaceName; room: string }): Promise<CursorPosition> {
    return this.deps.fairShare.run(where.tenantId, () => this.deps.eventLog.head(where.tenantId, where.namespace, where.room), false);
  }

  private subscribed(socket: SwitchyardSocket, state: RoomState, room: string): void {
    // After the disconnect the gauge has already been given back for this socket's rooms.
    if (state.rooms.has(room) || socket.disconnected) return;
    state.rooms.add(room);
    this.gauge.inc();
  }

  /**
   * Sends the room's stored events after `start` up to `upTo` to this one socket, in order, page by page. Before
   * each page it waits until the connection has sent all but `lowWatermark` bytes (or closes it as a slow consumer
   * once it has read nothing for SLOW_CONSUMER_TIMEOUT_MS), and holds one of the node's replay-page permits from reading the page until
   * it is handed to the socket. Stops as soon as the ticket is superseded. readHistory runs at least once, even
   * with nothing to replay: it also refuses a cursor of another epoch or ahead of the room.
   */
  private async replay(
    socket: SwitchyardSocket,
    ticket: ReplayTicket,
    where: { tenantId: string; namespace: NamespaceName; room: string },
    start: CursorPosition,
    upTo: CursorPosition,
    counted: (n: number) => void,
  ): Promise<CursorPosition> {
    const { eventLog, outbound, replayPages, fairShare } = this.deps;
    const { lowWatermark, pageBytes, pageRows } = this.sizing;
    const conn = socket.conn as unknown as EngineConnection;
    let position = start;
    do {
      const reading = position.seq < upTo.seq;
      if (reading && outbound.unsentBytes(conn) > lowWatermark) {
        await outbound.waitForDrain(conn, lowWatermark, ticket.signal);
      }
      // The page is read in the tenant's turn, and the turn is taken before a page permit: a tenant's replays
      // waiting for their turn hold none of the node's few permits meanwhile.
      const sent = await fairShare.run(
        where.tenantId,
        async () => {
          const release = reading ? await replayPages.acquire(ticket.signal) : undefined;
          try {
            const page = await readHistory(eventLog, where, upTo, position, pageRows, pageBytes);
            ticket.signal.throwIfAborted();
            if (socket.disconnected) throw new AppError("BAD_REQUEST", "socket disconnected", 400);
            for (const envelope of page.events) emitStored(socket, envelope);
            return page.events.length;
          } finally {
            release?.();
          }
        },
        false,
      );
      counted(sent);
      position = { epoch: upTo.epoch, seq: position.seq + sent };
    } while (position.seq < upTo.seq);
    return position;
  }

  private async unsubscribe(socket: SwitchyardSocket, state: RoomState, payload: unknown): Promise<UnsubscribeAck> {
    const { deps } = this;
    const { principal } = socket.data;
    const request = UnsubscribeSchema.safeParse(payload);
    if (!request.success) throw new AppError("BAD_REQUEST", "unsubscribe expects { room: string }", 400);
    const room = parseRoom(deps.namespace, request.data.room);
    if (!room) throw new InvalidRoomError(`"${request.data.room.slice(0, 64)}" is not a room of /${deps.namespace}`);
    // A replay of the room still under way would join it afterwards: stop it (its ack answers SUPERSEDED).
    state.replays?.supersede(room.name);
    const key = roomKey(principal.tenantId, room.name);
    await socket.leave(key);
    deps.seams.forget(key, socket.id);
    deps.missed.forget(socket, room.name);
    if (state.rooms.delete(room.name)) this.gauge.dec();
    return { ok: true as const, room: room.name };
  }
}
