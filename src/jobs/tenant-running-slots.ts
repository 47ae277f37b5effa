import { defineScripts } from "./lua.js";
import type { RedisClient } from "./redis-connection.js";
import type { RedisKeys } from "./redis-keys.js";
import { every } from "../every.js";

/** Waits between tries for a slot: short at first (a slot frees when any of the tenant's tasks ends), then up to this. */
const MAX_WAIT_MS = 500;

/** How long a worker trusts its reading of whether a limit is set. */
const LIMIT_READ_INTERVAL_MS = 2_000;

/** A slot that is held: renewed while the task runs, and given back when it ends. */
export interface RunningSlot {
  release(): Promise<void>;
}

/**
 * TENANT_MAX_RUNNING_TASKS across every pool, worker and node: a worker that took a job takes one of its tenant's
 * running slots before it claims the task, and waits (holding the job, its lock renewed by BullMQ, the task still
 * `queued`) while the tenant is at its limit. The slots live in Redis with a lease, renewed while the task runs,
 * so a worker that dies holding one frees it when the lease lapses (the same time BullMQ takes its job back).
 *
 * Why in the worker and not in BullMQ: BullMQ (without its Pro groups) bounds a queue, and a tenant has a queue per
 * pool. Giving a job back to its queue (a rate-limit error or a delay) would count a started attempt that never ran.
 */
export class TenantRunningSlots {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    /** Lease of a slot; renewed at a third of it. Use the job lock's duration. */
    private readonly ttlMs: number,
  ) {
    defineScripts(redis);
  }

  /** Sets (or, with undefined, lifts) the limit every worker applies. Each node sets it at start: keep it the same on all. */
  async setLimit(limit: number | undefined): Promise<void> {
    if (limit === undefined) await this.redis.del(this.keys.maxRunningTasks);
    else await this.redis.set(this.keys.maxRunningTasks, String(limit));
  }

  private limit: { set: boolean; readAt: number } = { set: false, readAt: -Infinity };

  /**
   * Whether a limit is set, read at most every few seconds: without one (the default) a task costs no slot and no
   * round trip. A limit set meanwhile applies from the next reading.
   */
  async limited(): Promise<boolean> {
    if (Date.now() - this.limit.readAt > LIMIT_READ_INTERVAL_MS) {
      this.limit = { set: (await this.redis.exists(this.keys.maxRunningTasks)) === 1, readAt: Date.now() };
    }
    return this.limit.set;
  }

  /** Waits for a slot of the tenant's; rejects with `signal`'s reason if it aborts first. */
  async acquire(tenantId: string, taskId: string, signal?: AbortSignal): Promise<RunningSlot> {
    const running = this.keys.runningTasks(tenantId);
    const take = async (): Promise<boolean> =>
      (await this.redis.tenantRunningTake(running, this.keys.maxRunningTasks, taskId, this.ttlMs)) === 1;
    for (let attempt = 0; !(await take()); attempt++) {
      signal?.throwIfAborted();
      await abortableDelay(Math.min(MAX_WAIT_MS, 20 * 2 ** attempt), signal);
    }
    // Renewal failures are left to the lease: a Redis that is away cannot be told anything, and the slot lapses.
    const renewal = every(Math.max(100, Math.floor(this.ttlMs / 3)), take, { name: "running slot renewal", onError: () => undefined });
    return {
      release: async () => {
        renewal.stop();
        await this.redis.zrem(running, taskId).catch(() => undefined);
      },
    };
  }
}

function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
