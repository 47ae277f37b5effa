import { Queue, Worker, type Job } from "bullmq";
import { withDeadline } from "../../dependencies/deadline.js";
import type { FailureReporter } from "../../dependencies/status.js";
import { DependencyUnavailableError } from "../../errors.js";
import type { RedisClient } from "../../jobs/redis-connection.js";
import { RedisKeys } from "../../jobs/redis-keys.js";
import type { ScheduleTaskTemplate } from "../../protocol/views.js";
import type { Timing } from "./timing.js";

/**
 * A scheduler job's data: which schedule is due, and its task template as of the schedule's last change (every
 * change of the template upserts the scheduler), so that a due time costs no read of the row.
 */
export interface ScheduleJobData {
  tenantId: string;
  scheduleId: string;
  task: ScheduleTaskTemplate;
}

/** A scheduler as Redis holds it: its timing and its jobs' template. */
export interface HeldScheduler extends Timing {
  task: unknown;
}

/** Handles one due time of a schedule; throwing makes BullMQ try that due time again (it stays idempotent). */
export type FireHandler = (data: ScheduleJobData, dueAt: number) => Promise<void>;

/** One job scheduler per schedule, named `<tenant>.<schedule>`: neither id contains '.', so it splits back. */
export function schedulerId(tenantId: string, scheduleId: string): string {
  return `${tenantId}.${scheduleId}`;
}

export function parseSchedulerId(id: string): { tenantId: string; scheduleId: string } | undefined {
  const dot = id.indexOf(".");
  return dot > 0 ? { tenantId: id.slice(0, dot), scheduleId: id.slice(dot + 1) } : undefined;
}

/**
 * The due time of a scheduler's job. BullMQ names each one `repeat:<scheduler id>:<due time in ms>` (the job id is
 * how it keeps one job per due time), and keeps the same number as `prevMillis`.
 */
export function dueTimeOf(job: Pick<Job, "id" | "opts" | "timestamp">): number {
  const fromId = Number(/:(\d+)$/.exec(job.id ?? "")?.[1]);
  if (Number.isSafeInteger(fromId) && fromId > 0) return fromId;
  return job.opts.prevMillis ?? job.timestamp;
}

/** BullMQ options of every due time's job: a few tries when the database refuses, then it is dropped. */
const JOB_OPTIONS = {
  attempts: 5,
  backoff: { type: "exponential", delay: 500 },
  removeOnComplete: true,
  removeOnFail: { age: 3600, count: 1000 },
} as const;

/**
 * The BullMQ side of schedules: one queue (RedisKeys.scheduleQueueName) holding a job scheduler per active
 * schedule, and a Worker on every node that turns each due job into a task. Producer calls go over the node's
 * command connection and are bounded by the dependency deadline, like the task queues'.
 */
export class ScheduleFiring {
  private queueInstance: Queue<ScheduleJobData> | undefined;
  private worker: Worker<ScheduleJobData> | undefined;

  constructor(
    private readonly connection: RedisClient,
    private readonly keys: RedisKeys,
    private readonly deadlineMs: number,
  ) {}

  private get queue(): Queue<ScheduleJobData> {
    if (!this.queueInstance) {
      this.queueInstance = new Queue<ScheduleJobData>(RedisKeys.scheduleQueueName, { connection: this.connection, prefix: this.keys.bull });
      this.queueInstance.on("error", () => undefined); // connection errors surface on the shared connection's own listener
    }
    return this.queueInstance;
  }

  private async bullmq<T>(work: (queue: Queue<ScheduleJobData>) => Promise<T>): Promise<T> {
    if (this.connection.status !== "ready") throw new DependencyUnavailableError("redis");
    return withDeadline(work(this.queue), this.deadlineMs, "redis");
  }

  /**
   * Creates or replaces the schedule's job scheduler. `every`: the first due time is `startAt` and then every
   * `every` ms after it; cron: the expression's times in its time zone (BullMQ computes them with the same parser).
   */
  async upsert(data: ScheduleJobData, timing: Timing, startAt: number): Promise<void> {
    const repeat =
      timing.every !== null
        ? { every: timing.every, startDate: startAt }
        : { pattern: timing.cron!, ...(timing.timezone ? { tz: timing.timezone } : {}) };
    await this.bullmq((queue) =>
      queue.upsertJobScheduler(schedulerId(data.tenantId, data.scheduleId), repeat, { name: "due", data, opts: JOB_OPTIONS }),
    );
  }

  /** Removes the schedule's job scheduler and its next job (a job already due still comes, and finds it gone or paused). */
  async remove(tenantId: string, scheduleId: string): Promise<void> {
    await this.bullmq((queue) => queue.removeJobScheduler(schedulerId(tenantId, scheduleId)));
  }

  /** The next due time of each schedule (ms), one round trip; null for a schedule without a scheduler. */
  async nextRuns(schedules: ReadonlyArray<{ tenantId: string; id: string }>): Promise<Array<number | null>> {
    if (schedules.length === 0) return [];
    if (this.connection.status !== "ready") throw new DependencyUnavailableError("redis");
    const scores = await withDeadline(
      this.connection.zmscore(this.keys.scheduleSchedulers, ...schedules.map((s) => schedulerId(s.tenantId, s.id))),
      this.deadlineMs,
      "redis",
    );
    return scores.map((score) => (score === null ? null : Number(score)));
  }

  /** Every scheduler's id, timing and template as Redis holds them (the reconciler compares them with the rows). */
  async schedulers(): Promise<Map<string, HeldScheduler>> {
    const ids = await withDeadline(this.connection.zrange(this.keys.scheduleSchedulers, 0, -1), this.deadlineMs, "redis");
    const found = new Map<string, HeldScheduler>();
    for (let start = 0; start < ids.length; start += 1000) {
      const batch = ids.slice(start, start + 1000);
      const pipeline = this.connection.pipeline();
      for (const id of batch) pipeline.hmget(this.keys.scheduleScheduler(id), "every", "pattern", "tz", "data");
      const replies = (await withDeadline(pipeline.exec(), this.deadlineMs, "redis")) ?? [];
      batch.forEach((id, i) => {
        const [error, value] = replies[i] ?? [new Error("no reply"), null];
        if (error) throw error;
        const [every, pattern, tz, data] = value as Array<string | null>;
        let task: unknown = null;
        try {
          task = data ? ((JSON.parse(data) as Partial<ScheduleJobData>).task ?? null) : null;
        } catch {
          // An unreadable template is a different one: the reconciler rewrites it.
        }
        found.set(id, { every: every == null ? null : Number(every), cron: pattern ?? null, timezone: tz ?? null, task });
      });
    }
    return found;
  }

  /** Starts this node's worker: it takes due jobs of every tenant's schedules. */
  startWorker(connection: RedisClient, handler: FireHandler, options: { concurrency: number; failures: FailureReporter }): void {
    this.worker = new Worker<ScheduleJobData>(RedisKeys.scheduleQueueName, (job) => handler(job.data, dueTimeOf(job)), {
      connection,
      prefix: this.keys.bull,
      concurrency: options.concurrency,
      // A due time takes milliseconds: a job held by a node that died goes to another node within seconds (its
      // task is still made once: see fire).
      lockDuration: 10_000,
      stalledInterval: 5000,
      maxStalledCount: 3,
    });
    this.worker.on("error", (error) => options.failures.report(error, "schedule worker error", {}, "bullmq"));
  }

  async close(deadlineMs: number): Promise<void> {
    await Promise.allSettled([
      this.worker ? withDeadline(this.worker.close(), deadlineMs, "redis") : undefined,
      this.queueInstance ? withDeadline(this.queueInstance.close(), deadlineMs, "redis") : undefined,
    ]);
  }
}
