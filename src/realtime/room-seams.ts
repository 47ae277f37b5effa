import type { Namespace } from "socket.io";
import { decodeCursor, type CursorPosition } from "../protocol/cursor.js";
import type { Envelope } from "../protocol/events.js";
import type { ConnectedSocket, MissedEvents } from "./missed-events.js";

/**
 * Live events a socket's replay holds back at most (in arrival order). Past it the held events are dropped and
 * the replay reads the log once more instead: every held event is in the log, so nothing is lost, and a room
 * publishing faster than a replay can catch up costs the node a bounded amount of memory per socket.
 */
export const MAX_HELD_EVENTS = 1_000;
/**
 * Bytes of live events a socket's replay holds back at most, by default (the node passes its
 * MAX_SOCKET_BUFFER_BYTES): past it, the same as past MAX_HELD_EVENTS. Held events are released to the socket at
 * once, so the bound also keeps that release within what the socket may have unsent; and a slow reader's
 * catch-up, which can take long on a busy room, does not keep the room's events in memory meanwhile.
 */
export const DEFAULT_MAX_HELD_BYTES = 1_048_576;

/**
 * How long a socket's seam stays after its replay went live. A late copy is the broadcast of an event stored just
 * before the socket joined, still on its way through Redis: it arrives within milliseconds. Forgetting the seam
 * afterwards keeps broadcasts to a room many sockets resubscribed to (every reconnect replays) from looking at
 * each of those sockets for as long as they stay.
 */
export const SEAM_GRACE_MS = 10_000;

/**
 * Where one socket stands in one room it replayed. While `held` is set the replay is under way: live events for
 * the socket are kept there instead of being written (they would overtake the replay). Once live, `sent` is the
 * position the replay reached without a gap: every event of the room up to it has been sent, so a broadcast of
 * one of them (it arrives late when it was stored just before the socket joined) is not sent again.
 */
interface Seam {
  held: Envelope[] | null;
  /** The encoded size of the held events. */
  heldBytes: number;
  overflowed: boolean;
  sent: CursorPosition | null;
  /** When it went live (ms): it is forgotten SEAM_GRACE_MS later. */
  liveSince: number;
}

/**
 * The seam between a socket's replay and the live stream of a room, for one namespace. A subscribe with `after`
 * replays up to the room's head and then joins the room; an event stored in the instant around the join reaches
 * the node's adapter after the socket is in the room and would arrive twice (replayed, then live), and live events
 * that arrive while the replay's last pages are read would overtake them. The adapter asks this object, for every
 * broadcast, which sockets of the room must not get it (see `filterBroadcasts`); only sockets that replayed the
 * room are looked at, so a room without any costs one map lookup per broadcast.
 */
export class RoomSeams {
  /** room key → socket id → seam. */
  private readonly rooms = new Map<Room, Map<string, Seam>>();

  constructor(private readonly maxHeldBytes = DEFAULT_MAX_HELD_BYTES) {}

  /** From now on, live events of the room for this socket are held back until `release` (idempotent). */
  hold(key: Room, socketId: string): void {
    let sockets = this.rooms.get(key);
    if (!sockets) this.rooms.set(key, (sockets = new Map()));
    const seam = sockets.get(socketId);
    if (seam?.held) return;
    sockets.set(socketId, { held: [], heldBytes: 0, overflowed: false, sent: null, liveSince: 0 });
  }

  /**
   * The replay has sent every event of the room up to `replayed`. Returns the held events after it, in arrival
   * order, for the caller to send right away (synchronously, before any other broadcast), and the socket is live
   * from here. Returns null when too many events were held and dropped: the caller replays from `replayed` to the
   * new head and releases again (the socket is still held).
   */
  release(key: Room, socketId: string, replayed: CursorPosition): Envelope[] | null {
    const seam = this.rooms.get(key)?.get(socketId);
    if (!seam?.held) return [];
    if (seam.overflowed) {
      seam.overflowed = false;
      return null;
    }
    const late = seam.held.filter((envelope) => !isAtOrBefore(decodeCursor(envelope.cursor), replayed));
    seam.held = null;
    seam.heldBytes = 0;
    seam.sent = replayed;
    seam.liveSince = Date.now();
    return late;
  }

  /** The socket left the room, or its subscribe failed: nothing more to hold or drop for it. */
  forget(key: Room, socketId: string): void {
    const sockets = this.rooms.get(key);
    if (!sockets?.delete(socketId)) return;
    if (sockets.size === 0) this.rooms.delete(key);
  }

  /** Seams kept (for tests and metrics). */
  get size(): number {
    let n = 0;
    for (const sockets of this.rooms.values()) n += sockets.size;
    return n;
  }

  /**
   * The sockets of these rooms that must not be written this packet: those holding (the envelope is kept for
   * them) and those already sent it by their replay. Undefined when there are none, the usual case. `bytes` is
   * the packet's encoded size.
   */
  exceptFor(rooms: ReadonlySet<Room>, data: unknown, bytes = 0, now = Date.now()): Set<string> | undefined {
    if (this.rooms.size === 0) return undefined;
    let except: Set<string> | undefined;
    for (const room of rooms) {
      const sockets = this.rooms.get(room);
      if (!sockets) continue;
      const envelope = storedEnvelope(data);
      if (!envelope) return except;
      // Once per broadcast, not once per socket that replayed the room.
      const cursor = decodeCursor(envelope.cursor);
      for (const [socketId, seam] of sockets) {
        if (!seam.held && now - seam.liveSince > SEAM_GRACE_MS) {
          this.forget(room, socketId);
          continue;
        }
        if (seam.held) {
          if (seam.held.length >= MAX_HELD_EVENTS || seam.heldBytes + bytes > this.maxHeldBytes) {
            seam.held = [];
            seam.heldBytes = 0;
            seam.overflowed = true;
          }
          if (!seam.overflowed) {
            seam.held.push(envelope);
            seam.heldBytes += bytes;
          }
        } else if (!seam.sent || !isAtOrBefore(cursor, seam.sent)) {
          continue;
        }
        (except ??= new Set()).add(socketId);
      }
    }
    return except;
  }
}

function isAtOrBefore(cursor: CursorPosition | null, position: CursorPosition): boolean {
  return cursor !== null && cursor.epoch === position.epoch && cursor.seq <= position.seq;
}

/** A packet's data is `[type, envelope]` for a stored event; anything else (acks, notices) is not filtered. */
function storedEnvelope(data: unknown): Envelope | undefined {
  if (!Array.isArray(data) || data.length < 2) return undefined;
  const envelope: unknown = data[1];
  if (typeof envelope !== "object" || envelope === null) return undefined;
  const { cursor, room } = envelope as Partial<Envelope>;
  return typeof cursor === "string" && typeof room === "string" ? (envelope as Envelope) : undefined;
}

type Adapter = Namespace["adapter"];
/** A room of the adapter: here always a tenant-scoped room key, or a socket's own id. */
type Room = string;
/** The part of socket.io-adapter's BroadcastOptions that selects sockets. */
interface BroadcastOptions {
  rooms: Set<Room>;
  except?: Set<Room>;
}
/** The two methods of socket.io-adapter 2.5's in-memory Adapter that a local broadcast goes through. */
interface BroadcastInternals {
  _encode(packet: { data?: unknown }, options: unknown): ReadonlyArray<string | { byteLength: number }>;
  apply(opts: BroadcastOptions, callback: (socket: ConnectedSocket) => void): void;
}

/**
 * Makes a namespace's adapter leave out, from each local broadcast, the sockets `seams` names, and the sockets
 * whose connection is behind (`missed` notes what they missed, to be sent from the log). Every adapter
 * (in-memory, Redis, sharded Redis) writes to local sockets through the in-memory Adapter's `broadcast`, whether
 * the broadcast started on this node or came from another one, and that method encodes the packet (`_encode`)
 * and then, synchronously, walks the room's sockets (`apply`). The packet is therefore seen on its way through
 * `_encode` and used by the `apply` that immediately follows; `apply` called alone (addSockets, fetchSockets)
 * finds no packet and is left as it was. The packet stays encoded once for all the other sockets of the room.
 */
export function filterBroadcasts(adapter: Adapter, seams: RoomSeams, missed?: MissedEvents): void {
  const internals = adapter as unknown as BroadcastInternals;
  const encode = internals._encode.bind(adapter);
  const apply = internals.apply.bind(adapter);
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
    const except = current ? seams.exceptFor(opts.rooms, current.data, packetBytes) : undefined;
    if (except) for (const room of opts.except ?? []) except.add(room);
    const envelope = missed?.active && current ? storedEnvelope(current.data) : undefined;
    // While a connection is behind, one check per socket written (a flag on its connection); otherwise none (the
    // wrapper cost ~7 % of one-room fan-out). The packet stays encoded once for the room.
    const deliver = envelope
      ? (socket: ConnectedSocket): void => {
          if (!missed!.skip(socket, envelope)) callback(socket);
        }
      : callback;
    apply(except ? { ...opts, except } : opts, deliver);
  };
}
