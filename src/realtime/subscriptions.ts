import type { Socket } from "socket.io";
import { z } from "zod";
import type { ResourceDirectory } from "../domains/resources.js";
import { authorizeRoom } from "../domains/room-access.js";
import { AppError, CursorExpiredError, InvalidRoomError, RateLimitedError } from "../errors.js";
import type { EventLog } from "../events/event-log.js";
import { parseAfter, readHistory } from "../events/history.js";
import { roomKey } from "../events/room-key.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { encodeCursor, type CursorPosition } from "../protocol/cursor.js";
import type { SubscribeAck, UnsubscribeAck } from "../protocol/events.js";
import type { NamespaceName } from "../protocol/namespaces.js";
import { parseRoom } from "../protocol/rooms.js";
import type { SocketData } from "./handshake.js";
import { acknowledge } from "./ack.js";
import { TokenBucket } from "./token-bucket.js";

const SubscribeSchema = z.object({ room: z.string(), after: z.string().max(64).optional() });
const UnsubscribeSchema = z.object({ room: z.string() });

/** How many stored events one subscribe replays at most; a client further behind pages through /api/v1/events. */
export const MAX_REPLAY = 10_000;
const REPLAY_PAGE = 500;

export interface SubscriptionDeps {
  namespace: NamespaceName;
  resources: ResourceDirectory;
  eventLog: EventLog;
  metrics: Metrics;
  logger: Logger;
  roomOpsPerSecond: number;
  maxRoomsPerSocket: number;
}

/** Per-socket room state, created on the socket's first room operation (idle sockets carry none). */
interface RoomState {
  bucket: TokenBucket;
  rooms: Set<string>;
}
type RoomSocketData = SocketData & { roomState?: RoomState };

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

  constructor(private readonly deps: SubscriptionDeps) {
    this.gauge = deps.metrics.subscriptions.labels({ namespace: deps.namespace });
    const self = this;
    this.onSubscribe = function (this: Socket, ...args: unknown[]): void {
      void self.handle(this, args, (state, payload) => self.subscribe(this, state, payload));
    };
    this.onUnsubscribe = function (this: Socket, ...args: unknown[]): void {
      void self.handle(this, args, (state, payload) => self.unsubscribe(this, state, payload));
    };
    this.onDisconnect = function (this: Socket): void {
      const state = (this.data as RoomSocketData).roomState;
      if (state) self.gauge.dec(state.rooms.size);
    };
  }

  attach(socket: Socket): void {
    socket.on("subscribe", this.onSubscribe);
    socket.on("unsubscribe", this.onUnsubscribe);
    socket.once("disconnect", this.onDisconnect);
  }

  private state(socket: Socket): RoomState {
    const data = socket.data as RoomSocketData;
    data.roomState ??= { bucket: new TokenBucket(this.deps.roomOpsPerSecond, this.deps.roomOpsPerSecond), rooms: new Set() };
    return data.roomState;
  }

  private handle(socket: Socket, args: unknown[], run: (state: RoomState, payload: unknown) => Promise<object>): Promise<void> {
    const { logger, metrics, namespace } = this.deps;
    return acknowledge(
      args,
      async (payload) => {
        const state = this.state(socket);
        if (!state.bucket.take()) throw new RateLimitedError("too many room operations, slow down");
        return run(state, payload);
      },
      { logger, metrics, context: { nsp: namespace } },
    );
  }

  private async subscribe(socket: Socket, state: RoomState, payload: unknown): Promise<SubscribeAck> {
    const { deps } = this;
    const { principal } = socket.data as SocketData;
    const subscribed = state.rooms;
    const request = SubscribeSchema.safeParse(payload);
    if (!request.success) throw new AppError("BAD_REQUEST", "subscribe expects { room: string, after?: string }", 400);
    const { room: name, after } = request.data;
    const room = await authorizeRoom(principal, deps.namespace, name, deps.resources);
    const from = parseAfter(after);
    if (!subscribed.has(room.name) && subscribed.size >= deps.maxRoomsPerSocket) {
      throw new AppError("RATE_LIMITED", `at most ${deps.maxRoomsPerSocket} rooms per socket`, 429);
    }
    if (socket.disconnected) throw new AppError("BAD_REQUEST", "socket disconnected", 400);

    // With a cursor: replay up to the current head before joining (nothing live interleaves with the bulk),
    // join, then replay what was stored meanwhile. Without one: join, then read the head for the ack.
    // Either way every event after the returned cursor reaches the socket, live or replayed; an event stored
    // in the instant between the last head read and the join may arrive both ways (same id and cursor), which
    // clients drop by cursor (src/client does).
    const key = roomKey(principal.tenantId, room.name);
    const wasSubscribed = subscribed.has(room.name);
    const where = { tenantId: principal.tenantId, namespace: deps.namespace, room: room.name };
    let head: CursorPosition;
    let replayed = 0;
    const replay = async (start: CursorPosition, upTo: CursorPosition): Promise<CursorPosition> => {
      let position = start;
      do {
        // readHistory also refuses a cursor of another epoch or ahead of the room, even with nothing to replay.
        const page = await readHistory(deps.eventLog, where, upTo, position, REPLAY_PAGE);
        for (const envelope of page.events) socket.emit(envelope.type, envelope);
        replayed += page.events.length;
        position = { epoch: upTo.epoch, seq: position.seq + page.events.length };
      } while (position.seq < upTo.seq);
      return position;
    };
    try {
      if (from) {
        const before = await deps.eventLog.head(where.tenantId, where.namespace, where.room);
        if (before.seq - from.seq > MAX_REPLAY) throw new CursorExpiredError(`more than ${MAX_REPLAY} events behind; reload state`);
        const caughtUp = await replay(from, before);
        await socket.join(key);
        head = await deps.eventLog.head(where.tenantId, where.namespace, where.room);
        if (head.seq > caughtUp.seq) await replay(caughtUp, head);
      } else {
        await socket.join(key);
        head = await deps.eventLog.head(where.tenantId, where.namespace, where.room);
      }
    } catch (error) {
      // A refused subscribe must not leave the socket listening to the room.
      if (!wasSubscribed) await socket.leave(key);
      throw error;
    }
    if (!wasSubscribed) {
      subscribed.add(room.name);
      this.gauge.inc();
    }
    return { ok: true as const, room: room.name, cursor: encodeCursor(head), replayed };
  }

  private async unsubscribe(socket: Socket, state: RoomState, payload: unknown): Promise<UnsubscribeAck> {
    const { deps } = this;
    const { principal } = socket.data as SocketData;
    const request = UnsubscribeSchema.safeParse(payload);
    if (!request.success) throw new AppError("BAD_REQUEST", "unsubscribe expects { room: string }", 400);
    const room = parseRoom(deps.namespace, request.data.room);
    if (!room) throw new InvalidRoomError(`"${request.data.room.slice(0, 64)}" is not a room of /${deps.namespace}`);
    await socket.leave(roomKey(principal.tenantId, room.name));
    if (state.rooms.delete(room.name)) this.gauge.dec();
    return { ok: true as const, room: room.name };
  }
}
