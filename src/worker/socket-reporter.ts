import type { Socket } from "socket.io-client";
import type { PoolsClientEvents, PoolsServerEvents } from "../protocol/events.js";
import type { TaskReport, TaskReportReply } from "../protocol/tasks.js";
import type { Ack } from "../protocol/events.js";
import { ReportNotDelivered, type ReportScope, type TaskReporter } from "./pool-worker.js";

/** A pool worker's connection to /pools, typed with the protocol's maps (socket.io-client: listen, then emit). */
export type WorkerSocket = Socket<PoolsServerEvents, PoolsClientEvents>;

/** Error codes with which the server says "not now" rather than "no": the report (or registration) is sent again. */
export const RETRYABLE_CODES = new Set(["UNAVAILABLE", "INTERNAL", "RATE_LIMITED"]);

/**
 * Reports tasks to the server over the worker's Socket.IO connection, one delivery per call. A delivery that
 * times out, finds no connection, or meets a server that cannot store it now throws ReportNotDelivered, and
 * PoolWorker sends it again (the server applies each report at most once: state machine and lease), so a
 * reconnection to another node or a database outage loses nothing. A refusal by the server is final.
 */
export class SocketTaskReporter implements TaskReporter {
  constructor(
    private readonly socket: WorkerSocket,
    private readonly options: { ackTimeoutMs: number },
  ) {}

  async report(_scope: ReportScope, report: TaskReport): Promise<TaskReportReply> {
    if (!this.socket.connected) {
      const connected = await new Promise<boolean>((resolve) => {
        const onConnect = (): void => {
          clearTimeout(timer);
          resolve(true);
        };
        const timer = setTimeout(() => {
          this.socket.off("connect", onConnect);
          resolve(false);
        }, this.options.ackTimeoutMs);
        this.socket.once("connect", onConnect);
      });
      if (!connected) throw new ReportNotDelivered("not connected to a Switchyard node");
    }
    let result: Ack<TaskReportReply>;
    try {
      // timeout() loses the acknowledgement's type in socket.io-client's declarations: it is restated here.
      result = (await this.socket.timeout(this.options.ackTimeoutMs).emitWithAck("task.report", report)) as Ack<TaskReportReply>;
    } catch (error) {
      throw new ReportNotDelivered(`no acknowledgement: ${(error as Error).message}`);
    }
    if (result.ok) return { accepted: result.accepted, status: result.status };
    if (RETRYABLE_CODES.has(result.error.code)) throw new ReportNotDelivered(`${result.error.code}: ${result.error.message}`);
    throw new ReportRefusedError(result.error.code, result.error.message);
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
