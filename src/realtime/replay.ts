import { AppError } from "../errors.js";

/** The ack of a replay that a later `subscribe { after }` for the same room replaced. */
export class SupersededError extends AppError {
  constructor(room: string) {
    super("SUPERSEDED", `a later subscribe for ${room.slice(0, 140)} replaced this one`, 409);
  }
}

/**
 * A counting semaphore with FIFO waiters: the node-wide limit on replay pages held in memory at once. A waiter
 * whose signal aborts leaves the queue (and rejects with the signal's reason).
 */
export class Semaphore {
  private available: number;
  private readonly waiters: Array<{ grant: () => void }> = [];

  constructor(readonly permits: number) {
    this.available = permits;
  }

  /** Resolves with the function that gives the permit back (call it exactly once). */
  async acquire(signal: AbortSignal): Promise<() => void> {
    signal.throwIfAborted();
    if (this.available > 0) {
      this.available--;
      return this.releaser();
    }
    await new Promise<void>((resolve, reject) => {
      const waiter = {
        grant: (): void => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = (): void => {
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) this.waiters.splice(index, 1);
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
    });
    return this.releaser();
  }

  /** Permits in use (for tests and metrics). */
  get inUse(): number {
    return this.permits - this.available;
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // Hand the permit straight to the next waiter, so it cannot be taken by a newcomer in between.
      const next = this.waiters.shift();
      if (next) next.grant();
      else this.available++;
    };
  }
}

/** One replay of one room: `signal` aborts (with SupersededError) when a later replay of the room replaces it. */
export interface ReplayTicket {
  readonly room: string;
  readonly signal: AbortSignal;
}

/**
 * The replays of one socket: they run one after the other, and a new replay of a room supersedes the one of the
 * same room that is running or waiting (its signal aborts at once, so it stops sending and its ack answers
 * SUPERSEDED). Created on a socket's first replay.
 */
export class ReplayLane {
  private tail: Promise<void> = Promise.resolve();
  private readonly current = new Map<string, { controller: AbortController }>();

  /** Runs `work` after every replay queued before it has finished. */
  async run<T>(room: string, work: (ticket: ReplayTicket) => Promise<T>): Promise<T> {
    this.supersede(room);
    const entry = { controller: new AbortController() };
    this.current.set(room, entry);
    const signal = entry.controller.signal;
    const previous = this.tail;
    let finished!: () => void;
    const done = new Promise<void>((resolve) => (finished = resolve));
    // The next replay waits for this one *and* everything before it, even if this one leaves the queue early.
    this.tail = previous.then(() => done);
    try {
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => reject(signal.reason);
        if (signal.aborted) return onAbort();
        signal.addEventListener("abort", onAbort, { once: true });
        void previous.then(() => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        });
      });
      signal.throwIfAborted();
      return await work({ room, signal });
    } finally {
      if (this.current.get(room) === entry) this.current.delete(room);
      finished();
    }
  }

  /** Whether a replay of the room is queued or running. */
  has(room: string): boolean {
    return this.current.has(room);
  }

  /** Stops the room's queued or running replay, if any (it answers SUPERSEDED). */
  supersede(room: string): void {
    const entry = this.current.get(room);
    if (!entry) return;
    this.current.delete(room);
    entry.controller.abort(new SupersededError(room));
  }

  /** Stops every queued or running replay (the socket is gone). */
  abortAll(reason: unknown): void {
    for (const { controller } of this.current.values()) controller.abort(reason);
    this.current.clear();
  }
}
