import type { RedisClient } from "../../jobs/redis-connection.js";
import type { PrismaClient } from "../../db/client.js";
import type { TaskQueues } from "../../jobs/queues.js";
import type { RedisKeys } from "../../jobs/redis-keys.js";
import type { DependencyStatus } from "../../dependencies/status.js";
import type { TaskJobData } from "../../protocol/tasks.js";
import { DEFAULT_POOL_ID } from "../tenants.js";
import type { TaskRow } from "./view.js";

/** Called after a task was put on the queue of (tenant, pool): lets an embedded worker start serving it. */
export type PoolActiveListener = (tenantId: string, poolId: string) => void;

/**
 * The tasks' side of BullMQ: adding a stored task's job (and retrying when Redis refuses), stopping the jobs of
 * cancelled tasks, and telling embedded workers which tenants have work. The task row is the truth; a job is
 * always made from it, so adding one twice is harmless (the job id is the task id).
 */
export class TaskJobs {
  private readonly poolActiveListeners: PoolActiveListener[] = [];
  private readonly registeredDefaultTenants = new Set<string>();

  constructor(
    private readonly prisma: PrismaClient,
    private readonly redis: RedisClient,
    readonly queues: TaskQueues,
    private readonly keys: RedisKeys,
    private readonly status: DependencyStatus,
    private readonly options: { backoffMs: number },
  ) {}

  onPoolActive(listener: PoolActiveListener): void {
    this.poolActiveListeners.push(listener);
  }

  /**
   * False while this node's Redis command connection is down, or known not to answer: new work is refused at once
   * rather than stored.
   */
  get ready(): boolean {
    return this.redis.status === "ready" && this.status.isUp("redis", "commands");
  }

  /**
   * Adds the task's BullMQ job. If Redis refuses, it keeps trying for a while in the background; past that, or
   * if this node dies first, the reconciler adds it.
   */
  async add(task: TaskRow, attempt = 0): Promise<void> {
    try {
      await this.queues.enqueue(jobData(task), {
        maxAttempts: attemptsLeft(task),
        priority: task.priority,
        backoffMs: this.options.backoffMs,
      });
    } catch (error) {
      this.status.report(error, "could not add the task's job yet; retrying", { taskId: task.id, attempt });
      if (attempt < 30) setTimeout(() => void this.retry(task, attempt + 1), Math.min(5000, 200 * 2 ** attempt)).unref();
      return;
    }
    // The job exists now. If the tenant could not be noted, embedded workers of other nodes learn of it at the
    // tenant's next submission (the note is retried then).
    await this.notePoolActive(task.tenantId, task.poolId).catch((error: unknown) =>
      this.status.report(error, "could not register the pool for embedded workers", { taskId: task.id }),
    );
  }

  private async retry(task: TaskRow, attempt: number): Promise<void> {
    const current = await this.prisma.task
      .findUnique({ where: { id: task.id }, select: { status: true } })
      .catch(() => ({ status: "queued" }));
    if (current?.status === "queued") await this.add(task, attempt);
  }

  /**
   * After cancelling: remove queued jobs, and tell whichever process runs the others to abort them. Best effort,
   * and skipped while Redis is down: the cancellation is stored, so a job left behind is refused when a worker
   * claims it, and a running one has its reports refused.
   */
  async stop(tasks: readonly TaskRow[]): Promise<void> {
    if (!this.ready) return;
    await Promise.all(
      tasks.map(async (task) => {
        await Promise.all([
          this.queues.remove(task.tenantId, task.poolId, task.id),
          this.redis.publish(this.keys.taskCancel, JSON.stringify({ taskId: task.id })).catch((error: unknown) => {
            this.status.report(error, "could not broadcast cancellation", { taskId: task.id });
          }),
        ]);
      }),
    );
  }

  /** Default pools are served by every node's embedded worker: record the tenant where they all look. */
  private async notePoolActive(tenantId: string, poolId: string): Promise<void> {
    if (poolId === DEFAULT_POOL_ID && !this.registeredDefaultTenants.has(tenantId)) {
      await this.redis.sadd(this.keys.defaultPoolTenants, tenantId);
      this.registeredDefaultTenants.add(tenantId);
    }
    for (const listener of this.poolActiveListeners) listener(tenantId, poolId);
  }
}

/** Runs a task already failed (finished with an error) before its job was (re-)added. */
function failedRuns(task: TaskRow): number {
  // `attempts` counts runs started; a run still assigned or started when the job was lost did not fail.
  return task.status === "started" ? Math.max(0, task.attempts - 1) : task.attempts;
}

/** BullMQ attempts for a job added now: what the task has left, and at least one (a lost run is not a failure). */
export function attemptsLeft(task: TaskRow): number {
  return Math.max(1, task.maxAttempts - failedRuns(task));
}

export function jobData(task: TaskRow): TaskJobData {
  return {
    tenantId: task.tenantId,
    taskId: task.id,
    poolId: task.poolId,
    type: task.type,
    payload: task.payload,
    timeoutMs: task.timeoutMs,
    maxAttempts: task.maxAttempts,
    ...(task.attempts > 0 ? { attemptOffset: task.attempts } : {}),
  };
}
