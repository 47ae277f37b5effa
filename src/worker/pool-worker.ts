import { EventEmitter } from "node:events";
import { UnrecoverableError, Worker, type Job } from "bullmq";
import type { Redis } from "ioredis";
import { bullPrefix, queueName } from "../jobs/queues.js";
import type { Logger } from "../observability/logger.js";
import type { TaskError, TaskJobData, TaskReport, TaskReportReply } from "../protocol/tasks.js";
import { NonRetryableError, type TaskHandler } from "./handlers.js";

/** How a pool worker tells the server what happens to a task: in process (embedded) or over Socket.IO. */
export interface TaskReporter {
  report(tenantId: string, report: TaskReport): Promise<TaskReportReply>;
}

export interface PoolWorkerOptions {
  connection: Redis;
  redisPrefix: string;
  tenantId: string;
  poolId: string;
  workerId: string;
  handlers: Record<string, TaskHandler>;
  reporter: TaskReporter;
  logger: Logger;
  concurrency: number;
  backoffMs: number;
  lockDurationMs: number;
  stalledIntervalMs: number;
  /** Minimum time between two progress reports of one task. */
  progressIntervalMs?: number;
}

class TaskTimeoutError extends Error {
  constructor(ms: number) {
    super(`timed out after ${ms} ms`);
  }
}
class TaskCancelledError extends Error {
  constructor() {
    super("cancelled");
  }
}

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

  constructor(private readonly options: PoolWorkerOptions) {
    super();
    this.worker = new Worker<TaskJobData>(queueName(options.tenantId, options.poolId), (job, token, signal) => this.process(job, signal), {
      connection: options.connection,
      prefix: bullPrefix(options.redisPrefix),
      concurrency: options.concurrency,
      lockDuration: options.lockDurationMs,
      stalledInterval: options.stalledIntervalMs,
      maxStalledCount: 2,
    });
    this.worker.on("error", (error) => options.logger.warn({ err: error.message, pool: options.poolId }, "pool worker error"));
    // BullMQ can fail a job without its processor having reported it: a job whose workers kept dying (stalled
    // past maxStalledCount), or one whose reports could not be delivered. Tell the server, so the task does not
    // stay open for ever; when the processor did report, the state machine simply refuses this second word.
    this.worker.on("failed", (job, error) => {
      if (!job) return;
      const final = error instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1) || /stalled/i.test(error.message);
      if (!final) return;
      const attempt = Math.max(job.attemptsStarted, job.attemptsMade, 1);
      void options.reporter
        .report(job.data.tenantId, {
          taskId: job.data.taskId,
          kind: "failed",
          attempt,
          error: { code: /stalled/i.test(error.message) ? "WORKER_LOST" : "HANDLER_ERROR", message: error.message.slice(0, 1000), retryable: false },
        })
        .catch((reportError: unknown) =>
          options.logger.warn({ err: (reportError as Error).message, taskId: job.data.taskId }, "could not report a failed job"),
        );
    });
  }

  get busy(): boolean {
    return this.active > 0;
  }

  /** Aborts the handler of a task if this worker runs it. */
  cancel(taskId: string): boolean {
    return this.worker.cancelJob(taskId, "cancelled");
  }

  /** Stops taking jobs and waits for the running ones to finish. */
  async close(force = false): Promise<void> {
    await this.worker.close(force);
  }

  private setActive(delta: number): void {
    const wasBusy = this.active > 0;
    this.active += delta;
    if (wasBusy !== this.active > 0) this.emit("status", this.active > 0 ? "busy" : "idle");
  }

  private async process(job: Job<TaskJobData>, bullSignal: AbortSignal | undefined): Promise<unknown> {
    const { tenantId, taskId, type, payload, timeoutMs, maxAttempts } = job.data;
    // attemptsStarted also counts runs cut short by a dead worker (BullMQ's stalled-job recovery); attemptsMade
    // counts only failed runs, and is what BullMQ compares with the allowed attempts.
    const attempt = Math.max(job.attemptsStarted, job.attemptsMade + 1);
    const retriesLeft = job.attemptsMade + 1 < maxAttempts;
    const report = (r: TaskReport) => this.options.reporter.report(tenantId, r);
    this.setActive(1);
    try {
      const assigned = await report({ taskId, kind: "assigned", attempt, workerId: this.options.workerId });
      // Cancelled, or already finished by a worker that died before BullMQ heard of it: nothing to run.
      if (!assigned.accepted) return { skipped: assigned.status };
      await report({ taskId, kind: "started", attempt });

      const handler = this.options.handlers[type];
      if (!handler) {
        await report({ taskId, kind: "failed", attempt, error: { code: "UNKNOWN_TYPE", message: `no handler for "${type}"`, retryable: false } });
        throw new UnrecoverableError(`no handler for ${type}`);
      }
      const controller = new AbortController();
      const timer = timeoutMs ? setTimeout(() => controller.abort(new TaskTimeoutError(timeoutMs)), timeoutMs) : undefined;
      const onCancel = (): void => controller.abort(new TaskCancelledError());
      bullSignal?.addEventListener("abort", onCancel, { once: true });
      const progress = this.progressReporter(taskId, report);
      try {
        const context = { taskId, attempt, signal: controller.signal, progress: progress.push };
        const result = await Promise.race([handler(payload, context), rejectOnAbort(controller.signal)]);
        await progress.flush();
        await report({ taskId, kind: "completed", result: result ?? null });
        return result;
      } catch (error) {
        await progress.flush();
        throw await this.reportFailure(error, { taskId, attempt, retriesLeft, report });
      } finally {
        clearTimeout(timer);
        bullSignal?.removeEventListener("abort", onCancel);
      }
    } finally {
      this.setActive(-1);
    }
  }

  /** Reports a failed attempt and returns what to throw to BullMQ: the error to retry, or an unrecoverable one. */
  private async reportFailure(
    error: unknown,
    ctx: { taskId: string; attempt: number; retriesLeft: boolean; report: (r: TaskReport) => Promise<TaskReportReply> },
  ): Promise<Error> {
    const { taskId, attempt, retriesLeft, report } = ctx;
    if (error instanceof TaskCancelledError) {
      await report({ taskId, kind: "cancelled" });
      return new UnrecoverableError("cancelled");
    }
    const taskError: TaskError =
      error instanceof TaskTimeoutError
        ? { code: "TIMEOUT", message: error.message, retryable: true }
        : {
            code: "HANDLER_ERROR",
            message: error instanceof Error ? error.message : String(error),
            retryable: !(error instanceof NonRetryableError || error instanceof UnrecoverableError),
          };
    if (taskError.retryable && retriesLeft) {
      const nextAttemptInMs = this.options.backoffMs * 2 ** (attempt - 1);
      await report({ taskId, kind: "retrying", attempt, error: taskError, nextAttemptInMs });
      return error instanceof Error ? error : new Error(taskError.message);
    }
    await report({ taskId, kind: "failed", attempt, error: taskError });
    return new UnrecoverableError(taskError.message);
  }

  /** Throttles progress reports: at most one per interval, and the latest value is never lost. */
  private progressReporter(taskId: string, report: (r: TaskReport) => Promise<TaskReportReply>) {
    const interval = this.options.progressIntervalMs ?? 250;
    let last = 0;
    let pending: { progress: number; detail?: string } | undefined;
    let timer: NodeJS.Timeout | undefined;
    let inFlight: Promise<unknown> = Promise.resolve();
    const send = (): void => {
      timer = undefined;
      if (!pending) return;
      const value = pending;
      pending = undefined;
      last = Date.now();
      inFlight = inFlight.then(() => report({ taskId, kind: "progress", ...value }).catch(() => undefined));
    };
    return {
      push: (percent: number, detail?: string): void => {
        pending = { progress: Math.max(0, Math.min(100, percent)), ...(detail === undefined ? {} : { detail }) };
        const wait = interval - (Date.now() - last);
        if (wait <= 0) send();
        else timer ??= setTimeout(send, wait);
      },
      flush: async (): Promise<void> => {
        clearTimeout(timer);
        send();
        await inFlight;
      },
    };
  }
}
