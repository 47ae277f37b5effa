export interface CachedReadingOptions {
  /** A value younger than this is reported again without reading: many scrapes (several Prometheus servers, retries) cost one read. */
  ttlMs: number;
  /** How long a caller waits for a read in flight; past it the read goes on, and the caller gets the last value. */
  deadlineMs: number;
  /**
   * The last value is reported while a read is slow only if it is younger than this; older is "unknown". A read
   * still pending after this long is given up on and the next caller starts another: a connection stuck on a
   * dead peer (node-postgres has no connect timeout) must not freeze the figure after the store is back.
   */
  maxAgeMs: number;
}

/**
 * A figure read from a shared store (Redis, PostgreSQL) when Prometheus scrapes: cached, one read at a time, and
 * never holding a scrape longer than a deadline, so a slow or unreachable store cannot make /metrics hang, and
 * scrapes cannot pile reads onto a store that is already struggling. A failed read forgets the last value: the
 * store answered that it cannot say, so the figure is unknown (`undefined`) rather than an old number.
 */
export class CachedReading<T> {
  private last: { value: T; at: number } | undefined;
  private inFlight: { done: Promise<void>; since: number } | undefined;

  constructor(
    private readonly read: () => Promise<T>,
    private readonly options: CachedReadingOptions,
    private readonly onError: (error: unknown) => void,
  ) {}

  async get(): Promise<T | undefined> {
    const now = Date.now();
    if (this.last && now - this.last.at < this.options.ttlMs) return this.last.value;
    if (!this.inFlight || now - this.inFlight.since >= this.options.maxAgeMs) this.inFlight = this.refresh(now);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.inFlight.done, new Promise<void>((resolve) => (timer = setTimeout(resolve, this.options.deadlineMs)))]);
    clearTimeout(timer);
    return this.last && Date.now() - this.last.at < this.options.maxAgeMs ? this.last.value : undefined;
  }

  private refresh(since: number): { done: Promise<void>; since: number } {
    const flight: { done: Promise<void>; since: number } = { since, done: Promise.resolve() };
    // `flight` is this read's identity: a read given up on that answers late must not overwrite a newer one's answer.
    const current = (): boolean => this.inFlight === flight;
    flight.done = (async () => {
      try {
        const value = await this.read();
        if (current()) this.last = { value, at: Date.now() };
      } catch (error) {
        if (current()) this.last = undefined;
        this.onError(error);
      } finally {
        if (current()) this.inFlight = undefined;
      }
    })();
    return flight;
  }
}
