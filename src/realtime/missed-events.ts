import { decodeCursor, type CursorPosition } from "../protocol/cursor.js";
import type { Envelope } from "../protocol/events.js";
import type { EngineConnection, OutboundGuard } from "./outbound.js";

/** The part of a Socket.IO socket this needs: its Engine.IO connection. */
export interface ConnectedSocket {
  readonly conn: unknown;
}

/** Room name → the position just before the first event the socket missed in it. */
export type MissedRooms = Map<string, CursorPosition>;

/**
 * What the sockets of a connection that fell behind (see OutboundGuard) did not get. While the connection is
 * behind, the broadcast filter asks `skip` for each live event to each of its sockets: the event is not written,
 * and the socket's room notes the position before it (the lowest, should events of the room arrive out of order).
 * When the connection has drained, `take` hands over the rooms to catch up, and the socket's room subscriptions
 * send the events from the log in order, then go live again. Nothing is kept for a connection that is not behind.
 */
export class MissedEvents<S extends ConnectedSocket = ConnectedSocket> {
  private readonly byConnection = new WeakMap<object, Map<S, MissedRooms>>();

  constructor(private readonly outbound: Pick<OutboundGuard, "isBehind" | "behindCount">) {}

  /** Whether any connection is behind: when none is, a broadcast skips no socket and need not ask. */
  get active(): boolean {
    return this.outbound.behindCount > 0;
  }

  /** True when this live event must not be written to the socket now; its room then remembers it missed it. */
  skip(socket: S, envelope: Envelope): boolean {
    const conn = socket.conn as EngineConnection;
    if (!this.outbound.isBehind(conn)) return false;
    const cursor = decodeCursor(envelope.cursor);
    if (!cursor) return false;
    let sockets = this.byConnection.get(conn);
    if (!sockets) this.byConnection.set(conn, (sockets = new Map()));
    let rooms = sockets.get(socket);
    if (!rooms) sockets.set(socket, (rooms = new Map()));
    const before = { epoch: cursor.epoch, seq: cursor.seq - 1 };
    const known = rooms.get(envelope.room);
    if (!known || (known.epoch === before.epoch && before.seq < known.seq)) rooms.set(envelope.room, before);
    return true;
  }

  /** The socket subscribed to the room again, or left it: what it missed there no longer matters. */
  forget(socket: S, room: string): void {
    this.byConnection.get(socket.conn as object)?.get(socket)?.delete(room);
  }

  /** What the connection's sockets missed, per socket and room; forgotten here. */
  take(conn: object): Map<S, MissedRooms> | undefined {
    const sockets = this.byConnection.get(conn);
    this.byConnection.delete(conn);
    return sockets;
  }
}
