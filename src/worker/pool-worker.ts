import { EventEmitter } from "node:events";
import { DelayedError, UnrecoverableError, Worker, type Job } from "bullmq";
import type { RedisClient } from "../jobs/redis-connection.js";
import type { FailureReporter } from "../dependencies/status.js";
import { RedisKeys } from "../jobs/redis-keys.js";
import { TenantRunningSlots, type RunningSlot } from "../jobs/tenant-running-slots.js";
import type { Logger } from "../observability/logger.js";
import { toStorableText } from "../protocol/json-safety.js";
import {
  formatLease,
  MAX_TASK_ERROR_MESSAGE,
  MAX_TASK_ERROR_STACK,
  type TaskError,
  type TaskJobData,
  type TaskReport,
  type TaskReportReply,
} from "../protocol/tasks.js";
import { NonRetryableError, type TaskHandler } from "./handlers.js";
import { RemoteTaskError, WorkerLostError, type Executor, type Executors } from "./remote-workers.js";
import { progressThrottle, type ProgressThrottle } from "./progress-throttle.js";
import { sendableResult } from "./sendable-result.js";

/** The queue a report is about: the server applies it only to that tenant's pool. */
export interface ReportScope {
  tenantId: string;
  poolId: string;
}

/** How a pool worker tells the server what happens to a task: in process (embedded) or over Socket.IO. */
export interface TaskReporter {
  /** Throws ReportNotDelivered when the report may not have been stored (sending it again is safe). */
  report(scope: ReportScope, report: TaskReport): Promise<TaskReportReply>;
}

/** The server could not be reached or could not store the report (e.g. PostgreSQL is down): try again. */
export class ReportNotDelivered extends Error {}

/** Backoff between deliveries of one report: quick at first, then every few seconds, for as long as it takes. */
export function reportRetryDelay(attempt: number): number {
  return Math.min(5000, 100 * 2 ** Math.min(attempt, 6));
}

/** How often BullMQ looks for stalled jobs: twice per lock duration, at most once a second. */
export function stalledIntervalFor(lockDurationMs: number): number {
  return Math.max(1000, Math.floor(lockDurationMs / 2));
}

export interface PoolWorkerOptions {
  connection: RedisClient;
  keys: RedisKeys;
  tenantId: string;
  poolId: string;
  workerId: string;
  handlers: Record<string, TaskHandler>;
  reporter: TaskReporter;
  logger: Logger;
  /** BullMQ reports every failed retry of its connections: an outage is logged once there. */
  failures: FailureReporter;
  concurrency: number;
  backoffMs: number;
  lockDurationMs: number;
  /** Minimum time between two progress reports of one task. */
  progressIntervalMs?: number;
  /** The largest message the server takes (its MAX_PAYLOAD_BYTES, told in `worker.welcome`): bounds a result. */
  maxPayloadBytes: () => number;
  /**
   * Hub mode: the workers that run this pool's tasks over their sockets. Each job is claimed in the name of the
   * worker that takes it, and run there instead of by `handlers`.
   */
  executors?: Executors;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** `runCancelReason`: what a hub-mode worker is told when its run is stopped (see RemoteWorkers). */
class TaskTimeoutError extends Error {
  readonly runCancelReason = "timeout";
  constructor(ms: number) {
    super(`timed out after ${ms} ms`);
  }
}
class TaskCancelledError extends Error {
  readonly runCancelReason = "cancelled";
  constructor() {
    super("cancelled");
  }
}
/** The handler's result cannot be sent (see sendableResult): the attempt fails, and another would do the same. */
class InvalidResultError extends Error {}

function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

/**
 * Runs one pool's BullMQ queue: takes jobs, reports every step of every task to the server, enforces
 * timeouts, and aborts handlers on cancellation. Emits `status` ("idle" | "busy") as its load changes.
 */
export class PoolWorker extends EventEmitter {
  private readonly worker: Worker<TaskJobData>;
  private active = 0;
  private readonly slots: TenantRunningSlots;
  /** Aborted by close(): jobs still waiting for a running slot go back to their queue. */
  private readonly closing = new AbortController();

  constructor(private readonly options: PoolWorkerOptions) {
    super();
    this.slots = new TenantRunningSlots(options.connection, options.keys, options.lockDurationMs);
    this.worker = new Worker<TaskJobData>(
      RedisKeys.queueName(options.tenantId, options.poolId),
      (job, token, signal) => this.process(job, token, signal),
      {
        connection: options.connection,
        prefix: options.keys.bull,
        concurrency: options.concurrency,
        lockDuration: options.lockDurationMs,
        stalledInterval: stalledIntervalFor(options.lockDurationMs),
        maxStalledCount: 2,
      },
    );
    this.worker.on("error", (error) => options.failures.report(error, "pool worker error", { pool: options.poolId }, "bullmq"));
    // A job BullMQ fails on its own (stalled past maxStalledCount) has no live lease to report with: the
    // reconciler sees the job failed while the task is open, and settles the task.
  }

  get busy(): boolean {
    return this.active > 0;
  }

  /** Hub mode: how many jobs this worker may hold at once follows the credit its remote workers granted. */
  setConcurrency(concurrency: number): void {
    this.worker.concurrency = Math.max(1, concurrency);
  }

  /** Aborts the handler of a task if this worker runs it. */
  cancel(taskId: string): boolean {
    return this.worker.cancelJob(taskId, "cancelled");
  }

  /** Stops taking jobs and waits for the running ones to finish. */
  async close(force = false): Promise<void> {
    this.closing.abort();
    await this.worker.close(force);
  }

  private setActive(delta: number): void {
    const wasBusy = this.active > 0;
    this.active += delta;
    if (wasBusy !== this.active > 0) this.emit("status", this.active > 0 ? "busy" : "idle");
  }

  /**
   * Delivers a report for as long as it takes (the job's lock is renewed meanwhile), so a database or network
   * outage delays a task's outcome but never loses it. Only a refusal by the server is final.
   */
  private async deliver(report: TaskReport): Promise<TaskReportReply> {
    const scope = { tenantId: this.options.tenantId, poolId: this.options.poolId };
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.options.reporter.report(scope, report);
      } catch (error) {
        if (!(error instanceof ReportNotDelivered)) throw error;
        // An outage of this process's own dependency is logged once by its state; anything else now and then.
        if ((attempt === 0 || attempt % 10 === 0) && !this.options.failures.failed(error.cause)) {
          this.options.logger.warn(
            { err: error.message, taskId: report.taskId, kind: report.kind, attempt },
            "report not delivered yet; retrying",
          );
        }
        await new Promise((resolve) => setTimeout(resolve, reportRetryDelay(attempt)));
      }
    }
  }

  private async process(job: Job<TaskJobData>, token: string | undefined, bullSignal: AbortSignal | undefined): Promise<unknown> {
    const { taskId, type, payload, timeoutMs, maxAttempts } = job.data;
    // attemptsStarted also counts runs cut short by a dead worker (BullMQ's stalled-job recovery); attemptsMade
    // counts only failed runs, and is what BullMQ compares with the allowed attempts. A job re-added after Redis
    // lost the first one carries the runs the task had already started.
    const attempt = (job.data.attemptOffset ?? 0) + Math.max(job.attemptsStarted, job.attemptsMade + 1);
    const retriesLeft = job.attemptsMade + 1 < (job.opts.attempts ?? maxAttempts);
    // This attempt's lease: BullMQ's lock token proves to the server that this worker took the job.
    const lease = formatLease(token ?? "", job.attemptsStarted);
    const report = (r: DistributiveOmit<TaskReport, "lease">) => this.deliver({ ...r, lease });
    this.setActive(1);
    let slot: RunningSlot | undefined;
    let executor: Executor | null | undefined;
    try {
      slot = await this.runningSlot(job, token, bullSignal);
      // Hub mode: the worker that will run it, before it is claimed (the claim names it).
      executor = this.options.executors ? await this.options.executors.take(bullSignal ?? this.closing.signal) : undefined;
      if (executor === null) throw await this.handBack(job, token);
      // One report claims the attempt: assigned and started at once (one statement on the server).
      const started = await report({ taskId, kind: "started", attempt, workerId: executor?.workerId ?? this.options.workerId });
      // Cancelled, finished by a worker that died before BullMQ heard of it, or re-queued: nothing to run.
      if (!started.accepted) return { skipped: started.status };

      const remote = executor;
      const handler: TaskHandler | undefined = remote
        ? (input, context) => remote.run({ taskId, type, payload: input, attempt, timeoutMs }, context)
        : this.options.handlers[type];
      if (!handler) {
        await report({
          taskId,
          kind: "failed",
          attempt,
          error: { code: "UNKNOWN_TYPE", message: `no handler for "${type}"`, retryable: false },
        });
        throw new UnrecoverableError(`no handler for ${type}`);
      }
      const controller = new AbortController();
      const timer = timeoutMs ? setTimeout(() => controller.abort(new TaskTimeoutError(timeoutMs)), timeoutMs) : undefined;
      const onCancel = (): void => controller.abort(new TaskCancelledError());
      bullSignal?.addEventListener("abort", onCancel, { once: true });
      // Progress is best effort: one delivery, no retries (the next value supersedes it anyway).
      const progress = this.progressReporter(taskId, (r) =>
        this.options.reporter.report({ tenantId: this.options.tenantId, poolId: this.options.poolId }, { ...r, lease }),
      );
      try {
        const context = { taskId, attempt, signal: controller.signal, progress: progress.push };
        const result = await Promise.race([handler(payload, context), rejectOnAbort(controller.signal)]);
        await progress.flush();
        const sendable = sendableResult(result, this.options.maxPayloadBytes());
        if (!sendable.ok) throw new InvalidResultError(`the handler's result ${sendable.problem}`);
        await report({ taskId, kind: "completed", result: sendable.value });
        return sendable.value;
      } catch (error) {
        await progress.flush();
        // The hub-mode worker went away mid-run: not a failed attempt; the job goes back for another worker.
        if (error instanceof WorkerLostError) throw await this.handBack(job, token);
        throw await this.reportFailure(error, { taskId, attempt, retriesLeft, report });
      } finally {
        clearTimeout(timer);
        bullSignal?.removeEventListener("abort", onCancel);
      }
    } finally {
      executor?.release();
      await slot?.release();
      this.setActive(-1);
    }
  }

  /**
   * One of the tenant's running slots when TENANT_MAX_RUNNING_TASKS is set (see TenantRunningSlots), waited for
   * before the task is claimed, so the task stays `queued` meanwhile. A cancellation ends the wait (the task is
   * cancelled already); so does closing the worker, and the job goes back to its queue for another worker.
   */
  private async runningSlot(
    job: Job<TaskJobData>,
    token: string | undefined,
    bullSignal: AbortSignal | undefined,
  ): Promise<RunningSlot | undefined> {
    if (!(await this.slots.limited())) return undefined;
    const signal = bullSignal ? AbortSignal.any([bullSignal, this.closing.signal]) : this.closing.signal;
    try {
      return await this.slots.acquire(this.options.tenantId, job.data.taskId, signal);
    } catch (error) {
      if (!this.closing.signal.aborted || !token) throw new UnrecoverableError("cancelled while waiting for a running slot");
      await job.moveToDelayed(Date.now(), token);
      throw new DelayedError();
    }
  }

  /** Puts the job back in its queue at once (no attempt failed); returns what to throw to BullMQ. */
  private async handBack(job: Job<TaskJobData>, token: string | undefined): Promise<Error> {
    if (!token) return new Error("no worker could take the task");
    await job.moveToDelayed(Date.now(), token);
    return new DelayedError();
  }

  /** Reports a failed attempt and returns what to throw to BullMQ: the error to retry, or an unrecoverable one. */
  private async reportFailure(
    error: unknown,
    ctx: {
      taskId: string;
      attempt: number;
      retriesLeft: boolean;
      report: (r: DistributiveOmit<TaskReport, "lease">) => Promise<TaskReportReply>;
    },
  ): Promise<Error> {
    const { taskId, attempt, retriesLeft, report } = ctx;
    if (error instanceof TaskCancelledError) {
      await report({ taskId, kind: "cancelled" });
      return new UnrecoverableError("cancelled");
    }
    // A handler's message may hold anything (a NUL, half of a surrogate pair, a whole stack): the report must be
    // storable, or the server would refuse it for good and the task would wait for the reconciler.
    const message = toStorableText(error instanceof Error ? error.message : String(error), MAX_TASK_ERROR_MESSAGE);
    const taskError: TaskError =
      error instanceof TaskTimeoutError
        ? { code: "TIMEOUT", message, retryable: true }
        : error instanceof InvalidResultError
          ? { code: "RESULT_INVALID", message, retryable: false }
          : {
              // A hub-mode worker may name its own code (UNKNOWN_TYPE, say).
              code: error instanceof RemoteTaskError && error.code ? toStorableText(error.code, 64) : "HANDLER_ERROR",
              message,
              retryable:
                error instanceof RemoteTaskError
                  ? error.retryable
                  : !(error instanceof NonRetryableError || error instanceof UnrecoverableError),
              // What the operator reads in the task's detail to find the failing line.
              ...(error instanceof Error && typeof error.stack === "string"
                ? { stack: toStorableText(error.stack, MAX_TASK_ERROR_STACK) }
                : {}),
            };
    if (taskError.retryable && retriesLeft) {
      const nextAttemptInMs = this.options.backoffMs * 2 ** (attempt - 1);
      await report({ taskId, kind: "retrying", attempt, error: taskError, nextAttemptInMs });
      return error instanceof Error ? error : new Error(taskError.message);
    }
    await report({ taskId, kind: "failed", attempt, error: taskError });
    return new UnrecoverableError(taskError.message);
  }

  /**
   * Throttles progress reports: at most one per interval, and the latest value is never lost. A value the server did
   * not take (over the socket's event rate, or not delivered) is sent again after the interval unless a newer one
   * replaced it; the final flush sends once.
   */
  private progressReporter(
    taskId: string,
    report: (r: DistributiveOmit<TaskReport, "lease">) => Promise<TaskReportReply>,
  ): ProgressThrottle {
    return progressThrottle(this.options.progressIntervalMs ?? 250, (value) =>
      report({ taskId, kind: "progress", ...value }).then(
        () => "sent" as const,
        // A report the connection lost is worth sending again; one the node refused is not.
        (error: unknown) => (error instanceof ReportNotDelivered ? "retry" : "sent"),
      ),
    );
  }
}
