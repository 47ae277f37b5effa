import { Queue, type JobsOptions } from "bullmq";
import { defineScripts } from "./lua.js";
import type { RedisClient } from "./redis-connection.js";
import { withDeadline } from "../dependencies/deadline.js";
import { DependencyUnavailableError, unavailableDependency } from "../errors.js";
import type { TaskJobData } from "../protocol/tasks.js";
import { RedisKeys } from "./redis-keys.js";

/** The BullMQ states of a job that waits for a worker: ready (wait), ready by priority, or waiting out a retry's backoff. */
const WAITING_STATES = ["wait", "prioritized", "delayed"] as const;

/** Pools counted per call of lua/sum-waiting.lua (which takes their WAITING_STATES keys, in that order). */
const POOLS_PER_COUNT_SCRIPT = 250;

/** What BullMQ holds for a task's job, as the reconciler needs it. */
export type JobState =
  | { kind: "missing" }
  /** Waiting, delayed, prioritized or active: BullMQ still owns it. */
  | { kind: "pending" }
  | { kind: "completed"; result: unknown }
  | { kind: "failed"; reason: string };

export interface EnqueueOptions {
  maxAttempts: number;
  /** 0 (least urgent) … 100 (most urgent). */
  priority: number;
  backoffMs: number;
}

/** The BullMQ options of a task's job. The job id is the task id, which makes enqueueing idempotent. */
function jobOptions(data: TaskJobData, options: EnqueueOptions): JobsOptions {
  return {
    jobId: data.taskId,
    attempts: options.maxAttempts,
    backoff: { type: "exponential", delay: options.backoffMs },
    // BullMQ runs lower numbers first; ours reads the other way round, so that "more" means "sooner".
    priority: 101 - options.priority,
    removeOnComplete: { age: 3600, count: 10_000 },
    removeOnFail: { age: 24 * 3600, count: 10_000 },
  };
}

interface PendingJob {
  name: string;
  data: TaskJobData;
  opts: JobsOptions;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Producer side of the task queues. The job id is the task id, which makes enqueueing idempotent.
 *
 * `connection` is the node's command connection (no offline queue, a command timeout). BullMQ itself waits for its
 * connection to become ready for as long as that takes, so its calls are refused at once while the connection is
 * down and bounded by `deadlineMs` otherwise.
 */
export class TaskQueues {
  private readonly queues = new Map<string, Queue<TaskJobData>>();

  constructor(
    private readonly connection: RedisClient,
    private readonly keys: RedisKeys,
    private readonly deadlineMs: number,
  ) {
    defineScripts(connection);
  }

  private async bullmq<T>(work: (queue: Queue<TaskJobData>) => Promise<T>, tenantId: string, poolId: string): Promise<T> {
    if (this.connection.status !== "ready") throw new DependencyUnavailableError("redis");
    const queue = this.queue(tenantId, poolId);
    try {
      return await withDeadline(work(queue), this.deadlineMs, "redis");
    } catch (error) {
      // A queue keeps the failure of its start-up (BullMQ asks Redis its version once, and answers every later call
      // with that error): a queue that failed while Redis was away is replaced by a fresh one on the next call.
      if (unavailableDependency(error)) this.forget(queue);
      throw error;
    }
  }

  private forget(queue: Queue<TaskJobData>): void {
    if (this.queues.get(queue.name) !== queue) return;
    this.queues.delete(queue.name);
    void queue.close().catch(() => undefined);
  }

  private queue(tenantId: string, poolId: string): Queue<TaskJobData> {
    const name = RedisKeys.queueName(tenantId, poolId);
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new Queue<TaskJobData>(name, { connection: this.connection, prefix: this.keys.bull });
      queue.on("error", () => undefined); // connection errors surface on the shared connection's own listener
      this.queues.set(name, queue);
    }
    return queue;
  }

  /** True when `token` holds the lock of the task's job: the worker presenting it really took the job. */
  async holdsLock(tenantId: string, poolId: string, taskId: string, token: string): Promise<boolean> {
    return (await this.connection.get(`${this.keys.job(tenantId, poolId, taskId)}:lock`)) === token;
  }

  /** The state of many tasks' jobs in one round trip. */
  async jobStates(jobs: ReadonlyArray<{ tenantId: string; poolId: string; id: string }>): Promise<JobState[]> {
    if (jobs.length === 0) return [];
    const pipeline = this.connection.pipeline();
    for (const job of jobs) {
      const jobKey = this.keys.job(job.tenantId, job.poolId, job.id);
      pipeline.exists(jobKey);
      pipeline.zscore(this.keys.queueKey(job.tenantId, job.poolId, "completed"), job.id);
      pipeline.zscore(this.keys.queueKey(job.tenantId, job.poolId, "failed"), job.id);
      pipeline.hmget(jobKey, "returnvalue", "failedReason");
    }
    const replies = (await pipeline.exec()) ?? [];
    return jobs.map((_, i) => {
      const [exists, completed, failed, fields] = replies.slice(i * 4, i * 4 + 4).map(([error, value]) => {
        if (error) throw error;
        return value;
      });
      const [returnvalue = null, failedReason = null] = (fields ?? []) as Array<string | null>;
      if (exists !== 1) return { kind: "missing" };
      if (completed !== null) return { kind: "completed", result: returnvalue === null ? null : (JSON.parse(returnvalue) as unknown) };
      if (failed !== null) return { kind: "failed", reason: failedReason ?? "failed" };
      return { kind: "pending" };
    });
  }

  /** Jobs waiting for this tick's bulk add, per queue (see `enqueue`). */
  private readonly adding = new Map<string, { tenantId: string; poolId: string; jobs: PendingJob[] }>();

  /**
   * Adds the task's job. Jobs enqueued in the same tick for one queue (the tasks of one group-committed statement
   * return together) are added with one `addBulk`, one round trip, instead of one each; all of them succeed or
   * fail together, and a caller whose add failed retries its own job alone.
   */
  enqueue(data: TaskJobData, options: EnqueueOptions): Promise<void> {
    const name = RedisKeys.queueName(data.tenantId, data.poolId);
    return new Promise((resolve, reject) => {
      let pending = this.adding.get(name);
      if (!pending) {
        this.adding.set(name, (pending = { tenantId: data.tenantId, poolId: data.poolId, jobs: [] }));
        process.nextTick(() => void this.addPending(name));
      }
      pending.jobs.push({ name: data.type, data, opts: jobOptions(data, options), resolve, reject });
    });
  }

  private async addPending(name: string): Promise<void> {
    const pending = this.adding.get(name);
    this.adding.delete(name);
    if (!pending) return;
    const { jobs } = pending;
    try {
      await this.bullmq(
        async (queue): Promise<void> => {
          if (jobs.length === 1) await queue.add(jobs[0]!.name, jobs[0]!.data, jobs[0]!.opts);
          else await queue.addBulk(jobs.map(({ name: type, data, opts }) => ({ name: type, data, opts })));
        },
        pending.tenantId,
        pending.poolId,
      );
      for (const job of jobs) job.resolve();
    } catch (error) {
      for (const job of jobs) job.reject(error);
    }
  }

  /** Removes a job that no worker holds yet; false when it is running (its worker is told to abort instead). */
  async remove(tenantId: string, poolId: string, taskId: string): Promise<boolean> {
    try {
      return (await this.bullmq((queue) => queue.remove(taskId), tenantId, poolId)) === 1;
    } catch {
      return false;
    }
  }

  /**
   * Clears the way for a task's job to be added again (a retried task: the job id is the task id, so a job left in
   * the failed or completed set would make the new add a no-op). "active" when a run still holds the job: it must
   * end first.
   */
  async clearFinished(tenantId: string, poolId: string, taskId: string): Promise<"cleared" | "active"> {
    return this.bullmq(
      async (queue) => {
        const state = await queue.getJobState(taskId);
        if (state === "active") return "active";
        if (state !== "unknown") await queue.remove(taskId);
        return "cleared";
      },
      tenantId,
      poolId,
    );
  }

  /**
   * A pool's queue settings in BullMQ: paused (workers take no new job; running ones finish) and the global
   * concurrency, which BullMQ checks when any worker of any node takes a job, so it bounds the pool as a whole.
   */
  async apply(tenantId: string, poolId: string, settings: { paused?: boolean; maxConcurrency?: number | null }): Promise<void> {
    await this.bullmq(
      async (queue) => {
        if (settings.paused !== undefined) await (settings.paused ? queue.pause() : queue.resume());
        if (settings.maxConcurrency !== undefined) {
          await (settings.maxConcurrency === null ? queue.removeGlobalConcurrency() : queue.setGlobalConcurrency(settings.maxConcurrency));
        }
      },
      tenantId,
      poolId,
    );
  }

  /** Jobs of the pool waiting or running: what autoscaling sizes the pool for. */
  async depth(tenantId: string, poolId: string): Promise<number> {
    return this.bullmq((queue) => queue.getJobCountByTypes(...WAITING_STATES, "active"), tenantId, poolId);
  }

  async waitingCount(tenantId: string, poolId: string): Promise<number> {
    return this.bullmq((queue) => queue.getJobCountByTypes(...WAITING_STATES), tenantId, poolId);
  }

  /**
   * The waiting jobs of many pools, summed. Reads BullMQ's keys directly (`wait` is a list, the others sorted sets,
   * as BullMQ's getCounts script reads them) rather than through a Queue object per pool, which this class would keep
   * for good; and adds them up inside Redis, a batch of pools per script: as separate commands, 10,000 pools took
   * 30,000 replies to parse (about 200 ms per reading on the CI machine), as scripts about 60 ms, of which about
   * 20 ms is Redis' own time.
   */
  async waitingTotal(pools: ReadonlyArray<{ tenantId: string; poolId: string }>): Promise<number> {
    let total = 0;
    for (let start = 0; start < pools.length; start += POOLS_PER_COUNT_SCRIPT) {
      const keys = pools
        .slice(start, start + POOLS_PER_COUNT_SCRIPT)
        .flatMap(({ tenantId, poolId }) => WAITING_STATES.map((state) => this.keys.queueKey(tenantId, poolId, state)));
      total += await this.connection.sumWaiting(keys.length, ...keys);
    }
    return total;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.queues.values()].map((q) => withDeadline(q.close(), this.deadlineMs, "redis")));
    this.queues.clear();
  }
}

/**
 * Task types a pool can run: the built-ins, plus those its standalone workers registered.
 * Kept in Redis so every node validates submissions the same way.
 */
export class TaskTypeRegistry {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
  ) {}

  private key(tenantId: string, poolId: string): string {
    return this.keys.taskTypes(tenantId, poolId);
  }

  async register(tenantId: string, poolId: string, types: readonly string[]): Promise<void> {
    if (types.length === 0) return;
    await this.redis.sadd(this.key(tenantId, poolId), ...types);
  }

  async has(tenantId: string, poolId: string, type: string): Promise<boolean> {
    return (await this.redis.sismember(this.key(tenantId, poolId), type)) === 1;
  }
}
