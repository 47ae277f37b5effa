import type { Redis } from "ioredis";
import type { PrismaClient } from "../db/client.js";
import { ClusterTimer } from "../jobs/cluster-timer.js";
import type { Logger } from "../observability/logger.js";
import type { RedisKeys } from "../jobs/redis-keys.js";

export interface RetentionOptions {
  keys: RedisKeys;
  /** Events older than this are deleted. */
  maxAgeMs: number;
  /** At most this many events are kept per room (the newest). */
  maxPerRoom: number;
  intervalMs: number;
}

/**
 * Trims the event log by age and by count per room. Every node runs the timer; a Redis lock held for one
 * interval lets only one of them do the work each time. Deleting is idempotent anyway, so a lock lost to a
 * pause costs duplicate work, never wrong results. A client whose cursor falls before what is kept gets
 * CURSOR_EXPIRED (sequences are gapless, so a missing first event is detected exactly).
 */
export class EventRetention {
  private readonly timer: ClusterTimer;

  constructor(
    private readonly prisma: PrismaClient,
    redis: Redis,
    logger: Logger,
    private readonly options: RetentionOptions,
  ) {
    this.timer = new ClusterTimer(redis, options.keys.retentionLock, options.intervalMs, async () => {
      const deleted = await this.trim();
      if (deleted > 0) logger.info({ deleted }, "event retention trimmed the log");
    }, logger, "event retention");
  }

  start(): void {
    this.timer.start();
  }

  stop(): void {
    this.timer.stop();
  }

  /** Deletes what retention no longer keeps; returns how many events went. */
  async trim(): Promise<number> {
    const byAge = await this.prisma.$executeRawUnsafe(
      `DELETE FROM "Event" WHERE "ts" < ($1::timestamptz AT TIME ZONE 'UTC')`,
      new Date(Date.now() - this.options.maxAgeMs).toISOString(),
    );
    const byCount = await this.prisma.$executeRawUnsafe(
      `DELETE FROM "Event" e USING "RoomSequence" r
       WHERE e."tenantId" = r."tenantId" AND e."namespace" = r."namespace" AND e."room" = r."room"
         AND e."seq" <= r."seq" - $1`,
      this.options.maxPerRoom,
    );
    return byAge + byCount;
  }
}
