import type { Socket } from "socket.io-client";
import type { TaskReport, TaskReportReply } from "../protocol/tasks.js";
import type { TaskReporter } from "./pool-worker.js";

type AckResult = { ok: true } & TaskReportReply | { ok: false; error: { code: string; message: string } };

/**
 * Reports tasks to the server over the worker's Socket.IO connection. A report is retried (the server applies
 * each one idempotently through the task state machine) until acknowledged, so a reconnection to another node
 * loses nothing; a refusal by the server is final.
 */
export class SocketTaskReporter implements TaskReporter {
  constructor(
    private readonly socket: Socket,
    private readonly options: { ackTimeoutMs: number; giveUpAfterMs: number },
  ) {}

  async report(_tenantId: string, report: TaskReport): Promise<TaskReportReply> {
    const deadline = Date.now() + this.options.giveUpAfterMs;
    let lastError: unknown;
    while (Date.now() < deadline) {
      if (!this.socket.connected) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
          this.socket.once("connect", () => {
            clearTimeout(timer);
            resolve();
          });
        });
        continue;
      }
      try {
        const result = (await this.socket.timeout(this.options.ackTimeoutMs).emitWithAck("task.report", report)) as AckResult;
        if (result.ok) return { accepted: result.accepted, status: result.status };
        throw new ReportRefusedError(result.error.code, result.error.message);
      } catch (error) {
        if (error instanceof ReportRefusedError) throw error;
        lastError = error;
      }
    }
    throw new Error(`could not report ${report.kind} for task ${report.taskId}: ${(lastError as Error | undefined)?.message ?? "not connected"}`);
  }
}

export class ReportRefusedError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`server refused the report: ${code} ${message}`);
  }
}
