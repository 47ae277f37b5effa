import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { z } from "zod";
import { DEFAULT_MAX_PAYLOAD_BYTES } from "./protocol/tasks.js";
import {
  DEFAULT_DATABASE_URL,
  JWT_MAX_LIFETIME_S,
  logFormat,
  positiveInt,
  problemLines,
  RedisEnv,
  SharedEnv,
  urlString,
  type RedisTarget,
} from "./settings.js";

/** The only reader of process.env for the server: everything else receives a validated Config. */
export interface Config {
  port: number;
  host: string;
  /** Every Redis connection is made from this: REDIS_URL, or the Redis Cluster of REDIS_CLUSTER_NODES. */
  redis: RedisTarget;
  /** Prefix for every Redis key and channel this deployment uses (adapter, queues, presence). */
  redisPrefix: string;
  databaseUrl: string;
  jwt: {
    secret: string | undefined;
    publicKey: string | undefined;
    issuer: string | undefined;
    audience: string | undefined;
    /** True when no JWT_SECRET was given and a throwaway one was generated (development only). */
    generatedSecret: boolean;
    /** Leeway for exp, nbf and iat, in seconds (clocks of token issuers and nodes drift). */
    clockToleranceS: number;
    /** Longest accepted token lifetime (exp - iat, or exp - now without iat), in seconds; also how long revocations are kept. */
    maxLifetimeS: number;
  };
  nodeId: string;
  corsOrigins: string[] | undefined;
  tls: { cert: string; key: string } | undefined;
  embeddedWorker: boolean;
  production: boolean;
  /**
   * permessage-deflate on WebSocket connections (WS_COMPRESSION, off by default as in Socket.IO: each connection
   * then keeps a zlib context), for messages of at least `thresholdBytes` (WS_COMPRESSION_THRESHOLD).
   */
  compression: { enabled: boolean; thresholdBytes: number };
  logLevel: string;
  /** "pretty" (a person reading a terminal) or "json" (a log collector). */
  logFormat: "json" | "pretty";
  limits: {
    /** Largest accepted REST body and Socket.IO message, in bytes. */
    maxPayloadBytes: number;
    /** Rooms one socket may be subscribed to at once. */
    maxRoomsPerSocket: number;
    /**
     * Unsent outbound bytes one connection may hold (Engine.IO write buffer + the WebSocket's bufferedAmount).
     * A connection found over it when more is written is closed as a slow consumer; replays keep below it.
     */
    maxSocketBufferBytes: number;
    /** SLOW_CONSUMER_TIMEOUT_MS: a connection with data waiting that reads nothing for this long is closed. */
    slowConsumerTimeoutMs: number;
    /** ROOM_CHECK_INTERVAL_MS: how often a node reads the heads of its rooms to find events that never reached it. */
    roomCheckIntervalMs: number;
    /** NODE_WORK_CONCURRENCY: REST requests and task reports a node runs at once; the rest wait their tenant's turn. */
    nodeWorkConcurrency: number;
    /** TENANT_WORK_CONCURRENCY: of those, at most this many of one tenant. */
    tenantWorkConcurrency: number;
    /** A tenant's connected namespace sockets across all nodes. */
    maxConnectionsPerTenant: number;
    /** A tenant's tasks assigned or started at once, across every pool, worker and node; undefined: unbounded. */
    maxRunningTasksPerTenant: number | undefined;
    /** Event data one history page (`GET /api/v1/events`) holds at most; the page stops early, with its cursor. */
    maxResponseBytes: number;
    /** Token revocations a tenant may hold at once (each is kept JWT_MAX_LIFETIME_S); beyond: 429 QUOTA_EXCEEDED. */
    maxRevocationsPerTenant: number;
    /** Sustained /api/v1 requests per second per tenant (burst: twice that). */
    restRatePerTenant: number;
    /** Client → server events per second of one dashboard socket. */
    socketEventsPerSecond: number;
    /** Client → server events per second of one pool worker socket. */
    workerEventsPerSecond: number;
    /** An Engine.IO session that has not completed an authenticated namespace connect by then is closed. */
    connectTimeoutMs: number;
  };
  /** Deadline of each Redis or PostgreSQL call on a request path: past it the caller gets 503 UNAVAILABLE. */
  dependencyTimeoutMs: number;
  metrics: {
    /** Adds a `tenant` label to the task and event counters: per-tenant figures, at one series per tenant. */
    tenantLabels: boolean;
    /** METRICS_TOKEN: the bearer token `/metrics` asks for (open when unset). */
    token: string | undefined;
  };
  shutdownTimeoutMs: number;
  tasks: {
    /** First retry delay; doubles with every further attempt. */
    backoffMs: number;
    /** BullMQ lock duration: a worker silent this long is presumed dead and its job is handed on. */
    lockDurationMs: number;
    concurrency: number;
    /** How often one node compares open tasks with BullMQ (and stuck workflows with their tasks). */
    reconcileIntervalMs: number;
    /** AUTOSCALE_INTERVAL_MS: how often one node sets the autoscaled pools' desiredWorkers from their queues. */
    autoscaleIntervalMs: number;
    /** Tasks and workflows unchanged for less than this are left alone by the reconciler. */
    reconcileMinAgeMs: number;
  };
  workers: {
    heartbeatIntervalMs: number;
    heartbeatTimeoutMs: number;
    disconnectGraceMs: number;
  };
  events: {
    retentionMs: number;
    retentionPerRoom: number;
    retentionIntervalMs: number;
    /** Outbox rows older than this were left by a node that died mid-publish; any node numbers them. */
    outboxRelayAfterMs: number;
  };
}

const booleanString = z
  .enum(["true", "false", "1", "0", "yes", "no"], { message: "must be true or false" })
  .transform((v) => v === "true" || v === "1" || v === "yes");
const port = z.coerce.number({ message: "must be a number" }).int().min(0).max(65535);

const EnvSchema = z.object({
  PORT: port.default(3000),
  HOST: z.string().min(1).default("0.0.0.0"),
  ...RedisEnv,
  ...SharedEnv,
  DATABASE_URL: urlString(["postgresql:", "postgres:"]).default(DEFAULT_DATABASE_URL),
  JWT_SECRET: z.string().min(16, "must be at least 16 characters").optional(),
  JWT_PUBLIC_KEY: z.string().optional(),
  JWT_ISSUER: z.string().min(1).optional(),
  JWT_AUDIENCE: z.string().min(1).optional(),
  NODE_ID: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,128}$/, "must be 1-128 letters, digits, '_', '.', ':' or '-'")
    .optional(),
  CORS_ORIGINS: z.string().optional(),
  TLS_CERT_FILE: z.string().min(1).optional(),
  TLS_KEY_FILE: z.string().min(1).optional(),
  EMBEDDED_WORKER: booleanString.default(true),
  MAX_PAYLOAD_BYTES: positiveInt.default(DEFAULT_MAX_PAYLOAD_BYTES),
  MAX_ROOMS_PER_SOCKET: positiveInt.default(1000),
  MAX_REVOCATIONS_PER_TENANT: positiveInt.default(10_000),
  MAX_RESPONSE_BYTES: positiveInt.default(4 * 1024 * 1024),
  MAX_SOCKET_BUFFER_BYTES: positiveInt.min(4096, "must be at least 4096").default(1_048_576),
  SLOW_CONSUMER_TIMEOUT_MS: positiveInt.default(30_000),
  ROOM_CHECK_INTERVAL_MS: positiveInt.default(2_000),
  NODE_WORK_CONCURRENCY: positiveInt.default(20),
  TENANT_WORK_CONCURRENCY: positiveInt.default(8),
  MAX_CONNECTIONS_PER_TENANT: positiveInt.default(10_000),
  TENANT_MAX_RUNNING_TASKS: positiveInt.optional(),
  REST_RATE_PER_TENANT: positiveInt.default(200),
  SOCKET_EVENTS_PER_SECOND: positiveInt.default(50),
  WORKER_EVENTS_PER_SECOND: positiveInt.default(5_000),
  CONNECT_TIMEOUT_MS: positiveInt.default(5_000),
  JWT_CLOCK_TOLERANCE_S: z.coerce.number({ message: "must be a number" }).int().min(0).max(3600).default(5),
  JWT_MAX_LIFETIME_S,
  METRICS_TENANT_LABELS: booleanString.default(false),
  WS_COMPRESSION: booleanString.default(false),
  WS_COMPRESSION_THRESHOLD: positiveInt.default(1024),
  METRICS_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  SHUTDOWN_TIMEOUT_MS: positiveInt.default(10_000),
  WORKER_CONCURRENCY: positiveInt.default(32),
  RECONCILE_INTERVAL_MS: positiveInt.default(15_000),
  AUTOSCALE_INTERVAL_MS: positiveInt.default(5_000),
  RECONCILE_MIN_AGE_MS: positiveInt.default(30_000),
  OUTBOX_RELAY_AFTER_MS: positiveInt.default(5_000),
  WORKER_HEARTBEAT_INTERVAL_MS: positiveInt.default(5_000),
  WORKER_HEARTBEAT_TIMEOUT_MS: positiveInt.default(15_000),
  WORKER_DISCONNECT_GRACE_MS: positiveInt.default(10_000),
  EVENT_RETENTION_MS: positiveInt.default(7 * 24 * 3600 * 1000),
  EVENT_RETENTION_PER_ROOM: positiveInt.default(10_000),
  EVENT_RETENTION_INTERVAL_MS: positiveInt.default(60_000),
});

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join("\n"));
    this.name = "ConfigError";
  }
}

function readPemFile(value: string | undefined, variable: string, problems: string[]): string | undefined {
  if (value === undefined) return undefined;
  // A PEM may be given inline or as a path to a file: inline is handier in Kubernetes secrets.
  if (value.includes("-----BEGIN")) return value.replace(/\\n/g, "\n");
  try {
    return readFileSync(value, "utf8");
  } catch (error) {
    problems.push(`${variable}: cannot read file ${value} (${(error as NodeJS.ErrnoException).code ?? "error"})`);
    return undefined;
  }
}

/** Validates the environment once; throws ConfigError with one line per bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable means "not set", as in most shells' `VAR= command` idiom.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ""));
  const parsed = EnvSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(problemLines(parsed.error));
  }
  const e = parsed.data;
  const problems: string[] = [];
  const production = e.NODE_ENV === "production";
  const publicKey = readPemFile(e.JWT_PUBLIC_KEY, "JWT_PUBLIC_KEY", problems);
  if (publicKey !== undefined && !publicKey.includes("PUBLIC KEY")) {
    problems.push("JWT_PUBLIC_KEY: must be a PEM public key (-----BEGIN PUBLIC KEY-----)");
  }
  if (production && !e.JWT_SECRET && !e.JWT_PUBLIC_KEY) {
    problems.push("JWT_SECRET: required when NODE_ENV=production (or set JWT_PUBLIC_KEY for RS256)");
  }
  if ((e.TLS_CERT_FILE === undefined) !== (e.TLS_KEY_FILE === undefined)) {
    problems.push(`${e.TLS_CERT_FILE ? "TLS_KEY_FILE" : "TLS_CERT_FILE"}: must be set together with the other TLS file`);
  }
  let tls: Config["tls"];
  if (e.TLS_CERT_FILE && e.TLS_KEY_FILE) {
    const cert = readPemFile(e.TLS_CERT_FILE, "TLS_CERT_FILE", problems);
    const key = readPemFile(e.TLS_KEY_FILE, "TLS_KEY_FILE", problems);
    if (cert && key) tls = { cert, key };
  }
  const corsOrigins = e.CORS_ORIGINS?.split(",")
    .map((o) => o.trim())
    .filter(Boolean);
  for (const origin of corsOrigins ?? []) {
    if (origin !== "*" && !/^https?:\/\/[^/\s]+$/.test(origin)) {
      problems.push(`CORS_ORIGINS: "${origin}" is not an origin like https://app.example.com`);
    }
  }
  if (e.WORKER_HEARTBEAT_INTERVAL_MS >= e.WORKER_HEARTBEAT_TIMEOUT_MS) {
    problems.push("WORKER_HEARTBEAT_TIMEOUT_MS: must be larger than WORKER_HEARTBEAT_INTERVAL_MS, or workers flap offline");
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const generatedSecret = !e.JWT_SECRET && !publicKey;
  return {
    port: e.PORT,
    host: e.HOST,
    redis: { url: e.REDIS_URL, clusterNodes: e.REDIS_CLUSTER_NODES },
    redisPrefix: e.REDIS_PREFIX,
    databaseUrl: e.DATABASE_URL,
    jwt: {
      secret: e.JWT_SECRET ?? (generatedSecret ? randomBytes(32).toString("base64url") : undefined),
      publicKey,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
      generatedSecret,
      clockToleranceS: e.JWT_CLOCK_TOLERANCE_S,
      maxLifetimeS: e.JWT_MAX_LIFETIME_S,
    },
    nodeId: e.NODE_ID ?? `${hostname()}-${process.pid}`,
    corsOrigins: corsOrigins && corsOrigins.length > 0 ? corsOrigins : undefined,
    tls,
    embeddedWorker: e.EMBEDDED_WORKER,
    production,
    compression: { enabled: e.WS_COMPRESSION, thresholdBytes: e.WS_COMPRESSION_THRESHOLD },
    logLevel: e.LOG_LEVEL,
    logFormat: logFormat(e.LOG_FORMAT, e.NODE_ENV),
    limits: {
      maxPayloadBytes: e.MAX_PAYLOAD_BYTES,
      maxRoomsPerSocket: e.MAX_ROOMS_PER_SOCKET,
      maxSocketBufferBytes: e.MAX_SOCKET_BUFFER_BYTES,
      slowConsumerTimeoutMs: e.SLOW_CONSUMER_TIMEOUT_MS,
      roomCheckIntervalMs: e.ROOM_CHECK_INTERVAL_MS,
      nodeWorkConcurrency: e.NODE_WORK_CONCURRENCY,
      tenantWorkConcurrency: Math.min(e.TENANT_WORK_CONCURRENCY, e.NODE_WORK_CONCURRENCY),
      maxConnectionsPerTenant: e.MAX_CONNECTIONS_PER_TENANT,
      maxRunningTasksPerTenant: e.TENANT_MAX_RUNNING_TASKS,
      maxRevocationsPerTenant: e.MAX_REVOCATIONS_PER_TENANT,
      maxResponseBytes: e.MAX_RESPONSE_BYTES,
      restRatePerTenant: e.REST_RATE_PER_TENANT,
      socketEventsPerSecond: e.SOCKET_EVENTS_PER_SECOND,
      workerEventsPerSecond: e.WORKER_EVENTS_PER_SECOND,
      connectTimeoutMs: e.CONNECT_TIMEOUT_MS,
    },
    dependencyTimeoutMs: e.DEPENDENCY_TIMEOUT_MS,
    metrics: { tenantLabels: e.METRICS_TENANT_LABELS, token: e.METRICS_TOKEN },
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    tasks: {
      backoffMs: e.TASK_BACKOFF_MS,
      lockDurationMs: e.TASK_LOCK_MS,
      concurrency: e.WORKER_CONCURRENCY,
      reconcileIntervalMs: e.RECONCILE_INTERVAL_MS,
      autoscaleIntervalMs: e.AUTOSCALE_INTERVAL_MS,
      reconcileMinAgeMs: e.RECONCILE_MIN_AGE_MS,
    },
    workers: {
      heartbeatIntervalMs: e.WORKER_HEARTBEAT_INTERVAL_MS,
      heartbeatTimeoutMs: e.WORKER_HEARTBEAT_TIMEOUT_MS,
      disconnectGraceMs: e.WORKER_DISCONNECT_GRACE_MS,
    },
    events: {
      retentionMs: e.EVENT_RETENTION_MS,
      retentionPerRoom: e.EVENT_RETENTION_PER_ROOM,
      retentionIntervalMs: e.EVENT_RETENTION_INTERVAL_MS,
      outboxRelayAfterMs: e.OUTBOX_RELAY_AFTER_MS,
    },
  };
}
