/** Shortest time between the starts of two stored progress reports of one task attempt. */
export const PROGRESS_STORE_INTERVAL_MS = 100;

interface Waiting<R> {
  store: () => Promise<R>;
  waiters: Array<{ resolve: (result: R) => void; reject: (error: unknown) => void }>;
}

interface Slot<R> {
  /** Set while the interval after the last store runs: a report arriving meanwhile waits. */
  timer?: NodeJS.Timeout;
  /** The newest report waiting for the interval to end; a newer one replaces it. */
  waiting?: Waiting<R>;
  /** Settles when this key's last started store has finished. */
  storing: Promise<void>;
  busy: number;
}

/**
 * Coalesces a flood of progress reports so it cannot multiply stored events: per key (a task attempt) at most one
 * store starts per interval. The first report after a quiet interval is stored at once; reports during the interval
 * wait, the newest replacing older ones, and the newest is stored when the interval ends, so the last progress is
 * never lost. Every report still gets an answer: the result of the store that carried it or replaced it. A key's
 * stores run one after another, in the order the reports came.
 *
 * Per node, in memory: an attempt's reports come from the one worker that holds its lease, over one connection.
 * A worker that throttles its own reports to this interval or slower (ours do, 250 ms) is never coalesced, only
 * a final report sent sooner after the previous one waits for the rest of the interval.
 */
export class ProgressCoalescer<R> {
  private readonly slots = new Map<string, Slot<R>>();

  constructor(private readonly intervalMs = PROGRESS_STORE_INTERVAL_MS) {}

  submit(key: string, store: () => Promise<R>): Promise<R> {
    let slot = this.slots.get(key);
    if (!slot) {
      slot = { storing: Promise.resolve(), busy: 0 };
      this.slots.set(key, slot);
    }
    if (!slot.timer) return this.start(key, slot, store);
    const waiting = (slot.waiting ??= { store, waiters: [] });
    waiting.store = store;
    return new Promise<R>((resolve, reject) => waiting.waiters.push({ resolve, reject }));
  }

  /** Stores the key's waiting report now and waits for its stores: the attempt's other reports must not overtake it. */
  async settle(key: string): Promise<void> {
    const slot = this.slots.get(key);
    if (!slot) return;
    if (slot.waiting) {
      clearTimeout(slot.timer);
      this.intervalOver(key, slot);
    }
    await slot.storing;
  }

  private start(key: string, slot: Slot<R>, store: () => Promise<R>): Promise<R> {
    const result = slot.storing.then(store);
    slot.busy += 1;
    slot.storing = result.then(
      () => undefined,
      () => undefined,
    );
    void slot.storing.then(() => {
      slot.busy -= 1;
      this.forgetIfIdle(key, slot);
    });
    slot.timer = setTimeout(() => this.intervalOver(key, slot), this.intervalMs);
    slot.timer.unref();
    return result;
  }

  private intervalOver(key: string, slot: Slot<R>): void {
    slot.timer = undefined;
    const waiting = slot.waiting;
    if (!waiting) return this.forgetIfIdle(key, slot);
    slot.waiting = undefined;
    this.start(key, slot, waiting.store).then(
      (result) => waiting.waiters.forEach((w) => w.resolve(result)),
      (error: unknown) => waiting.waiters.forEach((w) => w.reject(error)),
    );
  }

  private forgetIfIdle(key: string, slot: Slot<R>): void {
    if (!slot.timer && !slot.waiting && slot.busy === 0 && this.slots.get(key) === slot) this.slots.delete(key);
  }
}
