import type { RedisClient } from "../jobs/redis-connection.js";
import type { Logger } from "../observability/logger.js";
import type { RedisKeys } from "../jobs/redis-keys.js";

/**
 * Listens on the cancellation channel and aborts the named task wherever it runs in this process.
 * One subscription per process, whatever the number of pool workers. The subscriber connection belongs to
 * whoever created it, who also closes it.
 */
export class CancellationListener {
  private readonly targets = new Set<{ cancel(taskId: string): boolean }>();

  constructor(subscriber: RedisClient, keys: RedisKeys, logger: Logger) {
    const channel = keys.taskCancel;
    subscriber.subscribe(channel).catch((error: unknown) => logger.warn({ err: error }, "cannot subscribe to cancellations"));
    subscriber.on("message", (from: string, message: string) => {
      if (from !== channel) return;
      try {
        const { taskId } = JSON.parse(message) as { taskId?: unknown };
        if (typeof taskId === "string") for (const target of this.targets) target.cancel(taskId);
      } catch {
        logger.warn({ message: message.slice(0, 200) }, "malformed cancellation message");
      }
    });
  }

  add(target: { cancel(taskId: string): boolean }): void {
    this.targets.add(target);
  }

  delete(target: { cancel(taskId: string): boolean }): void {
    this.targets.delete(target);
  }

  /** Stops aborting anything (the subscription ends when its owner closes the connection). */
  stop(): void {
    this.targets.clear();
  }
}
