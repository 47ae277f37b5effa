import { parseArgs } from "node:util";
import jwt from "jsonwebtoken";
import { z } from "zod";
import { logFormat, positiveInt, problemLines, RedisEnv, SharedEnv, type RedisTarget } from "../settings.js";

/** The standalone pool worker's configuration: the only reader of process.env and argv in the worker process. */
export interface WorkerConfig {
  poolId: string;
  token: string;
  tenantId: string;
  /** One or more server URLs; on a lost connection the worker tries the next one. */
  serverUrls: string[];
  /**
   * `hub` (the default): jobs come over the worker's Socket.IO connection, and Redis is never read or reached.
   * `direct` (`--direct` or WORKER_MODE=direct, for trusted hosts): the worker takes its jobs from BullMQ itself.
   */
  mode: "hub" | "direct";
  /** Direct mode only: REDIS_URL, or the Redis Cluster of REDIS_CLUSTER_NODES (as the server's). */
  redis: RedisTarget | undefined;
  redisPrefix: string;
  handlersModule: string | undefined;
  concurrency: number;
  lockDurationMs: number;
  backoffMs: number;
  workerId: string | undefined;
  logLevel: string;
  logFormat: "json" | "pretty";
  shutdownTimeoutMs: number;
  /** How long a Redis call may take before it counts as failed (probing a silent Redis, closing at shutdown). */
  dependencyTimeoutMs: number;
}

const EnvSchema = z.object({
  WORKER_TOKEN: z
    .string({ message: "required: a pools:work token for the pool (npm run token -- --tenant T --permissions pools:work --pool P)" })
    .min(1),
  SWITCHYARD_URL: z.string().default("http://127.0.0.1:3000"),
  WORKER_MODE: z.enum(["hub", "direct"]).default("hub"),
  ...SharedEnv,
  WORKER_HANDLERS: z.string().optional(),
  WORKER_CONCURRENCY: positiveInt.default(4),
  WORKER_ID: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,128}$/, "must be 1-128 letters, digits, '_' or '-'")
    .optional(),
  SHUTDOWN_TIMEOUT_MS: positiveInt.default(30_000),
});

export class WorkerConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join("\n"));
  }
}

export function loadWorkerConfig(argv: string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const problems: string[] = [];
  const { values } = parseArgs({
    args: argv,
    options: { pool: { type: "string" }, handlers: { type: "string" }, id: { type: "string" }, direct: { type: "boolean" } },
    strict: false,
  });
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = EnvSchema.safeParse(present);
  if (!parsed.success) throw new WorkerConfigError(problemLines(parsed.error));
  const e = parsed.data;

  const mode = values.direct === true ? "direct" : e.WORKER_MODE;
  // A hub-mode worker does not read Redis settings at all: a wrong one there is nobody's problem.
  let redis: RedisTarget | undefined;
  if (mode === "direct") {
    const target = z.object(RedisEnv).safeParse(present);
    if (target.success) redis = { url: target.data.REDIS_URL, clusterNodes: target.data.REDIS_CLUSTER_NODES };
    else problems.push(...problemLines(target.error));
  }
  // The worker does not verify its own token (the server does); it reads the claims to know its queue.
  const claims = jwt.decode(e.WORKER_TOKEN) as { tenant_id?: unknown; pool_id?: unknown; permissions?: unknown } | null;
  const tenantId = typeof claims?.tenant_id === "string" ? claims.tenant_id : undefined;
  const tokenPool = typeof claims?.pool_id === "string" ? claims.pool_id : undefined;
  if (!claims) problems.push("WORKER_TOKEN: not a JWT");
  else {
    if (!tenantId) problems.push("WORKER_TOKEN: has no tenant_id claim");
    if (!tokenPool) problems.push("WORKER_TOKEN: has no pool_id claim (mint it with --pool)");
    const permissions = Array.isArray(claims.permissions) ? claims.permissions : [];
    if (!permissions.includes("pools:work")) problems.push("WORKER_TOKEN: lacks the pools:work permission");
  }
  const poolArg = typeof values.pool === "string" ? values.pool : undefined;
  const poolId = poolArg ?? tokenPool;
  if (!poolId) problems.push("--pool: required (the pool this worker serves)");
  else if (tokenPool && poolId !== tokenPool) problems.push(`--pool: ${poolId} differs from the token's pool_id ${tokenPool}`);
  const serverUrls = e.SWITCHYARD_URL.split(",")
    .map((u) => u.trim())
    .filter(Boolean);
  for (const url of serverUrls) {
    if (!/^https?:\/\//.test(url)) problems.push(`SWITCHYARD_URL: "${url}" is not an http(s) URL`);
  }
  if (problems.length > 0) throw new WorkerConfigError(problems);
  const handlers = typeof values.handlers === "string" ? values.handlers : e.WORKER_HANDLERS;
  const id = typeof values.id === "string" ? values.id : e.WORKER_ID;
  return {
    poolId: poolId!,
    token: e.WORKER_TOKEN,
    tenantId: tenantId!,
    serverUrls,
    mode,
    redis,
    redisPrefix: e.REDIS_PREFIX,
    handlersModule: handlers,
    concurrency: e.WORKER_CONCURRENCY,
    lockDurationMs: e.TASK_LOCK_MS,
    backoffMs: e.TASK_BACKOFF_MS,
    workerId: id,
    logLevel: e.LOG_LEVEL,
    logFormat: logFormat(e.LOG_FORMAT, e.NODE_ENV),
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    dependencyTimeoutMs: e.DEPENDENCY_TIMEOUT_MS,
  };
}
