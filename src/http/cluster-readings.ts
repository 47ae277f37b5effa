import type { PrismaClient } from "../db/client.js";
import type { Sql } from "../db/sql.js";
import { countWorkers } from "../domains/pools/workers.js";
import type { DependencyChecks } from "./health.js";
import type { TaskQueues } from "../jobs/queues.js";
import type { Logger } from "../observability/logger.js";
import { CachedReading } from "../observability/cached-reading.js";
import type { ScrapeSources } from "../observability/metrics.js";

export interface ClusterReadingsDeps {
  checks: DependencyChecks;
  prisma: PrismaClient;
  sql: Sql;
  queues: TaskQueues;
  /** Longest a scrape waits for Redis or PostgreSQL (DEPENDENCY_TIMEOUT_MS). */
  deadlineMs: number;
  logger: Logger;
}

/** Scrapes come every 15-60 s; a few seconds of caching merges concurrent scrapers without hiding a trend. */
const TTL_MS = 5_000;
const MAX_AGE_MS = 60_000;

/**
 * Where the scrape-time gauges come from: the readiness checks themselves for Redis and PostgreSQL (uncached, as
 * `/ready` runs them, each bounded by its own timeout), and cached deployment-wide counts for queues and workers.
 * Every node reports the same deployment-wide counts, so dashboards and alerts take their `max`.
 */
export function clusterReadings(deps: ClusterReadingsDeps): ScrapeSources {
  const options = { ttlMs: TTL_MS, deadlineMs: deps.deadlineMs, maxAgeMs: MAX_AGE_MS };
  const failed = (what: string) => (error: unknown) =>
    deps.logger.warn({ err: error instanceof Error ? error.message : String(error) }, `metrics: could not read ${what}`);
  // Every pool of the deployment (pools name the queues); plain SQL, as thousands of rows through Prisma cost more
  // than the counting. A pool nobody ever used costs three O(1) counts of keys that do not exist.
  const queueWaiting = new CachedReading(
    async () =>
      deps.queues.waitingTotal(
        await deps.sql.query<Array<{ tenantId: string; poolId: string }>>(`SELECT "tenantId", "id" AS "poolId" FROM "Pool"`),
      ),
    options,
    failed("the queues' waiting jobs"),
  );
  const workers = new CachedReading(() => countWorkers(deps.prisma), options, failed("worker counts"));
  return {
    redisUp: async () => (await deps.checks.redis()) === "ok",
    postgresUp: async () => (await deps.checks.postgres()) === "ok",
    queueWaiting: () => queueWaiting.get(),
    workers: () => workers.get(),
  };
}
