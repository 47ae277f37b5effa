import type { Server, Socket } from "socket.io";
import type { Principal } from "../auth/principal.js";
import type { ReplayLane } from "./replay.js";
import type { Envelope, PoolsClientEvents, PoolsServerEvents, TasksServerEvents, WorkflowsServerEvents } from "../protocol/events.js";

/**
 * Socket.IO's generics, filled from the protocol's event maps (src/protocol/events.ts), the way socket.io
 * threads ListenEvents / EmitEvents / SocketData through its classes. One socket type serves the three
 * namespaces: what a socket may be sent is every namespace's events (each namespace's own map is what clients
 * use), and what it may send is the room operations plus, on /pools, the worker events. A misspelt event name,
 * or a payload of the wrong shape, does not compile.
 */
export type ServerToClientEvents = PoolsServerEvents & TasksServerEvents & WorkflowsServerEvents;
export type ClientToServerEvents = PoolsClientEvents;
// Nodes talk through the Redis adapter only with broadcasts; no server-to-server events.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface InterServerEvents {}

/** Per-socket room state (see RoomSubscriptions), created on the socket's first room operation (idle sockets carry none). */
export interface RoomState {
  rooms: Set<string>;
  /** The socket's replays, one at a time; created by its first `subscribe { after }` or catch-up. */
  replays?: ReplayLane;
  /** Rooms it joined whose subscribe has not answered yet. */
  joining?: Set<string>;
}

/** What a socket carries once the handshake admitted it. */
export interface SocketData {
  principal: Principal;
  /** Room operations' per-socket state, created on the socket's first room operation (idle sockets carry none). */
  roomState?: RoomState;
}

/**
 * Sends a stored envelope under its own type. The one place an event name is not checked against the
 * catalogue: what goes out is an event already stored in the log, and a backend's own event types
 * (POST /api/v1/events) are not in the catalogue by design.
 */
export function emitStored(target: { emit: SwitchyardSocket["emit"] }, envelope: Envelope): void {
  (target as unknown as { emit(type: string, envelope: Envelope): boolean }).emit(envelope.type, envelope);
}

export type SwitchyardServer = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
export type SwitchyardSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
