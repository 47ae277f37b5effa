import { timingSafeEqual } from "node:crypto";
import { Router } from "express";
import type { RedisClient } from "../jobs/redis-connection.js";
import type { PrismaClient } from "../db/client.js";
import { withDeadline } from "../dependencies/deadline.js";
import type { FailureReporter } from "../dependencies/status.js";
import type { PresenceState } from "../domains/pools/presence-agreement.js";
import type { Dependency } from "../errors.js";
import type { Metrics } from "../observability/metrics.js";

/** A check's answer: the dependency answered, or did not (down, unreachable, or not within the deadline). */
export type CheckResult = "ok" | "unavailable";

/** The dependency checks behind `/ready`; `/metrics` exports the same answers (switchyard_redis_up, switchyard_postgres_up). */
export interface DependencyChecks {
  redis(): Promise<CheckResult>;
  postgres(): Promise<CheckResult>;
}

/**
 * Each check has the request deadline (DEPENDENCY_TIMEOUT_MS). It says which dependency failed, never how: the
 * driver's text goes to the log (once per outage, through `failures`), not to whoever asks the unauthenticated
 * /ready.
 */
export function dependencyChecks(
  redis: RedisClient,
  prisma: PrismaClient,
  deadlineMs: number,
  failures: FailureReporter,
): DependencyChecks {
  const check = async (dependency: Dependency, run: () => Promise<unknown>): Promise<CheckResult> => {
    try {
      await withDeadline(run(), deadlineMs, dependency);
      return "ok";
    } catch (error) {
      failures.report(error, `${dependency} readiness check failed`);
      return "unavailable";
    }
  };
  return {
    redis: () => check("redis", () => redis.ping()),
    postgres: () => check("postgresql", () => prisma.$queryRawUnsafe("SELECT 1")),
  };
}

export interface HealthDeps {
  nodeId: string;
  redis: RedisClient;
  prisma: PrismaClient;
  metrics: Metrics;
  /** Each check's deadline (DEPENDENCY_TIMEOUT_MS). */
  deadlineMs: number;
  failures: FailureReporter;
  /** Whether this node's Redis holds the worker presence other nodes keep ("not_shared": it is not the cluster's). */
  presence: () => PresenceState;
  isShuttingDown: () => boolean;
  /** METRICS_TOKEN: when set, `/metrics` answers only `Authorization: Bearer <it>`. */
  metricsToken?: string;
}

/** `/health` says the process runs; `/ready` really asks Redis and PostgreSQL; `/metrics` is Prometheus text. */
export function healthRouter(deps: HealthDeps): Router {
  const router = Router();
  const checks = dependencyChecks(deps.redis, deps.prisma, deps.deadlineMs, deps.failures);
  router.get("/health", (_req, res) => {
    res.json({ status: "ok", node: deps.nodeId });
  });
  router.get("/ready", async (_req, res) => {
    const [redisAnswer, postgres] = await Promise.all([checks.redis(), checks.postgres()]);
    const redis = redisAnswer === "ok" && deps.presence() === "not_shared" ? "not_shared" : redisAnswer;
    const ready = redis === "ok" && postgres === "ok" && !deps.isShuttingDown();
    const status = deps.isShuttingDown() ? "shutting_down" : ready ? "ready" : "unavailable";
    res.status(ready ? 200 : 503).json({ status, node: deps.nodeId, checks: { redis, postgres } });
  });
  const scraper = deps.metricsToken === undefined ? undefined : Buffer.from(`Bearer ${deps.metricsToken}`);
  router.get("/metrics", async (req, res) => {
    // Node-wide figures (every tenant's connections and traffic, with METRICS_TENANT_LABELS their ids) are for
    // the operator's Prometheus, not for whoever can reach the port.
    if (scraper && !sameSecret(scraper, req.headers.authorization)) {
      res
        .status(401)
        .set("WWW-Authenticate", 'Bearer realm="metrics"')
        .json({ error: { code: "UNAUTHORIZED", message: "/metrics needs Authorization: Bearer <METRICS_TOKEN>" } });
      return;
    }
    res.set("Content-Type", deps.metrics.registry.contentType);
    res.send(await deps.metrics.registry.metrics());
  });
  return router;
}

/** Compares in constant time, so the answer's timing does not tell how much of a guess was right. */
function sameSecret(expected: Buffer, given: string | undefined): boolean {
  const candidate = Buffer.from(given ?? "");
  return candidate.length === expected.length && timingSafeEqual(candidate, expected);
}
