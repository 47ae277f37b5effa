/**
 * A standalone pool worker process:
 *   WORKER_TOKEN=<pools:work jwt> SWITCHYARD_URL=<url> npm run worker -- --pool <poolId> [--handlers ./my-handlers.ts] [--direct]
 * Hub mode (the default): receives the pool's jobs over its Socket.IO connection and answers each with its outcome
 * (hub-client.ts); it needs nothing but the URL and the token. Direct mode (`--direct`, trusted hosts): takes the
 * pool's tasks from BullMQ itself and reports every step over Socket.IO. Either way it reports its own status
 * (idle/busy/error/draining) and heartbeats.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { io } from "socket.io-client";
import { closeRedis, createRedisClient } from "../jobs/redis-clients.js";
import { DependencyStatus } from "../dependencies/status.js";
import { createLogger } from "../observability/logger.js";
import type { WorkerWelcome } from "../protocol/events.js";
import type { ReportedWorkerStatus } from "../protocol/workers.js";
import { DEFAULT_MAX_PAYLOAD_BYTES } from "../protocol/tasks.js";
import type { WorkerSocket } from "./socket-reporter.js";
import { CancellationListener } from "./cancellations.js";
import { loadWorkerConfig, WorkerConfigError, type WorkerConfig } from "./config.js";
import { builtinHandlers, type TaskHandler } from "./handlers.js";
import { PoolWorker } from "./pool-worker.js";
import { RETRYABLE_CODES, SocketTaskReporter } from "./socket-reporter.js";
import { RedisKeys } from "../jobs/redis-keys.js";
import { HubJobRunner } from "./hub-client.js";
import { every, type Periodic } from "../every.js";

const VERSION = "0.1.0";

function readConfig(): WorkerConfig {
  try {
    return loadWorkerConfig();
  } catch (error) {
    if (error instanceof WorkerConfigError) {
      for (const problem of error.problems) process.stderr.write(`worker config error: ${problem}\n`);
      process.exit(78);
    }
    throw error;
  }
}

/**
 * The worker runs compiled (node dist/worker/main.js), but handler modules written in TypeScript are common in
 * development (examples/handlers.ts): they load through tsx's loader when tsx is installed (a development
 * dependency). A production image ships handlers compiled to JavaScript.
 */
async function registerTypeScript(modulePath: string): Promise<void> {
  try {
    const tsx = (await import("tsx/esm/api")) as { register: () => unknown };
    tsx.register();
  } catch {
    throw new Error(`${modulePath} is TypeScript and tsx is not installed here: compile the handlers to JavaScript, or install tsx`);
  }
}

/** Custom handlers: a module exporting `handlers` (or a default export) mapping task types to functions. */
async function loadHandlers(modulePath: string | undefined): Promise<Record<string, TaskHandler>> {
  if (!modulePath) return builtinHandlers;
  if (/\.[cm]?tsx?$/.test(modulePath)) await registerTypeScript(modulePath);
  const module = (await import(pathToFileURL(path.resolve(modulePath)).href)) as { handlers?: unknown; default?: unknown };
  const custom = (module.handlers ?? module.default) as Record<string, unknown> | undefined;
  if (!custom || typeof custom !== "object")
    throw new Error(`${modulePath} must export "handlers": { [type]: async (payload, ctx) => result }`);
  for (const [type, handler] of Object.entries(custom)) {
    if (typeof handler !== "function") throw new Error(`${modulePath}: handler "${type}" is not a function`);
  }
  return { ...builtinHandlers, ...(custom as Record<string, TaskHandler>) };
}

const config = readConfig();
const workerId =
  config.workerId ??
  `${hostname()
    .replace(/[^A-Za-z0-9_-]/g, "_")
    .slice(0, 60)}-${process.pid}-${randomBytes(3).toString("hex")}`;
const logger = createLogger({ level: config.logLevel, nodeId: `worker:${workerId}`, format: config.logFormat });
const handlers = await loadHandlers(config.handlersModule);
const customTypes = Object.keys(handlers).filter((t) => !(t in builtinHandlers));

let urlIndex = 0;
const socket: WorkerSocket = io(`${config.serverUrls[0]}/pools`, {
  auth: { token: config.token, worker: { id: workerId, version: VERSION, types: customTypes } },
  reconnection: true,
  reconnectionDelay: 250,
  reconnectionDelayMax: 2000,
  transports: ["websocket", "polling"],
});
// With several server URLs, every reconnection attempt goes to the next one: a dead node is left behind.
socket.io.on("reconnect_attempt", () => {
  if (config.serverUrls.length < 2) return;
  urlIndex = (urlIndex + 1) % config.serverUrls.length;
  (socket.io as unknown as { uri: string }).uri = config.serverUrls[urlIndex]!;
});

let status: ReportedWorkerStatus = "idle";
let detail: string | undefined;
let heartbeat: Periodic | undefined;

/** How long a status the server refused for now (RATE_LIMITED) waits before it is sent again. */
const STATUS_RETRY_MS = 1000;
/** The server's default, until its `worker.welcome` says what the node takes. */
let maxPayloadBytes = DEFAULT_MAX_PAYLOAD_BYTES;
/** Registrations refused for now in a row (PostgreSQL down on the server): the wait before the next grows. */
let refusalsForNow = 0;
/** After the server closed the connection: how long to wait before coming back. */
function reconnectDelayMs(): number {
  if (refusalsForNow === 0) return 2000;
  const base = Math.min(15_000, 1000 * 2 ** (refusalsForNow - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4)); // jitter: a fleet of workers does not come back in step
}

function sendStatus(): void {
  if (!socket.connected) return; // sent again on the next connect
  const sent = { status, detail };
  socket
    .timeout(5000)
    .emitWithAck("worker.status", detail === undefined ? { status } : { status, detail })
    .then((ack: { ok: boolean; error?: { code: string; message: string } }) => {
      if (ack.ok) return;
      if (ack.error?.code !== "RATE_LIMITED") return logger.warn({ error: ack.error }, "status refused");
      // Over this socket's event rate: the server dropped it. Send it again unless a newer status went out since.
      setTimeout(() => {
        if (status === sent.status && detail === sent.detail) sendStatus();
      }, STATUS_RETRY_MS).unref();
    })
    .catch(() => undefined);
}

function setStatus(next: ReportedWorkerStatus, nextDetail?: string): void {
  if (status === "draining") return; // draining is final
  if (next === status && nextDetail === detail) return;
  status = next;
  detail = nextDetail;
  sendStatus();
}

socket.on("connect", () => {
  logger.info({ url: (socket.io as unknown as { uri: string }).uri, pool: config.poolId }, "connected");
  sendStatus();
});
let stopping = false;
socket.on("worker.welcome", (welcome: WorkerWelcome) => {
  if (refusalsForNow > 0) logger.info({ pool: config.poolId }, "registered");
  onWelcome();
  refusalsForNow = 0;
  // Older servers do not say: keep the default.
  if (typeof welcome.maxPayloadBytes === "number" && welcome.maxPayloadBytes > 0) maxPayloadBytes = welcome.maxPayloadBytes;
  heartbeat?.stop();
  // Not waited for: a heartbeat whose ack is late must not hold up the next one. Not unref'd: in hub mode this
  // timer and the socket are what keep the process alive.
  heartbeat = every(
    welcome.heartbeatIntervalMs,
    () => {
      if (socket.connected)
        void socket
          .timeout(5000)
          .emitWithAck("worker.heartbeat", {})
          .catch(() => undefined);
    },
    { name: "heartbeat", logger, unref: false },
  );
});
socket.on("worker.rejected", (error: { code: string; message: string }) => {
  // "Not now" (the server's PostgreSQL is down, say): the same registration will be welcome later, as reports are.
  if (RETRYABLE_CODES.has(error.code)) {
    refusalsForNow++;
    logger.warn({ error, attempt: refusalsForNow }, "the server cannot register this worker now; trying again");
    return; // the server closes the connection; the disconnect handler comes back after reconnectDelayMs()
  }
  logger.fatal({ error }, "the server refused this worker");
  process.exit(1);
});
/** Handshake refusals that the same token will meet on every node, every time. */
const FINAL_TOKEN_CODES = new Set(["TOKEN_EXPIRED", "TOKEN_INVALID", "CLAIMS_INVALID", "TOKEN_REVOKED"]);
socket.on("connect_error", (error: Error & { data?: { code?: string } }) => {
  logger.warn({ err: error.message, code: error.data?.code }, "cannot connect");
  if (FINAL_TOKEN_CODES.has(error.data?.code ?? "")) {
    logger.fatal("the token is not accepted; mint a new one");
    process.exit(1);
  }
});
socket.on("disconnect", (reason) => {
  if (stopping) return logger.info("stopped");
  logger.warn({ reason }, "disconnected; reconnecting");
  // The server closed this connection (it kept sending over its event rate, or could not register the worker now):
  // socket.io-client does not come back by itself after that, so reconnect after a pause. Token expiry and final
  // refusals also end in this reason, but they have made the process exit already.
  // Not unref'd: in hub mode nothing else (no Redis connection) keeps the process alive meanwhile.
  if (reason === "io server disconnect") setTimeout(() => socket.connect(), reconnectDelayMs());
});
socket.on("session.expired", () => {
  logger.fatal("token expired; mint a new one");
  process.exit(1);
});
// Revoked (an admin's POST /api/v1/tokens/revoke): this token will never be accepted again, so there is no point
// in reconnecting. Running tasks are not reported any more; BullMQ hands them on once their lock expires.
socket.on("session.revoked", () => {
  logger.fatal("token revoked; mint a new one");
  process.exit(1);
});

// Redis outages (direct mode) are logged once per connection when they start and once when they end, not per retry.
const dependencies = new DependencyStatus(logger, { deadlineMs: config.dependencyTimeoutMs });
/** Where jobs come from: the hub (over the socket) or BullMQ (direct); what the shutdown and the status need of it. */
interface JobSource {
  readonly busy: boolean;
  on(event: "status", listener: (status: "idle" | "busy") => void): unknown;
  /** Stops taking jobs and waits for the running ones. */
  close(): Promise<void>;
}
let onWelcome: () => void = () => undefined;
const source: JobSource = config.mode === "hub" ? hubSource() : directSource(config.redis!);
source.on("status", (next) => setStatus(next));
logger.info(
  { workerId, pool: config.poolId, tenant: config.tenantId, mode: config.mode, types: Object.keys(handlers) },
  "pool worker started",
);

function hubSource(): JobSource {
  const runner = new HubJobRunner(socket, { handlers, concurrency: config.concurrency, maxPayloadBytes: () => maxPayloadBytes, logger });
  onWelcome = () => runner.welcomed();
  return {
    get busy() {
      return runner.busy;
    },
    on: (event, listener) => runner.on(event, listener),
    close: () => runner.drain(),
  };
}

function directSource(redis: NonNullable<WorkerConfig["redis"]>): JobSource {
  const keys = new RedisKeys(config.redisPrefix, { cluster: redis.clusterNodes !== undefined });
  const redisOptions = { owner: `worker:${workerId}`, deadlineMs: config.dependencyTimeoutMs, status: dependencies };
  const connection = createRedisClient(redis, "bullmq", redisOptions);
  // The server hears about it too: the worker shows `error` while it cannot reach its queue.
  connection.on("error", () => setStatus("error", "redis unavailable"));
  connection.on("ready", () => {
    if (status === "error") setStatus(worker.busy ? "busy" : "idle");
  });
  const cancelConnection = createRedisClient(redis, "cancellations", redisOptions);
  const cancellations = new CancellationListener(cancelConnection, keys, logger);
  const worker = new PoolWorker({
    connection,
    keys,
    tenantId: config.tenantId,
    poolId: config.poolId,
    workerId,
    handlers,
    reporter: new SocketTaskReporter(socket, { ackTimeoutMs: 5000 }),
    logger,
    failures: dependencies,
    concurrency: config.concurrency,
    backoffMs: config.backoffMs,
    lockDurationMs: config.lockDurationMs,
    maxPayloadBytes: () => maxPayloadBytes,
  });
  cancellations.add(worker);
  return {
    get busy() {
      return worker.busy;
    },
    on: (event, listener) => worker.on(event, listener),
    close: async () => {
      // While Redis is away BullMQ could not record the end of a running job anyway: not worth waiting for (its
      // lock expires and BullMQ hands it to another worker).
      await worker.close(!dependencies.isUp("redis"));
      cancellations.stop();
      await Promise.all([closeRedis(connection, config.dependencyTimeoutMs), closeRedis(cancelConnection, config.dependencyTimeoutMs)]);
    },
  };
}

let draining = false;
async function shutdown(signal: string): Promise<void> {
  if (draining) return;
  draining = true;
  logger.info({ signal }, "draining: finishing running tasks");
  setStatus("draining");
  const deadline = setTimeout(() => {
    logger.error("running tasks did not finish in time; they will be handed to another worker");
    process.exit(1);
  }, config.shutdownTimeoutMs);
  deadline.unref();
  await source.close();
  heartbeat?.stop();
  // Give the last reports a moment to be acknowledged before the connection goes.
  await new Promise((resolve) => setTimeout(resolve, 100));
  stopping = true;
  socket.close();
  dependencies.stop();
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));
