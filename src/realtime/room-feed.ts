import { decodeCursor, type CursorPosition } from "../protocol/cursor.js";
import type { Envelope } from "../protocol/events.js";

/**
 * How long an event that arrived ahead of a gap waits for the missing ones before the node reads them from the
 * log. Events of one room numbered by two nodes reach a third one in either order, a few milliseconds apart;
 * a broadcast a node never receives (its pub/sub connection dropped) is read from the log after this long.
 */
export const GAP_WAIT_MS = 200;
/** After a failed read of the log (the database is down), the next try comes this much later. */
export const GAP_RETRY_MS = 1_000;
/**
 * Events a feed keeps at most while it waits for a gap to be filled. Past it (or past its byte bound) the kept
 * events are dropped and read from the log with the gap: every one of them is stored, so nothing is lost, and a
 * room cannot make a node keep more than this for it.
 */
export const MAX_PENDING_EVENTS = 1_000;

/**
 * Why one of the room's sockets on this node is not live (is not written the room's live events):
 * - `starting`: it subscribed before the node knew where the room stands (the feed's first head read);
 * - `replaying`: it is sent the room's stored events from its own position, page by page, until it reaches the feed;
 * - `behind`: its connection fell behind while it was live; it will replay from `position` once it drained;
 * - `ahead`: its position is past the feed's (it came from a node that was ahead); it goes live when the feed gets there.
 */
export type LagReason = "starting" | "replaying" | "behind" | "ahead";
export interface Lag {
  reason: LagReason;
  /** Every event of the room up to here has been sent to the socket (null while starting). */
  position: CursorPosition | null;
}

/** Reads of the room's log the feed makes (each in the room's tenant's share of the node). */
export interface FeedLog {
  /** The room's current head in the log. */
  head(): Promise<CursorPosition>;
  /** Stored events after `from`, up to `upTo`, oldest first: one page (CURSOR_EXPIRED when the log no longer has them). */
  page(from: CursorPosition, upTo: CursorPosition): Promise<Envelope[]>;
}

export interface FeedOutlets {
  log: FeedLog;
  /** Writes one event to the room's live sockets on this node, now (synchronously). */
  write(envelope: Envelope): void;
  /**
   * The log cannot continue the room from where this node stands (past retention, a new epoch of the room, or
   * more behind than a replay sends): the room's sockets must start again from their own cursors.
   */
  lost(reason: string): void;
  /** A read of the log failed (the database is down): reported, and tried again GAP_RETRY_MS later. */
  failed(error: unknown): void;
  /** Events this feed read from the log and wrote (a gap it filled). */
  filled(events: number): void;
  /** More than this many events behind, a gap is not filled from the log: `lost`. */
  maxGap: number;
  /** Bytes of events kept at most while waiting for a gap (the node's MAX_SOCKET_BUFFER_BYTES). */
  maxPendingBytes: number;
  gapWaitMs?: number;
  retryMs?: number;
}

interface Pending {
  cursor: CursorPosition;
  envelope: Envelope;
  bytes: number;
}

/** Thrown by a FeedLog read for events the log no longer has (so the feed does not depend on the error classes). */
export function isExpired(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === "CURSOR_EXPIRED";
}

/**
 * One room as this node delivers it: the position up to which every event of the room has been written to the
 * room's live sockets here, once each and in cursor order. Every live event of the room that reaches the node
 * (from its own publishers or from other nodes, in whatever order Redis brings them) is offered to `accept`:
 * the next one is written, one already written is dropped, one ahead of a gap is kept until the gap is filled,
 * by the missing events arriving or, GAP_WAIT_MS later, by the node reading them from the log. A gap with no
 * later event to reveal it (the node's pub/sub connection dropped and the room went quiet) is found by `check`,
 * which the node calls with the room's head in the log on a short timer and after a reconnect.
 *
 * The room's sockets are live (at the feed's position: they cost nothing here) unless listed in `lagging` with
 * their own position; the subscriptions move a lagging socket forward through the log and make it live the moment
 * its position equals the feed's.
 */
export class RoomFeed {
  /** Null until the first head read (`start`). */
  position: CursorPosition | null = null;
  /** The room's sockets on this node that are not live, by socket id. */
  readonly lagging = new Map<string, Lag>();
  private aheadCount = 0;
  private pending: Pending[] = [];
  private pendingBytes = 0;
  /** A head seen in the log past the position, or an event dropped from `pending`: a fill is due if not reached. */
  private expected: CursorPosition | null = null;
  private timer: NodeJS.Timeout | undefined;
  private filling = false;
  private releasing = false;
  private closed = false;
  private starting: Promise<void> | undefined;

  constructor(private readonly outlets: FeedOutlets) {}

  /** Learns where the room stands (once; again after a failed try). Events that arrive meanwhile are kept. */
  start(): Promise<void> {
    if (this.position) return Promise.resolve();
    this.starting ??= this.outlets.log.head().then(
      (head) => {
        this.starting = undefined;
        if (this.position || this.closed) return;
        this.position = head;
        this.release();
      },
      (error: unknown) => {
        this.starting = undefined;
        throw error;
      },
    );
    return this.starting;
  }

  /**
   * A live event of the room reached the node. True when it is the next one: the caller writes it to the live
   * sockets and then calls `delivered`. False when it was written already (dropped) or comes ahead of a gap (kept).
   */
  accept(envelope: Envelope, cursor: CursorPosition, bytes: number): boolean {
    const position = this.position;
    if (this.closed) return false;
    if (!position) {
      this.keep(envelope, cursor, bytes);
      return false;
    }
    if (cursor.epoch !== position.epoch) {
      // A room reset (its sequence was created anew) or a stale copy: the log's head tells which.
      this.expect(cursor);
      return false;
    }
    if (cursor.seq <= position.seq) return false;
    if (cursor.seq === position.seq + 1) return true;
    this.keep(envelope, cursor, bytes);
    this.arm();
    return false;
  }

  /** The event at `cursor` was written to the live sockets: moves on, and writes the kept events that follow. */
  delivered(cursor: CursorPosition): void {
    this.advance(cursor);
    this.release();
  }

  /** The room's head in the log, read by the node's periodic check: a fill follows if the feed does not get there. */
  check(head: CursorPosition): void {
    const position = this.position;
    if (!position || this.closed) return;
    if (head.epoch === position.epoch && head.seq <= position.seq) return;
    this.expect(head);
  }

  /** A socket whose position is past the feed's: it goes live when the feed reaches it (read from the log if need be). */
  waitFor(socketId: string, position: CursorPosition): void {
    this.setLag(socketId, { reason: "ahead", position });
    this.expect(position);
  }

  /** Marks a socket not live (or changes why), with its position. */
  setLag(socketId: string, lag: Lag): void {
    const before = this.lagging.get(socketId);
    if (before?.reason === "ahead") this.aheadCount--;
    if (lag.reason === "ahead") this.aheadCount++;
    this.lagging.set(socketId, lag);
  }

  /** The socket is live (its position is the feed's), or gone. */
  unlag(socketId: string): void {
    if (this.lagging.get(socketId)?.reason === "ahead") this.aheadCount--;
    this.lagging.delete(socketId);
  }

  /** The room has no socket on this node any more. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = [];
    this.pendingBytes = 0;
    this.lagging.clear();
    this.aheadCount = 0;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Events kept ahead of a gap (for tests and metrics). */
  get pendingCount(): number {
    return this.pending.length;
  }

  private advance(cursor: CursorPosition): void {
    this.position = cursor;
    if (this.expected && this.expected.epoch === cursor.epoch && this.expected.seq <= cursor.seq) this.expected = null;
    if (this.aheadCount === 0) return;
    for (const [socketId, lag] of this.lagging) {
      if (lag.reason === "ahead" && lag.position && lag.position.epoch === cursor.epoch && lag.position.seq <= cursor.seq)
        this.unlag(socketId);
    }
  }

  /** Writes the kept events that continue the sequence; drops those written already. */
  private release(): void {
    if (this.releasing) return;
    this.releasing = true;
    try {
      while (this.pending.length > 0 && this.position && !this.closed) {
        const first = this.pending[0]!;
        const position = this.position;
        if (first.cursor.epoch === position.epoch && first.cursor.seq > position.seq + 1) break;
        this.pending.shift();
        this.pendingBytes -= first.bytes;
        if (first.cursor.epoch !== position.epoch) {
          this.expect(first.cursor);
          continue;
        }
        if (first.cursor.seq <= position.seq) continue;
        this.outlets.write(first.envelope);
        this.advance(first.cursor);
      }
    } finally {
      this.releasing = false;
    }
    if (this.gapped()) this.arm();
    else this.disarm();
  }

  /** Keeps an event that came ahead of a gap, in cursor order; past the bounds, keeps none and reads the log instead. */
  private keep(envelope: Envelope, cursor: CursorPosition, bytes: number): void {
    if (this.pending.length >= MAX_PENDING_EVENTS || this.pendingBytes + bytes > this.outlets.maxPendingBytes) {
      const last = this.pending[this.pending.length - 1]?.cursor;
      this.pending = [];
      this.pendingBytes = 0;
      this.expect(last && last.epoch === cursor.epoch && last.seq > cursor.seq ? last : cursor);
      return;
    }
    let at = this.pending.length;
    while (at > 0 && this.pending[at - 1]!.cursor.seq > cursor.seq) at--;
    if (at > 0 && this.pending[at - 1]!.cursor.seq === cursor.seq && this.pending[at - 1]!.cursor.epoch === cursor.epoch) return;
    this.pending.splice(at, 0, { cursor, envelope, bytes });
    this.pendingBytes += bytes;
  }

  private expect(cursor: CursorPosition): void {
    const known = this.expected;
    if (!known || known.epoch !== cursor.epoch || known.seq < cursor.seq) this.expected = cursor;
    this.arm();
  }

  /** Whether events are missing: one kept ahead of a gap, or a position seen elsewhere that the feed has not reached. */
  private gapped(): boolean {
    const position = this.position;
    if (!position) return false;
    const first = this.pending[0];
    if (first && (first.cursor.epoch !== position.epoch || first.cursor.seq > position.seq + 1)) return true;
    const expected = this.expected;
    return expected !== null && (expected.epoch !== position.epoch || expected.seq > position.seq);
  }

  private arm(delay = this.outlets.gapWaitMs ?? GAP_WAIT_MS): void {
    if (this.timer || this.closed || !this.position) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.gapped()) void this.fill();
    }, delay);
    this.timer.unref();
  }

  private disarm(): void {
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * Reads what the node missed from the log, up to the room's head, and writes it to the live sockets in order.
   * Events that arrive live meanwhile are written as they come (the next one) or dropped (read already).
   */
  private async fill(): Promise<void> {
    if (this.filling || this.closed || !this.position) return;
    this.filling = true;
    let retry = false;
    let written = 0;
    try {
      const head = await this.outlets.log.head();
      if (this.closed) return;
      const start = this.position;
      if (head.epoch !== start.epoch) return this.lose(head, "the room's log was reset (a new epoch)");
      if (head.seq - start.seq > this.outlets.maxGap) return this.lose(head, `more than ${this.outlets.maxGap} events missed`);
      while (!this.closed && this.position.seq < head.seq) {
        const events = await this.outlets.log.page(this.position, head);
        if (this.closed || events.length === 0) break;
        for (const envelope of events) {
          const cursor = decodeCursor(envelope.cursor);
          const position = this.position;
          if (!cursor || cursor.epoch !== position.epoch || cursor.seq !== position.seq + 1) continue;
          this.outlets.write(envelope);
          this.advance(cursor);
          written++;
        }
      }
      // The head read answers what the feed expected up to it, and any position of another epoch (a stale copy).
      if (this.expected && (this.expected.epoch !== head.epoch || this.expected.seq <= head.seq)) this.expected = null;
    } catch (error) {
      if (this.closed) return;
      if (isExpired(error)) {
        const head = await this.outlets.log.head().catch(() => null);
        if (head && !this.closed) return this.lose(head, "the events this node missed are past retention");
      }
      this.outlets.failed(error);
      retry = true;
    } finally {
      this.filling = false;
      if (written > 0) this.outlets.filled(written);
    }
    if (this.closed) return;
    this.release();
    if (retry) {
      this.disarm();
      this.arm(this.outlets.retryMs ?? GAP_RETRY_MS);
    }
  }

  /** The log cannot continue the room from here: its sockets start again from their cursors; the feed from the head. */
  private lose(head: CursorPosition, reason: string): void {
    this.position = head;
    this.expected = null;
    this.pending = [];
    this.pendingBytes = 0;
    this.lagging.clear();
    this.aheadCount = 0;
    this.disarm();
    this.outlets.lost(reason);
  }
}
