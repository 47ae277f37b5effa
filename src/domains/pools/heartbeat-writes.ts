/**
 * Whether a worker's heartbeat must write. A heartbeat carries nothing new: it says the worker lives. Redis
 * (its presence key) and the database (`lastHeartbeatAt`, the second witness of the presence sweep) need to
 * hear that once in a while, not at the rate a socket may send events (WORKER_EVENTS_PER_SECOND): 2,000
 * heartbeats from one socket, each a Redis write, an UPDATE and a locking transaction, once took the node's
 * database pool from every other tenant. A heartbeat writes at most once per `minGapMs` per worker connection
 * on this node; a worker that heartbeats at its interval still writes every time.
 */
export class HeartbeatWrites {
  /** `<tenant>|<worker>` → the connection heard and when it last wrote. */
  private readonly last = new Map<string, { connectionId: string; at: number }>();

  constructor(
    private readonly minGapMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether this heartbeat must write; records it as written when it must. */
  due(key: string, connectionId: string): boolean {
    const now = this.now();
    const seen = this.last.get(key);
    // A new connection of the worker takes its presence over: it always writes.
    if (seen && seen.connectionId === connectionId && now - seen.at < this.minGapMs) return false;
    this.last.set(key, { connectionId, at: now });
    return true;
  }

  /** The connection closed: the worker's next connection writes at once. */
  forget(key: string, connectionId: string): void {
    if (this.last.get(key)?.connectionId === connectionId) this.last.delete(key);
  }

  get size(): number {
    return this.last.size;
  }
}
