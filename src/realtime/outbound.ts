import type { EventEmitter } from "node:events";
import { AppError, SocketDisconnectedError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics, SlowConsumerReason } from "../observability/metrics.js";

/**
 * The parts of an Engine.IO 6.6 socket (one per client connection, shared by the connection's namespaces) that
 * this module uses. The socket emits `packetCreate` for every packet before it joins its `writeBuffer`, and its
 * server emits `flush` (socket, writeBuffer) just before the whole `writeBuffer` is handed to the transport,
 * which empties it. (The socket's own `drain` comes right after that hand-over, not when the bytes are sent:
 * the transport's `drain` is the one that means "written".)
 */
export interface EngineConnection extends EventEmitter {
  readonly readyState: string;
  readonly transport: EngineTransport;
  close(discard?: boolean): void;
}
interface EngineTransport extends EventEmitter {
  readonly name: string;
  /** For the websocket transport: the `ws` WebSocket. */
  readonly socket?: { readonly bufferedAmount?: number; terminate?: () => void };
}
interface EnginePacket {
  type: string;
  data?: unknown;
  options?: { wsPreEncodedFrame?: readonly Uint8Array[] };
}

/** Per-connection state, kept on the Engine.IO socket itself (no map, no closure per connection). */
const UNSENT = Symbol("switchyard.unsentBytes");
const SLOW = Symbol("switchyard.slowConsumer");
const BEHIND = Symbol("switchyard.behind");
type Tracked = EngineConnection & { [UNSENT]: number; [SLOW]?: true; [BEHIND]?: true };

/**
 * A connection behind gets no live events, but replies, replays (which wait for the buffer) and pings are still
 * written; past this many times the limit, something keeps writing to a client that does not read: it is closed.
 */
const HARD_LIMIT_FACTOR = 4;

/** A quarter of a connection's buffer limit: unsent data it must be down to before a replay page or catch-up is sent. */
export function lowWatermarkOf(maxBytes: number): number {
  return Math.floor(maxBytes / 4);
}

/** How often a waiting replay looks at the buffer again when no transport `drain` woke it up (polling, upgrades). */
const DRAIN_POLL_MS = 50;

/** Bytes a packet will take on the wire (about: the Engine.IO type byte and frame header are ignored for strings). */
function packetBytes(packet: EnginePacket): number {
  // A broadcast carries the WebSocket frame the adapter encoded once for all recipients: its size costs nothing.
  const frame = packet.options?.wsPreEncodedFrame;
  if (frame) {
    let bytes = 0;
    for (const part of frame) bytes += part.byteLength;
    return bytes;
  }
  const data = packet.data;
  if (typeof data === "string") return Buffer.byteLength(data) + 1;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength + 1;
  return 1;
}

/** What the transport accepted but has not written to the kernel yet: the WebSocket's `bufferedAmount`. */
function transportBuffered(conn: EngineConnection): number {
  const transport = conn.transport;
  return transport.name === "websocket" ? (transport.socket?.bufferedAmount ?? 0) : 0;
}

/**
 * A replay gave up on a connection that does not read. The connection is closed, so the ack never arrives; the
 * code is a client-side one so that it is counted rather than logged as a server fault.
 */
export class SlowConsumerError extends AppError {
  constructor() {
    super("RATE_LIMITED", "the connection did not read what was sent in time; closed as a slow consumer", 429);
  }
}

/**
 * Bounds what a connection that reads slowly, or not at all, may cost the node, without dropping a reader. When
 * a connection's unsent outbound data (the Engine.IO write buffer plus the WebSocket's `bufferedAmount`) is over
 * `maxBytes` as one more packet is written, the connection falls **behind**: live events are no longer written to
 * it (the broadcast filter asks `isBehind`, and the sockets' rooms note what they missed), and once it has sent
 * all but `lowWatermark` bytes it is handed to `onCaughtUp`, which sends what it missed from the log. One packet
 * may take it over the limit (a single event larger than the limit still reaches a reader). A connection that
 * makes no progress for `readTimeoutMs` while it has data waiting is closed; so is one whose unsent data passes
 * HARD_LIMIT_FACTOR times the limit.
 *
 * The write buffer's size is kept incrementally: added on the connection's `packetCreate` by one listener function
 * shared by every connection, reset by one listener on the server's `flush`. An idle connection costs one
 * listener slot and one number.
 */
export class OutboundGuard {
  private readonly counter;
  private readonly behindCounter;
  private readonly onPacketCreate: (this: Tracked, packet: EnginePacket) => void;
  private readonly onFlush: (conn: Tracked) => void;
  /** Connections behind right now: while there are none, broadcasts need not look at each socket's connection. */
  behindCount = 0;
  /** Told when a connection that fell behind has drained: it is live again, and must be sent what it missed. */
  onCaughtUp: (conn: EngineConnection) => void = () => undefined;

  constructor(
    readonly maxBytes: number,
    readonly readTimeoutMs: number,
    metrics: Metrics,
    private readonly logger: Logger,
  ) {
    this.counter = metrics.slowConsumerDisconnects;
    this.behindCounter = metrics.slowReaders;
    const self = this;
    this.onPacketCreate = function (this: Tracked, packet: EnginePacket): void {
      const unsent = this[UNSENT];
      const total = unsent + transportBuffered(this);
      if (total > maxBytes) {
        if (total > HARD_LIMIT_FACTOR * maxBytes) self.closeSlowConsumer(this, "buffer_limit");
        else if (!this[BEHIND]) self.fallBehind(this);
      }
      this[UNSENT] = unsent + packetBytes(packet);
    };
    this.onFlush = (conn: Tracked): void => {
      conn[UNSENT] = 0;
    };
  }

  /** What a connection behind must be down to before it is sent more (the replays' watermark too). */
  get lowWatermark(): number {
    return lowWatermarkOf(this.maxBytes);
  }

  /** Tracks every connection of an Engine.IO server (`io.engine`) from its start, when its write buffer is empty. */
  install(engine: EventEmitter): void {
    engine.on("connection", (conn: EngineConnection) => {
      (conn as Tracked)[UNSENT] = 0;
      conn.on("packetCreate", this.onPacketCreate);
    });
    engine.on("flush", this.onFlush);
  }

  /** Bytes written to the connection that have not left the process yet. */
  unsentBytes(conn: EngineConnection): number {
    return ((conn as Tracked)[UNSENT] ?? 0) + transportBuffered(conn);
  }

  /** Whether live events skip this connection for now (it fell behind and has not drained yet). */
  isBehind(conn: EngineConnection): boolean {
    return (conn as Tracked)[BEHIND] === true;
  }

  /**
   * Resolves once the connection's unsent data is at most `bytes`. Gives up when `signal` aborts (throws its
   * reason) or the connection closes (BAD_REQUEST, like any request of a socket that disconnected), or when it
   * has made no progress for `readTimeoutMs`: then the connection is closed as a slow consumer and this throws
   * SlowConsumerError. A client that reads, however slowly, is waited for.
   */
  async waitForDrain(conn: EngineConnection, bytes: number, signal?: AbortSignal): Promise<void> {
    let lowest = this.unsentBytes(conn);
    let deadline = Date.now() + this.readTimeoutMs;
    while (this.unsentBytes(conn) > bytes) {
      signal?.throwIfAborted();
      if (conn.readyState !== "open" || (conn as Tracked)[SLOW]) throw new SocketDisconnectedError();
      const unsent = this.unsentBytes(conn);
      if (unsent < lowest) {
        lowest = unsent;
        deadline = Date.now() + this.readTimeoutMs;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        this.closeSlowConsumer(conn, "read_timeout");
        throw new SlowConsumerError();
      }
      await new Promise<void>((resolve) => {
        // The transport emits `drain` when it has written a batch; the timer covers polling and upgrades.
        const transport = conn.transport;
        const wake = (): void => {
          clearTimeout(timer);
          transport.off("drain", wake);
          conn.off("close", wake);
          signal?.removeEventListener("abort", wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.min(DRAIN_POLL_MS, left));
        transport.on("drain", wake);
        conn.on("close", wake);
        signal?.addEventListener("abort", wake);
      });
    }
  }

  /** Live events stop for the connection until it has drained to the low watermark; then onCaughtUp. */
  private fallBehind(conn: Tracked): void {
    conn[BEHIND] = true;
    this.behindCount++;
    this.behindCounter.inc();
    this.logger.debug(
      { unsentBytes: this.unsentBytes(conn), transport: conn.transport.name, limit: this.maxBytes },
      "a connection fell behind: live events paused",
    );
    // Rejected when the connection closed (as a slow consumer, or by the client): then nothing to catch up.
    const drained = this.waitForDrain(conn, this.lowWatermark).then(
      () => true,
      () => false,
    );
    void drained.then((caughtUp) => {
      delete conn[BEHIND];
      this.behindCount--;
      // Not from inside a write; the catch-up reads the log and writes to the connection.
      if (caughtUp) this.onCaughtUp(conn);
    });
  }

  /**
   * Closes a connection that does not read: the TCP connection is dropped at once (no close handshake that would
   * keep its buffers until a timeout), so its memory is freed. Its client sees a transport close and reconnects.
   */
  closeSlowConsumer(conn: EngineConnection, reason: SlowConsumerReason): void {
    const tracked = conn as Tracked;
    if (tracked[SLOW] || conn.readyState === "closed") return;
    tracked[SLOW] = true;
    this.counter.inc({ reason });
    this.logger.warn(
      { reason, unsentBytes: this.unsentBytes(conn), transport: conn.transport.name, limit: this.maxBytes },
      "closing a slow consumer",
    );
    // Not from inside the write that noticed it (that may be an adapter broadcast walking a room's sockets).
    process.nextTick(() => {
      if (conn.readyState === "closed") return;
      if (conn.transport.name === "websocket") conn.transport.socket?.terminate?.();
      conn.close(true);
    });
  }
}
