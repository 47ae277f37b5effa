import type { RedisClient } from "../jobs/redis-connection.js";
import type { Sql } from "../db/sql.js";
import type { FailureReporter } from "../dependencies/status.js";
import { ClusterTimer } from "../jobs/cluster-timer.js";
import type { Logger } from "../observability/logger.js";
import type { RedisKeys } from "../jobs/redis-keys.js";

export interface RetentionOptions {
  keys: RedisKeys;
  /** Where a failed trim is reported (an outage is logged once, not once per interval). */
  failures: FailureReporter;
  /** Events older than this are deleted. */
  maxAgeMs: number;
  /** At most this many events are kept per room (the newest). */
  maxPerRoom: number;
  intervalMs: number;
  /** How long one trim statement may take: a large log takes longer than a request's deadline. */
  statementTimeoutMs: number;
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
    private readonly sql: Sql,
    redis: RedisClient,
    logger: Logger,
    private readonly options: RetentionOptions,
  ) {
    this.timer = new ClusterTimer(
      redis,
      options.keys.retentionLock,
      options.intervalMs,
      async () => {
        const deleted = await this.trim();
        if (deleted > 0) logger.info({ deleted }, "event retention trimmed the log");
      },
      options.failures,
      "event retention",
    );
  }

  start(): void {
    this.timer.start();
  }

  stop(): void {
    this.timer.stop();
  }

  /**
   * Deletes what retention no longer keeps; returns how many events (by age) and room places (by count) went.
   *
   * Why in batches: one DELETE of everything past the age limit (900,000 of 3 million events after a pause)
   * was one long transaction whose WAL and dead rows landed at once; batches of BATCH rows are short
   * transactions that publishing interleaves with. Why per room through the primary key: the count limit used
   * to join every stored event with its room's sequence, a full scan of the log each pass (1.3 s at 3 million
   * events with nothing to delete); now each room past the limit costs one index probe, and only rows that go
   * are read. docs/performance.md has the figures (scripts/bench/retention.ts).
   */
  async trim(): Promise<number> {
    const deadline = { timeoutMs: this.options.statementTimeoutMs };
    const cutoff = new Date(Date.now() - this.options.maxAgeMs).toISOString();
    let deleted = 0;
    // By age: an event and its place in every room go together (its rooms are listed on the event itself, so no
    // index on RoomEvent.eventId is needed).
    for (;;) {
      const [row] = await this.sql.query<Array<{ n: number }>>(
        `WITH old AS (
           SELECT "id", "tenantId", "targets", "seqs" FROM "Event"
           WHERE "ts" < ($1::timestamptz AT TIME ZONE 'UTC') ORDER BY "ts" LIMIT $2
         ), places AS (
           DELETE FROM "RoomEvent" r USING (
             SELECT o."tenantId", split_part(p.target, '|', 1) AS ns, substr(p.target, strpos(p.target, '|') + 1) AS room, p.seq
             FROM old o CROSS JOIN LATERAL unnest(o."targets", o."seqs") AS p(target, seq)
           ) gone
           WHERE r."tenantId" = gone."tenantId" AND r."namespace" = gone.ns AND r."room" = gone.room AND r."seq" = gone.seq
           RETURNING 1
         ), events AS (
           DELETE FROM "Event" e USING old WHERE e."id" = old."id" RETURNING 1
         )
         SELECT count(*)::int AS n FROM events`,
        [cutoff, BATCH],
        deadline,
      );
      const n = row?.n ?? 0;
      deleted += n;
      if (n < BATCH) break;
    }
    // By count: a room keeps its newest maxPerRoom places. The event itself stays while another room still refers
    // to it, and goes with the age limit.
    for (;;) {
      const [row] = await this.sql.query<Array<{ n: number }>>(
        `WITH gone AS (
           DELETE FROM "RoomEvent" e USING (
             SELECT r."tenantId", r."namespace", r."room", old."seq"
             FROM "RoomSequence" r CROSS JOIN LATERAL (
               SELECT "seq" FROM "RoomEvent" ev
               WHERE ev."tenantId" = r."tenantId" AND ev."namespace" = r."namespace" AND ev."room" = r."room"
                 AND ev."seq" <= r."seq" - $1
               ORDER BY ev."seq" LIMIT $2
             ) old
             WHERE r."seq" > $1
             LIMIT $2
           ) old
           WHERE e."tenantId" = old."tenantId" AND e."namespace" = old."namespace" AND e."room" = old."room" AND e."seq" = old."seq"
           RETURNING 1
         )
         SELECT count(*)::int AS n FROM gone`,
        [this.options.maxPerRoom, BATCH],
        deadline,
      );
      const n = row?.n ?? 0;
      deleted += n;
      if (n < BATCH) break;
    }
    return deleted;
  }
}

/** Events deleted per statement. */
const BATCH = 10_000;
