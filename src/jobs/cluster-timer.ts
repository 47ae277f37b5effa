import type { RedisClient } from "./redis-connection.js";
import type { FailureReporter } from "../dependencies/status.js";
import { every, type Periodic } from "../every.js";

/**
 * Runs `work` about once per interval across the whole cluster: every node ticks, and the node that takes the
 * Redis lock does the work. The lock is never released: it expires after one interval, so a node that dies
 * mid-run holds nobody up, and the work must tolerate running twice (a lock lost to a long pause).
 */
export class ClusterTimer {
  private timer: Periodic | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly lockKey: string,
    private readonly intervalMs: number,
    private readonly work: () => Promise<void>,
    private readonly failures: FailureReporter,
    private readonly what: string,
  ) {}

  start(): void {
    this.timer = every(this.intervalMs, () => this.tick(), {
      name: this.what,
      onError: (error) => this.failures.report(error, `${this.what} failed; retrying next interval`),
    });
  }

  stop(): void {
    this.timer?.stop();
  }

  private async tick(): Promise<void> {
    if ((await this.redis.set(this.lockKey, "1", "PX", this.intervalMs, "NX")) === "OK") await this.work();
  }
}
