import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Express } from "express";
import { Redis } from "ioredis";
import { createTokenVerifier } from "./auth/verify.js";
import type { Config } from "./config.js";
import { createDatabase } from "./db/client.js";
import { poolRoutes } from "./http/routes/pools.js";
import { PoolService } from "./domains/pools/service.js";
import { ResourceDirectory } from "./domains/resources.js";
import { TenantDirectory } from "./domains/tenants.js";
import { EventLog } from "./events/event-log.js";
import { EventPublisher } from "./events/publisher.js";
import { eventRoutes } from "./http/routes/events.js";
import { publishRoutes } from "./http/routes/publish.js";
import { EventRetention } from "./events/retention.js";
import { TaskQueues, TaskTypeRegistry } from "./jobs/queues.js";
import { RedisKeys } from "./jobs/redis-keys.js";
import { taskRoutes } from "./http/routes/tasks.js";
import { TaskService } from "./domains/tasks/service.js";
import { TaskJobs } from "./domains/tasks/jobs.js";
import { workflowRoutes } from "./http/routes/workflows.js";
import { WorkflowService } from "./domains/workflows/service.js";
import { DEFAULT_POOL_ID } from "./domains/tenants.js";
import { CancellationListener } from "./worker/cancellations.js";
import { ReportNotDelivered } from "./worker/pool-worker.js";
import { TaskReconciler } from "./domains/tasks/reconciler.js";
import { toAppError } from "./errors.js";
import { EmbeddedWorkers } from "./worker/embedded.js";
import { createHttpApp } from "./http/app.js";
import { createLogger, type Logger } from "./observability/logger.js";
import { createMetrics } from "./observability/metrics.js";
import { Realtime } from "./realtime/server.js";
import { attachPoolWorker } from "./realtime/pool-workers.js";
import { WorkerService } from "./domains/pools/workers.js";

/**
 * The composition root: builds every part from the Config and owns their lifecycle.
 * Nothing below this file reads the environment or creates its own connections.
 */
export class App {
  readonly logger: Logger;
  private readonly httpServer: HttpServer;
  private readonly stopHooks: Array<() => Promise<unknown>> = [];
  private readonly startHooks: Array<() => Promise<unknown>> = [];
  private shuttingDown = false;
  private readonly redis: Redis;

  constructor(readonly config: Config) {
    this.logger = createLogger({ level: config.logLevel, nodeId: config.nodeId });
    const metrics = createMetrics(config.nodeId);
    const keys = new RedisKeys(config.redisPrefix);
    // Commands fail fast instead of queueing while Redis is down, so /ready and requests answer at once.
    // The adapter's clients keep ioredis' offline queue: their SUBSCRIBE must survive a late Redis.
    const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectionName: `${config.nodeId}:cmd` });
    this.redis = redis;
    const pubClient = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, connectionName: `${config.nodeId}:pub` });
    const subClient = new Redis(config.redisUrl, { connectionName: `${config.nodeId}:sub` });
    for (const client of [redis, pubClient, subClient]) {
      client.on("error", (error: Error) => this.logger.warn({ err: error.message }, "redis connection error"));
    }
    const database = createDatabase(config.databaseUrl, (error) => this.logger.warn({ err: error.message }, "postgres connection error"));
    const { prisma, sql } = database;

    const verifyToken = createTokenVerifier(config.jwt);
    const tenants = new TenantDirectory(prisma);
    const eventLog = new EventLog(prisma, sql);
    const resources = new ResourceDirectory(prisma, tenants);

    this.httpServer = config.tls ? createHttpsServer({ cert: config.tls.cert, key: config.tls.key }) : createHttpServer();
    // Express must be the server's request listener before Socket.IO attaches: Socket.IO wraps the existing
    // listeners so that /socket.io/ requests never reach Express. The app itself is built below.
    let http: Express | undefined;
    this.httpServer.on("request", (req, res) => http?.(req, res));
    const realtime = new Realtime({
      httpServer: this.httpServer,
      verifyToken,
      pubClient,
      subClient,
      keys,
      corsOrigins: config.corsOrigins,
      maxPayloadBytes: config.limits.maxPayloadBytes,
      maxSocketBufferBytes: config.limits.maxSocketBufferBytes,
      metrics,
      logger: this.logger,
      subscriptions: {
        resources,
        eventLog,
        roomOpsPerSecond: config.limits.roomOpsPerSecond,
        maxRoomsPerSocket: config.limits.maxRoomsPerSocket,
      },
    });
    const events = new EventPublisher(prisma, eventLog, realtime.broadcast, metrics, this.logger, {
      relayAfterMs: config.events.outboxRelayAfterMs,
      relayIntervalMs: Math.max(250, Math.min(1000, Math.floor(config.events.outboxRelayAfterMs / 2))),
    });
    this.startHooks.push(async () => events.startRelay());
    const pools = new PoolService(prisma, tenants, events);

    // BullMQ workers block on their connection, so they get their own, with no per-request retry limit.
    const bullConnection = new Redis(config.redisUrl, { maxRetriesPerRequest: null, connectionName: `${config.nodeId}:bull` });
    bullConnection.on("error", (error: Error) => this.logger.warn({ err: error.message }, "redis connection error"));
    const queues = new TaskQueues(redis, keys);
    const taskTypes = new TaskTypeRegistry(redis, keys);
    const taskJobs = new TaskJobs(prisma, redis, queues, keys, this.logger, { backoffMs: config.tasks.backoffMs });
    const tasks = new TaskService(prisma, sql, resources, taskJobs, taskTypes, events, this.logger);
    const workflows = new WorkflowService(prisma, tasks, events, this.logger);
    const reconciler = new TaskReconciler(prisma, redis, tasks, workflows, queues, metrics, this.logger, {
      keys,
      intervalMs: config.tasks.reconcileIntervalMs,
      minAgeMs: config.tasks.reconcileMinAgeMs,
      batchSize: 2000,
      maxRequeues: 5,
    });
    this.startHooks.push(async () => reconciler.start());
    const workers = new WorkerService(prisma, redis, resources, events, queues, taskTypes, this.logger, {
      keys,
      nodeId: config.nodeId,
      heartbeatIntervalMs: config.workers.heartbeatIntervalMs,
      heartbeatTimeoutMs: config.workers.heartbeatTimeoutMs,
      disconnectGraceMs: config.workers.disconnectGraceMs,
      sweepIntervalMs: Math.min(1000, config.workers.heartbeatTimeoutMs),
      aggregateDelayMs: 500,
    });
    const retention = new EventRetention(prisma, redis, this.logger, {
      keys,
      maxAgeMs: config.events.retentionMs,
      maxPerRoom: config.events.retentionPerRoom,
      intervalMs: config.events.retentionIntervalMs,
    });
    this.startHooks.push(async () => retention.start());
    realtime.onConnection("pools", (socket) => attachPoolWorker(socket, { workers, tasks, logger: this.logger, metrics }));
    this.startHooks.push(async () => workers.start());

    http = createHttpApp({
      health: { nodeId: config.nodeId, redis, prisma, metrics, isShuttingDown: () => this.shuttingDown },
      verifyToken,
      logger: this.logger,
      metrics,
      maxPayloadBytes: config.limits.maxPayloadBytes,
      corsOrigins: config.corsOrigins,
      api: {
        pools: poolRoutes(pools),
        tasks: taskRoutes(tasks),
        workflows: workflowRoutes(workflows),
        events: [eventRoutes(eventLog, resources), publishRoutes(events, resources)],
      },
    });

    let embedded: EmbeddedWorkers | undefined;
    let cancellations: CancellationListener | undefined;
    if (config.embeddedWorker) {
      cancellations = new CancellationListener(
        new Redis(config.redisUrl, { connectionName: `${config.nodeId}:cancel` }),
        keys,
        this.logger,
      );
      embedded = new EmbeddedWorkers({
        connection: bullConnection,
        redis,
        keys,
        nodeId: config.nodeId,
        reporter: {
          // In process: a database that cannot store the report now is "not delivered" (PoolWorker sends it
          // again); a refusal (4xx) is final, as it is for a standalone worker.
          report: async ({ tenantId, poolId }, report) => {
            try {
              return await tasks.applyReport(tenantId, poolId, report, { trusted: true });
            } catch (error) {
              const appError = toAppError(error);
              if (appError.status >= 500) throw new ReportNotDelivered(`${appError.code}: ${(error as Error).message}`);
              throw appError;
            }
          },
        },
        cancellations,
        logger: this.logger,
        concurrency: config.tasks.concurrency,
        backoffMs: config.tasks.backoffMs,
        lockDurationMs: config.tasks.lockDurationMs,
        stalledIntervalMs: Math.max(1000, Math.floor(config.tasks.lockDurationMs / 2)),
        syncIntervalMs: 2000,
      });
      const worker = embedded;
      taskJobs.onPoolActive((tenantId, poolId) => {
        if (poolId === DEFAULT_POOL_ID) worker.ensure(tenantId);
      });
      this.startHooks.push(() => worker.start());
    }

    // Order matters: clients are told first, then running tasks finish (their events still reach other
    // nodes through the adapter's Redis client), then connections close.
    this.stopHooks.push(
      async () => workers.stop(),
      async () => reconciler.stop(),
      async () => retention.stop(),
      () => realtime.close(config.nodeId),
      () => this.withinShutdownBudget(embedded?.close()),
      async () => cancellations?.close(),
      () => queues.close(),
      async () => events.stopRelay(),
      () => database.close(),
      () => Promise.allSettled([redis.quit(), pubClient.quit(), subClient.quit(), bullConnection.quit()]),
    );
  }

  async start(): Promise<AddressInfo> {
    // Give Redis a moment so the first /ready after start is truthful; a node without Redis still starts
    // (and says so on /ready) rather than crash-looping.
    await this.waitForRedis(3000);
    for (const hook of this.startHooks) await hook();
    await new Promise<void>((resolve, reject) => {
      this.httpServer.once("error", reject);
      this.httpServer.listen(this.config.port, this.config.host, () => {
        this.httpServer.off("error", reject);
        resolve();
      });
    });
    const address = this.httpServer.address() as AddressInfo;
    this.logger.info({ port: address.port, host: address.address }, "switchyard listening");
    return address;
  }

  private async waitForRedis(timeoutMs: number): Promise<void> {
    if (this.redis.status === "ready") return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.redis.off("ready", done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.redis.once("ready", done);
    });
    if ((this.redis.status as string) !== "ready") this.logger.warn({ url: this.config.redisUrl.replace(/\/\/[^@]*@/, "//***@") }, "redis not reachable yet");
  }

  private async withinShutdownBudget(work: Promise<unknown> | undefined): Promise<void> {
    if (!work) return;
    let timer: NodeJS.Timeout | undefined;
    const budget = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.logger.warn("in-flight tasks did not finish in time; BullMQ will hand them to another worker");
        resolve();
      }, this.config.shutdownTimeoutMs);
    });
    await Promise.race([work, budget]);
    clearTimeout(timer);
  }

  /** Graceful stop: refuse new connections, tell clients to reconnect elsewhere, finish work, close connections. */
  async stop(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.logger.info("shutting down");
    for (const hook of this.stopHooks) {
      try {
        await hook();
      } catch (error) {
        this.logger.warn({ err: error }, "error during shutdown");
      }
    }
    this.logger.info("stopped");
  }
}
