import { EventEmitter } from "node:events";
import type { Logger } from "../observability/logger.js";
import type { Ack } from "../protocol/events.js";
import { toStorableText } from "../protocol/json-safety.js";
import { MAX_TASK_ERROR_MESSAGE, MAX_TASK_ERROR_STACK, type TaskRun, type TaskRunOutcome, type TaskRunReply } from "../protocol/tasks.js";
import { NonRetryableError, type TaskHandler } from "./handlers.js";
import { progressThrottle, type ProgressThrottle } from "./progress-throttle.js";
import { sendableResult } from "./sendable-result.js";
import type { WorkerSocket } from "./socket-reporter.js";

export interface HubJobRunnerOptions {
  handlers: Record<string, TaskHandler>;
  /** Runs at once, at most: the credit granted to the node. */
  concurrency: number;
  /** The node's MAX_PAYLOAD_BYTES (from `worker.welcome`): a result that cannot fit is an error, not a cut connection. */
  maxPayloadBytes: () => number;
  logger: Logger;
  /** Minimum time between two progress messages of one run. */
  progressIntervalMs?: number;
  /** How long `task.done` waits for its ack before it is sent again. */
  ackTimeoutMs?: number;
}

/** How often an unacknowledged `task.done` or credit is sent again while the connection lasts. */
const RESEND_MS = 1_000;

/**
 * A standalone worker in hub mode: it runs the jobs the node sends it (`task.run`) and answers each with
 * `task.done`; it grants the node credit for as many runs as it can hold (`worker.credit`), one more after each
 * run. It needs no Redis: the node takes the jobs from BullMQ for it, holds their locks, claims and reports.
 *
 * Runs belong to a connection: when it drops, the node gives them up (they go back to the queue, or this node is
 * gone), so they are aborted here and their outcomes are not sent; the next connection starts with full credit.
 */
export class HubJobRunner extends EventEmitter {
  private readonly running = new Map<string, AbortController>();
  private granted = 0;

  constructor(
    private readonly socket: WorkerSocket,
    private readonly options: HubJobRunnerOptions,
  ) {
    super();
    socket.on("task.run", (run) => void this.execute(run));
    socket.on("task.cancel", ({ taskId, reason }) => this.running.get(taskId)?.abort(new Error(reason)));
    socket.on("disconnect", () => {
      for (const controller of this.running.values()) controller.abort(new Error("lost"));
      this.running.clear();
      this.granted = 0;
      this.emitStatus();
    });
  }

  get busy(): boolean {
    return this.running.size > 0;
  }

  /** Registered (`worker.welcome`): offers the node every free place. */
  welcomed(): void {
    this.grant(this.options.concurrency - this.running.size - this.granted);
  }

  /** Stops asking for runs (draining): no more credit; the runs under way finish. */
  drain(): Promise<void> {
    this.options.concurrency = 0;
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.running.size > 0) return;
        this.off("status", check);
        resolve();
      };
      this.on("status", check);
      check();
    });
  }

  private grant(credit: number): void {
    if (credit <= 0 || !this.socket.connected) return;
    this.granted += credit;
    const connection = this.socket.id;
    // Refused for now (RATE_LIMITED, or the node cannot register the worker yet) or not acknowledged: offered again
    // shortly, on the same connection only (a new one starts from the welcome's full grant).
    const again = (): void => {
      if (this.socket.id !== connection) return;
      this.granted -= credit;
      setTimeout(() => this.grant(credit), RESEND_MS).unref();
    };
    this.socket
      .timeout(this.options.ackTimeoutMs ?? 5000)
      .emitWithAck("worker.credit", { credit })
      // timeout() loses the acknowledgement's type in socket.io-client's declarations: it is restated here.
      .then((ack: Ack<{ credit: number }>) => {
        if (!ack.ok) again();
      }, again);
  }

  private async execute(run: TaskRun): Promise<void> {
    if (this.running.has(run.taskId)) return;
    const connection = this.socket.id;
    this.granted = Math.max(0, this.granted - 1);
    const controller = new AbortController();
    this.running.set(run.taskId, controller);
    this.emitStatus();
    const progress = this.progress(run.taskId, controller.signal);
    let outcome: TaskRunOutcome;
    try {
      const handler = this.options.handlers[run.type];
      if (!handler) throw Object.assign(new NonRetryableError(`no handler for "${run.type}"`), { code: "UNKNOWN_TYPE" });
      const result = await Promise.race([
        handler(run.payload, { taskId: run.taskId, attempt: run.attempt, signal: controller.signal, progress: progress.push }),
        new Promise<never>((_, reject) =>
          controller.signal.addEventListener("abort", () => reject(controller.signal.reason), { once: true }),
        ),
      ]);
      // A result that cannot be sent fails the run here (RESULT_INVALID) rather than cut the connection.
      const sendable = sendableResult(result, this.options.maxPayloadBytes());
      outcome = sendable.ok
        ? { taskId: run.taskId, result: sendable.value }
        : { taskId: run.taskId, error: { code: "RESULT_INVALID", message: `the handler's result ${sendable.problem}`, retryable: false } };
    } catch (error) {
      outcome = { taskId: run.taskId, error: describe(error) };
    }
    await progress.flush();
    const stopped = controller.signal.aborted;
    this.running.delete(run.taskId);
    // Cancelled, timed out or given up by the node: it reported the run already, or no longer holds it.
    if (!stopped) await this.deliver(outcome, connection);
    this.emitStatus();
    if (this.socket.id === connection) this.grant(Math.min(1, this.options.concurrency - this.running.size - this.granted));
  }

  /** Sends an outcome until the node acknowledges it, for as long as the connection that received the run lasts. */
  private async deliver(outcome: TaskRunOutcome, connection: string | undefined): Promise<void> {
    while (this.socket.connected && this.socket.id === connection) {
      try {
        const ack = (await this.socket.timeout(this.options.ackTimeoutMs ?? 5000).emitWithAck("task.done", outcome)) as Ack<TaskRunReply>;
        if (ack.ok || !["UNAVAILABLE", "INTERNAL", "RATE_LIMITED"].includes(ack.error.code)) {
          if (!ack.ok) this.options.logger.warn({ taskId: outcome.taskId, error: ack.error }, "the node refused a run's outcome");
          return;
        }
      } catch {
        // No ack in time: sent again below while the connection lasts.
      }
      await new Promise((resolve) => setTimeout(resolve, RESEND_MS));
    }
  }

  /** Progress of one run, throttled; while the run's connection is gone there is no one to tell. */
  private progress(taskId: string, signal: AbortSignal): ProgressThrottle {
    return progressThrottle(this.options.progressIntervalMs ?? 250, async (value) => {
      if (signal.aborted || !this.socket.connected) return "sent";
      // Not awaited: a run's outcome never waits on a progress acknowledgement (as before the throttle was shared).
      void this.socket
        .timeout(this.options.ackTimeoutMs ?? 5000)
        .emitWithAck("task.progress", { taskId, ...value })
        .catch(() => undefined);
      return "sent";
    });
  }

  private emitStatus(): void {
    this.emit("status", this.running.size > 0 ? "busy" : "idle");
  }
}

/** A handler's error as the node stores it: texts cleaned and cut to what the node accepts. */
function describe(error: unknown): { message: string; code?: string; retryable: boolean; stack?: string } {
  const message = toStorableText(error instanceof Error ? error.message : String(error), MAX_TASK_ERROR_MESSAGE);
  const code = (error as { code?: unknown } | null)?.code;
  return {
    message,
    ...(typeof code === "string" ? { code: toStorableText(code, 64) } : {}),
    retryable: !(error instanceof NonRetryableError),
    ...(error instanceof Error && typeof error.stack === "string" ? { stack: toStorableText(error.stack, MAX_TASK_ERROR_STACK) } : {}),
  };
}
