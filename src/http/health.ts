import { Router } from "express";
import type { Redis } from "ioredis";
import type { PrismaClient } from "../db/client.js";
import type { Metrics } from "../observability/metrics.js";

const CHECK_TIMEOUT_MS = 2000;

async function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function check(run: () => Promise<unknown>, what: string): Promise<string> {
  try {
    await withTimeout(run(), what);
    return "ok";
  } catch (error) {
    return `error: ${error instanceof Error ? error.message : String(error)}`;
  }
}

export interface HealthDeps {
  nodeId: string;
  redis: Redis;
  prisma: PrismaClient;
  metrics: Metrics;
  isShuttingDown: () => boolean;
}

/** `/health` says the process runs; `/ready` really asks Redis and PostgreSQL; `/metrics` is Prometheus text. */
export function healthRouter(deps: HealthDeps): Router {
  const router = Router();
  router.get("/health", (_req, res) => {
    res.json({ status: "ok", node: deps.nodeId });
  });
  router.get("/ready", async (_req, res) => {
    const [redis, postgres] = await Promise.all([
      check(() => deps.redis.ping(), "redis"),
      check(() => deps.prisma.$queryRawUnsafe("SELECT 1"), "postgres"),
    ]);
    const ready = redis === "ok" && postgres === "ok" && !deps.isShuttingDown();
    const status = deps.isShuttingDown() ? "shutting_down" : ready ? "ready" : "unavailable";
    res.status(ready ? 200 : 503).json({ status, node: deps.nodeId, checks: { redis, postgres } });
  });
  router.get("/metrics", async (_req, res) => {
    res.set("Content-Type", deps.metrics.registry.contentType);
    res.send(await deps.metrics.registry.metrics());
  });
  return router;
}
