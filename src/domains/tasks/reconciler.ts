import type { RedisClient } from "../../jobs/redis-connection.js";
import type { PrismaClient } from "../../db/client.js";
import type { FailureReporter } from "../../dependencies/status.js";
import { ClusterTimer } from "../../jobs/cluster-timer.js";
import type { JobState, TaskQueues } from "../../jobs/queues.js";
import type { Logger } from "../../observability/logger.js";
import type { Metrics, ReconcileRepair } from "../../observability/metrics.js";
import type { WorkflowService } from "../workflows/service.js";
import type { TaskService } from "./service.js";
import type { TaskRow } from "./view.js";
import type { RedisKeys } from "../../jobs/redis-keys.js";

export interface ReconcilerOptions {
  keys: RedisKeys;
  /** Where a failed pass is reported (an outage is logged once, not once per pass). */
  failures: FailureReporter;
  /** How often one node (whichever takes the lock) runs a pass. */
  intervalMs: number;
  /** A task or workflow must have been unchanged this long before a pass touches it. */
  minAgeMs: number;
}

/** Tasks looked at per pass (the oldest first); the rest wait for the next pass. */
const BATCH_SIZE = 2000;
/** A task whose job was lost this many times fails with TASK_LOST instead of going back on its queue. */
const MAX_REQUEUES = 5;

export type ReconcileAction = ReconcileRepair | "workflow_advanced";

/**
 * Makes PostgreSQL (what clients see) and BullMQ (what runs) agree again after a crash or a data loss. One
 * pass per interval across the cluster (a Redis lock that expires on its own, like retention): for every open
 * task that has not changed for a while it looks at the task's job in Redis and
 *  - job missing (Redis lost it, or the node died between committing the task and adding its job): puts the
 *    task back on its queue from its stored definition (a `queued` task just gets its job), up to
 *    MAX_REQUEUES times, then fails it with TASK_LOST;
 *  - job failed in BullMQ (stalled past its limit, or a failure whose report never got through): fails the task;
 *  - job completed in BullMQ but the task is open (the completion report was lost): completes the task;
 * and advances every running workflow that has not moved for a while (a crash between a step's task
 * finishing and the workflow reacting). Every repair is a conditional transition: if the task moved meanwhile,
 * the repair is refused and nothing happens.
 */
export class TaskReconciler {
  private readonly timer: ClusterTimer;

  constructor(
    private readonly prisma: PrismaClient,
    redis: RedisClient,
    private readonly tasks: TaskService,
    private readonly workflows: WorkflowService,
    private readonly queues: TaskQueues,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    private readonly options: ReconcilerOptions,
  ) {
    this.timer = new ClusterTimer(
      redis,
      options.keys.reconcileLock,
      options.intervalMs,
      async () => void (await this.pass()),
      options.failures,
      "reconcile pass",
    );
  }

  start(): void {
    this.timer.start();
  }

  stop(): void {
    this.timer.stop();
  }

  /** One pass; returns what it did (tests and logs). */
  async pass(): Promise<Record<ReconcileAction, number>> {
    const done: Record<ReconcileAction, number> = {
      requeued: 0,
      job_added: 0,
      settled_failed: 0,
      settled_completed: 0,
      lost: 0,
      workflow_advanced: 0,
    };
    const cutoff = new Date(Date.now() - this.options.minAgeMs).toISOString();
    const open = await this.prisma.$queryRawUnsafe<TaskRow[]>(
      `SELECT * FROM "Task" WHERE "status" = ANY($1::text[]) AND "updatedAt" < ($2::timestamptz AT TIME ZONE 'UTC')
       ORDER BY "updatedAt" LIMIT $3`,
      ["created", "queued", "assigned", "started", "retrying"],
      cutoff,
      BATCH_SIZE,
    );
    const states = await this.queues.jobStates(open);
    for (const [i, task] of open.entries()) {
      const action = await this.repair(task, states[i]!).catch((error: unknown) => {
        this.options.failures.report(error, "could not reconcile task", { taskId: task.id });
        return null;
      });
      if (action) done[action]++;
    }
    const stuck = await this.prisma.$queryRawUnsafe<Array<{ id: string; tenantId: string }>>(
      `SELECT "id", "tenantId" FROM "Workflow" WHERE "status" = 'running' AND "updatedAt" < ($1::timestamptz AT TIME ZONE 'UTC')
       ORDER BY "updatedAt" LIMIT $2`,
      cutoff,
      BATCH_SIZE,
    );
    for (const workflow of stuck) {
      await this.workflows
        .advance(workflow.tenantId, workflow.id)
        .catch((error: unknown) => this.options.failures.report(error, "could not advance workflow", { workflowId: workflow.id }));
      done.workflow_advanced++;
    }
    for (const [action, count] of Object.entries(done) as Array<[ReconcileAction, number]>) {
      if (count === 0 || action === "workflow_advanced") continue;
      this.metrics.reconciled.inc({ action }, count);
      this.logger.warn({ action, count }, "reconciler repaired tasks");
    }
    return done;
  }

  private async repair(task: TaskRow, job: JobState): Promise<ReconcileAction | null> {
    const guard = { updatedAt: task.updatedAt };
    switch (job.kind) {
      case "pending":
        return null;
      case "failed": {
        const lost = /stalled/i.test(job.reason);
        const error = { code: lost ? "WORKER_LOST" : "JOB_FAILED", message: job.reason.slice(0, 1000), retryable: false };
        const { task: failed } = await this.tasks.transition(
          task.tenantId,
          task.id,
          "failed",
          { error, finishedAt: new Date() },
          {},
          guard,
        );
        return failed ? "settled_failed" : null;
      }
      case "completed": {
        const result = job.result as { skipped?: unknown } | null;
        // The worker declined the job (its lease was refused) and BullMQ counts it done: run the task again.
        if (result && typeof result === "object" && "skipped" in result) {
          await this.queues.remove(task.tenantId, task.poolId, task.id);
          return this.requeue(task);
        }
        const { task: completed } = await this.tasks.transition(
          task.tenantId,
          task.id,
          "settled",
          { result: job.result, error: null, finishedAt: new Date() },
          {},
          guard,
        );
        return completed ? "settled_completed" : null;
      }
      case "missing":
        return this.requeue(task);
    }
  }

  private async requeue(task: TaskRow): Promise<ReconcileAction | null> {
    const guard = { updatedAt: task.updatedAt };
    if (task.status === "queued" || task.status === "created") {
      // Committed, but its job never made it (or vanished before a worker took it): add it from the row.
      if (task.status === "created") {
        const { task: queued } = await this.tasks.transition(task.tenantId, task.id, "queued", { queuedAt: new Date() }, {}, guard);
        if (!queued) return null;
        task = queued;
      }
      await this.tasks.jobs.add(task);
      return "job_added";
    }
    if (task.requeues >= MAX_REQUEUES) {
      const error = { code: "TASK_LOST", message: `the task's job was lost ${task.requeues + 1} times`, retryable: false };
      const { task: failed } = await this.tasks.transition(task.tenantId, task.id, "failed", { error, finishedAt: new Date() }, {}, guard);
      return failed ? "lost" : null;
    }
    const { task: requeued } = await this.tasks.transition(
      task.tenantId,
      task.id,
      "requeued",
      { lease: null, requeues: task.requeues + 1, queuedAt: new Date() },
      { requeued: true, reason: "job lost" },
      guard,
    );
    if (!requeued) return null;
    await this.tasks.jobs.add(requeued);
    return "requeued";
  }
}
