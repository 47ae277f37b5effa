import type { RedisClient } from "./redis-connection.js";
import type { FailureReporter } from "../dependencies/status.js";

/**
 * Runs `work` about once per interval across the whole cluster: every node ticks, and the node that takes the
 * Redis lock does the work. The lock is never released: it expires after one interval, so a node that dies
 * mid-run holds nobody up, and the work must tolerate running twice (a lock lost to a long pause).
 */
export class ClusterTimer {
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly lockKey: string,
    private readonly intervalMs: number,
    private readonly work: () => Promise<void>,
    private readonly failures: FailureReporter,
    private readonly what: string,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async tick(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      if ((await this.redis.set(this.lockKey, "1", "PX", this.intervalMs, "NX")) === "OK") await this.work();
    } catch (error) {
      this.failures.report(error, `${this.what} failed; retrying next interval`);
    } finally {
      this.running = false;
    }
  }
}
