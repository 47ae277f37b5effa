/**
 * A standalone pool worker process:
 *   WORKER_TOKEN=<pools:work jwt> npm run worker -- --pool <poolId> [--handlers ./my-handlers.ts]
 * Takes the pool's tasks from BullMQ, reports every step to Switchyard over Socket.IO, and reports its own
 * status (idle/busy/error/draining) and heartbeats.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { Redis } from "ioredis";
import { io } from "socket.io-client";
import { createLogger } from "../observability/logger.js";
import type { ReportedWorkerStatus, WorkerWelcome } from "../protocol/events.js";
import type { WorkerSocket } from "./socket-reporter.js";
import { CancellationListener } from "./cancellations.js";
import { loadWorkerConfig, WorkerConfigError, type WorkerConfig } from "./config.js";
import { builtinHandlers, type TaskHandler } from "./handlers.js";
import { PoolWorker } from "./pool-worker.js";
import { SocketTaskReporter } from "./socket-reporter.js";
import { RedisKeys } from "../jobs/redis-keys.js";

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

/** Custom handlers: a module exporting `handlers` (or a default export) mapping task types to functions. */
async function loadHandlers(modulePath: string | undefined): Promise<Record<string, TaskHandler>> {
  if (!modulePath) return builtinHandlers;
  const module = (await import(pathToFileURL(path.resolve(modulePath)).href)) as { handlers?: unknown; default?: unknown };
  const custom = (module.handlers ?? module.default) as Record<string, unknown> | undefined;
  if (!custom || typeof custom !== "object") throw new Error(`${modulePath} must export "handlers": { [type]: async (payload, ctx) => result }`);
  for (const [type, handler] of Object.entries(custom)) {
    if (typeof handler !== "function") throw new Error(`${modulePath}: handler "${type}" is not a function`);
  }
  return { ...builtinHandlers, ...(custom as Record<string, TaskHandler>) };
}

const config = readConfig();
const keys = new RedisKeys(config.redisPrefix);
const workerId = config.workerId ?? `${hostname().replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 60)}-${process.pid}-${randomBytes(3).toString("hex")}`;
const logger = createLogger({ level: config.logLevel, nodeId: `worker:${workerId}` });
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
let heartbeat: NodeJS.Timeout | undefined;

function sendStatus(): void {
  if (!socket.connected) return; // sent again on the next connect
  socket
    .timeout(5000)
    .emitWithAck("worker.status", detail === undefined ? { status } : { status, detail })
    .then((ack: { ok: boolean; error?: { message: string } }) => {
      if (!ack.ok) logger.warn({ error: ack.error }, "status refused");
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
socket.on("worker.welcome", (welcome: WorkerWelcome) => {
  clearInterval(heartbeat);
  heartbeat = setInterval(() => {
    if (socket.connected) socket.timeout(5000).emitWithAck("worker.heartbeat", {}).catch(() => undefined);
  }, welcome.heartbeatIntervalMs);
});
socket.on("worker.rejected", (error: { code: string; message: string }) => {
  logger.fatal({ error }, "the server refused this worker");
  process.exit(1);
});
socket.on("connect_error", (error: Error & { data?: { code?: string } }) => {
  logger.warn({ err: error.message, code: error.data?.code }, "cannot connect");
  if (error.data?.code === "TOKEN_EXPIRED" || error.data?.code === "TOKEN_INVALID" || error.data?.code === "CLAIMS_INVALID") {
    logger.fatal("the token is not accepted; mint a new one");
    process.exit(1);
  }
});
socket.on("disconnect", (reason) => logger.warn({ reason }, "disconnected; reconnecting"));
socket.on("session.expired", () => {
  logger.fatal("token expired; mint a new one");
  process.exit(1);
});

const connection = new Redis(config.redisUrl, { maxRetriesPerRequest: null, connectionName: `worker:${workerId}` });
connection.on("error", (error: Error) => {
  logger.warn({ err: error.message }, "redis error");
  setStatus("error", `redis: ${error.message}`);
});
connection.on("ready", () => {
  if (status === "error") setStatus(worker.busy ? "busy" : "idle");
});
const cancellations = new CancellationListener(new Redis(config.redisUrl, { connectionName: `worker:${workerId}:cancel` }), keys, logger);
const worker = new PoolWorker({
  connection,
  keys,
  tenantId: config.tenantId,
  poolId: config.poolId,
  workerId,
  handlers,
  reporter: new SocketTaskReporter(socket, { ackTimeoutMs: 5000 }),
  logger,
  concurrency: config.concurrency,
  backoffMs: config.backoffMs,
  lockDurationMs: config.lockDurationMs,
  stalledIntervalMs: Math.max(1000, Math.floor(config.lockDurationMs / 2)),
});
cancellations.add(worker);
worker.on("status", (next: "idle" | "busy") => setStatus(next));
logger.info({ workerId, pool: config.poolId, tenant: config.tenantId, types: Object.keys(handlers) }, "pool worker started");

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, "draining: finishing running tasks");
  setStatus("draining");
  const deadline = setTimeout(() => {
    logger.error("running tasks did not finish in time; BullMQ will hand them to another worker");
    process.exit(1);
  }, config.shutdownTimeoutMs);
  deadline.unref();
  await worker.close();
  await cancellations.close();
  clearInterval(heartbeat);
  // Give the last reports a moment to be acknowledged before the connection goes.
  await new Promise((resolve) => setTimeout(resolve, 100));
  socket.close();
  await connection.quit().catch(() => undefined);
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));
