import { isEvent, type RoomEvent } from "../../src/client/index.js";
import { Observable } from "./observable.js";

/** One slice of the rolling window. */
export interface Bucket {
  /** Start of the slice (ms since the epoch). */
  at: number;
  completed: number;
  failed: number;
  /** Run times (startedAt → finishedAt) of the tasks that completed in the slice, summed, and how many. */
  durationMs: number;
  durations: number;
  /** Queued tasks (GET /api/v1/tasks/counts) last read in the slice; null before a reading. */
  queued: number | null;
}

export const BUCKET_MS = 2000;
/** Two minutes: enough to see a trend, short enough to keep in a tab. */
export const BUCKETS = 60;

/**
 * The live charts' data, kept in the tab only: finished tasks counted from the `tasks` room's events as they
 * arrive, and the queue's depth from the counts the session polls. Nothing is read back from before the tab
 * opened: the charts start empty and fill as the hub works.
 */
export class Activity extends Observable {
  readonly buckets: Bucket[] = [];

  constructor(private readonly now: () => number = Date.now) {
    super();
    this.roll();
  }

  /** Starts a new slice when the current one is over (called on a timer, and before each write). */
  roll(): void {
    const at = Math.floor(this.now() / BUCKET_MS) * BUCKET_MS;
    const last = this.buckets.at(-1);
    if (last && last.at === at) return;
    // Empty slices for the time nothing happened (a tab in the background skips timer ticks).
    let next = last ? Math.max(last.at + BUCKET_MS, at - BUCKETS * BUCKET_MS) : at;
    for (; next <= at; next += BUCKET_MS)
      this.buckets.push({ at: next, completed: 0, failed: 0, durationMs: 0, durations: 0, queued: last?.queued ?? null });
    if (this.buckets.length > BUCKETS) this.buckets.splice(0, this.buckets.length - BUCKETS);
    this.changed();
  }

  observe(event: RoomEvent<"tasks">): void {
    const finished = isEvent(event, "task.completed") ? "completed" : isEvent(event, "task.failed") ? "failed" : undefined;
    if (!finished) return;
    this.roll();
    const bucket = this.buckets.at(-1)!;
    const task = (event.data as { task: { startedAt: string | null; createdAt: string; finishedAt: string | null } }).task;
    bucket[finished]++;
    if (finished === "completed" && task.finishedAt) {
      const from = Date.parse(task.startedAt ?? task.createdAt);
      const ms = Date.parse(task.finishedAt) - from;
      if (Number.isFinite(ms) && ms >= 0) {
        bucket.durationMs += ms;
        bucket.durations++;
      }
    }
    this.changed();
  }

  queueDepth(queued: number): void {
    this.roll();
    this.buckets.at(-1)!.queued = queued;
    this.changed();
  }
}
