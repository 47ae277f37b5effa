import { readFileSync } from "node:fs";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Express } from "express";
import { createTokenVerifier } from "./auth/verify.js";
import type { Config } from "./config.js";
import { createDatabase } from "./db/client.js";
import { withDeadline } from "./dependencies/deadline.js";
import { closeRedis, createRedisClient, type RedisRole } from "./jobs/redis-clients.js";
import { DependencyStatus } from "./dependencies/status.js";
import { poolRoutes } from "./http/routes/pools.js";
import { PoolService } from "./domains/pools/service.js";
import { ResourceDirectory } from "./domains/resources.js";
import { TenantDirectory } from "./domains/tenants.js";
import { EventLogReader } from "./events/event-log-reader.js";
import { EventLogWriter } from "./events/event-log-writer.js";
import { EventPublisher } from "./events/publisher.js";
import { eventRoutes } from "./http/routes/events.js";
import { publishRoutes } from "./http/routes/publish.js";
import { EventRetention } from "./events/retention.js";
import { TaskQueues, TaskTypeRegistry } from "./jobs/queues.js";
import { RedisKeys } from "./jobs/redis-keys.js";
import { describeRedis, type RedisClient } from "./jobs/redis-connection.js";
import { taskRoutes } from "./http/routes/tasks.js";
import { TaskBulkActions } from "./domains/tasks/bulk.js";
import { TaskService } from "./domains/tasks/service.js";
import { TaskJobs } from "./domains/tasks/jobs.js";
import { workflowRoutes } from "./http/routes/workflows.js";
import { scheduleRoutes } from "./http/routes/schedules.js";
import { ScheduleFiring } from "./domains/schedules/firing.js";
import { ScheduleService } from "./domains/schedules/service.js";
import { WorkflowService } from "./domains/workflows/service.js";
import { DEFAULT_POOL_ID } from "./domains/tenants.js";
import { CancellationListener } from "./worker/cancellations.js";
import { ReportNotDelivered, type TaskReporter } from "./worker/pool-worker.js";
import { TaskReconciler } from "./domains/tasks/reconciler.js";
import { toAppError } from "./errors.js";
import { EmbeddedWorkers } from "./worker/embedded.js";
import { HubPools } from "./worker/hub-pools.js";
import { PoolAutoscaler } from "./domains/pools/autoscaler.js";
import { TenantRunningSlots } from "./jobs/tenant-running-slots.js";
import { createHttpApp } from "./http/app.js";
import { dependencyChecks, type DependencyChecks } from "./http/health.js";
import { clusterReadings } from "./http/cluster-readings.js";
import { createLogger, type Logger } from "./observability/logger.js";
import { redactUrl } from "./observability/redact.js";
import { createMetrics } from "./observability/metrics.js";
import { Realtime } from "./realtime/server.js";
import { attachPoolWorker } from "./realtime/pool-workers.js";
import { WorkerService } from "./domains/pools/workers.js";
import { TokenRevocations } from "./domains/token-revocations.js";
import { tokenRoutes } from "./http/routes/tokens.js";
import { TenantConnections } from "./limits/tenant-connections.js";
import { TenantRequestRate } from "./limits/tenant-request-rate.js";
import { TenantFairShare } from "./limits/tenant-fair-share.js";
import { NodeReadings } from "./realtime/node-readings.js";
import { TenantDeliveries } from "./observability/tenant-deliveries.js";
import { nodeRoutes } from "./http/routes/nodes.js";

/** The server's version, as package.json says (one level up from src/ and from dist/ alike). */
function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version?: string }).version ?? "unknown";
  } catch {
    return "unknown";
  }
}

/** How often each node publishes its reading for GET /api/v1/nodes. */
const NODE_READING_INTERVAL_MS = 2000;
/** Requests of one tenant waiting for its turn on one node at most; beyond, 429 (they would only wait longer). */
const MAX_WAITING_REQUESTS_PER_TENANT = 1000;

/** Due times one node turns into tasks at once: each is one group-committed insert and the job it adds. */
const SCHEDULE_CONCURRENCY = 50;

/**
 * The composition root: builds every part from the Config and owns their lifecycle.
 * Nothing below this file reads the environment or creates its own connections.
 */
export class App {
  readonly logger: Logger;
  /** The Redis and PostgreSQL checks behind /ready (and main.ts's word at start on what is not ready). */
  readonly checks: DependencyChecks;
  private readonly httpServer: HttpServer;
  private readonly stopHooks: Array<() => Promise<unknown>> = [];
  private readonly startHooks: Array<() => Promise<unknown>> = [];
  private shuttingDown = false;
  private readonly redis: RedisClient;

  constructor(readonly config: Config) {
    this.logger = createLogger({ level: config.logLevel, nodeId: config.nodeId, format: config.logFormat });
    const metrics = createMetrics(config.nodeId, { tenantLabels: config.metrics.tenantLabels });
    const cluster = config.redis.clusterNodes !== undefined;
    const keys = new RedisKeys(config.redisPrefix, { cluster });
    const deadlineMs = config.dependencyTimeoutMs;
    const status = new DependencyStatus(this.logger, { deadlineMs, probeIntervalMs: 1000 });
    const redisClients: RedisClient[] = [];
    // Every connection to REDIS_URL, or to the Redis Cluster of REDIS_CLUSTER_NODES (jobs/redis-connection.ts).
    const redisClient = (role: RedisRole): RedisClient => {
      const client = createRedisClient(config.redis, role, { owner: config.nodeId, deadlineMs, status });
      redisClients.push(client);
      return client;
    };
    // Commands of request paths (and BullMQ's producer side): they fail fast while Redis is away, so /ready and
    // requests answer at once. How each connection behaves is in dependencies/redis-clients.ts.
    const redis = redisClient("commands");
    this.redis = redis;
    const pubClient = redisClient("adapter-pub");
    const subClient = redisClient("adapter-sub");
    const revocationSubscriber = redisClient("revocations");
    // Limits get their own connection, so that their deadline-bound commands never queue behind others'.
    const limitsRedis = redisClient("limits");
    const database = createDatabase(config.databaseUrl, { deadlineMs, status });
    const { prisma, sql } = database;

    const revocations = new TokenRevocations(redis, revocationSubscriber, keys, this.logger, {
      retentionMs: (config.jwt.maxLifetimeS + config.jwt.clockToleranceS) * 1000,
      followIntervalMs: 5000,
      maxPerTenant: config.limits.maxRevocationsPerTenant,
      subscribeTimeoutMs: 3000,
    });
    // Revocations are known before the node listens: no token revoked earlier is admitted after a start.
    this.startHooks.push(() => revocations.start());
    const verifyToken = createTokenVerifier(config.jwt, revocations.list);
    const tenants = new TenantDirectory(prisma);
    const logObserver = { timeQuery: metrics.timeQuery, batchRows: (rows: number) => metrics.eventLogBatchRows.observe(rows) };
    const logReader = new EventLogReader(prisma, sql, logObserver);
    const resources = new ResourceDirectory(prisma, tenants);

    this.httpServer = config.tls ? createHttpsServer({ cert: config.tls.cert, key: config.tls.key }) : createHttpServer();
    // Express must be the server's request listener before Socket.IO attaches: Socket.IO wraps the existing
    // listeners so that /socket.io/ requests never reach Express. The app itself is built below.
    let http: Express | undefined;
    this.httpServer.on("request", (req, res) => http?.(req, res));
    const connections = new TenantConnections(limitsRedis, keys, this.logger, {
      nodeId: config.nodeId,
      limit: config.limits.maxConnectionsPerTenant,
      // A dead node's sockets stop counting as fast as a dead worker goes offline.
      liveForMs: config.workers.heartbeatTimeoutMs,
    });
    this.startHooks.push(async () => connections.start());
    // Deliveries are counted where a single Redis's tick broadcast hands them out; a Redis Cluster has no such place.
    const deliveries = cluster ? undefined : new TenantDeliveries();
    // The node's database-bound work (requests, task reports, subscribes' reads of the log), shared among tenants in turn.
    const fairShare = new TenantFairShare(config.limits.nodeWorkConcurrency, config.limits.tenantWorkConcurrency, MAX_WAITING_REQUESTS_PER_TENANT, (running, waiting) => {
      metrics.tenantWork.set({ state: "running" }, running);
      metrics.tenantWork.set({ state: "waiting" }, waiting);
    });
    const realtime = new Realtime({
      httpServer: this.httpServer,
      verifyToken,
      isRevoked: (principal) => revocations.list.isRevoked(principal),
      pubClient,
      subClient,
      sharded: cluster,
      keys,
      corsOrigins: config.corsOrigins,
      clockToleranceS: config.jwt.clockToleranceS,
      maxPayloadBytes: config.limits.maxPayloadBytes,
      connections,
      socketEventsPerSecond: config.limits.socketEventsPerSecond,
      workerEventsPerSecond: config.limits.workerEventsPerSecond,
      connectTimeoutMs: config.limits.connectTimeoutMs,
      maxSocketBufferBytes: config.limits.maxSocketBufferBytes,
      slowConsumerTimeoutMs: config.limits.slowConsumerTimeoutMs,
      roomCheckIntervalMs: config.limits.roomCheckIntervalMs,
      metrics,
      logger: this.logger,
      deliveries,
      subscriptions: {
        resources,
        eventLog: logReader,
        maxRoomsPerSocket: config.limits.maxRoomsPerSocket,
        failures: status,
        fairShare,
      },
    });
    const nodeReadings = new NodeReadings(realtime.io, deliveries, redis, keys, this.logger, {
      nodeId: config.nodeId,
      version: packageVersion(),
      intervalMs: NODE_READING_INTERVAL_MS,
    });
    this.startHooks.push(async () => nodeReadings.start());
    revocations.onRevoked((revocation) => {
      const ended = realtime.endRevokedSessions(revocation);
      if (ended > 0) this.logger.info({ tenant: revocation.tenantId, kind: revocation.kind, sockets: ended }, "sessions of a revoked token ended");
    });
    const events = new EventPublisher(prisma, new EventLogWriter(sql, logObserver), logReader, realtime.broadcast, metrics, this.logger, {
      relayAfterMs: config.events.outboxRelayAfterMs,
      relayIntervalMs: Math.max(250, Math.min(1000, Math.floor(config.events.outboxRelayAfterMs / 2))),
      failures: status,
    });
    this.startHooks.push(async () => events.startRelay());
    // BullMQ workers block on their connection, so they get their own.
    const bullConnection = redisClient("bullmq");
    const queues = new TaskQueues(redis, keys, deadlineMs);
    const pools = new PoolService(prisma, tenants, events, queues);
    const taskTypes = new TaskTypeRegistry(redis, keys);
    // Workers of every process read the limit from Redis when they take a running slot.
    const runningSlots = new TenantRunningSlots(redis, keys, config.tasks.lockDurationMs);
    this.startHooks.push(() =>
      runningSlots.setLimit(config.limits.maxRunningTasksPerTenant).catch((error: unknown) => status.report(error, "could not record TENANT_MAX_RUNNING_TASKS")),
    );
    const taskJobs = new TaskJobs(prisma, redis, queues, keys, status, { backoffMs: config.tasks.backoffMs });
    const tasks = new TaskService(prisma, sql, resources, taskJobs, taskTypes, events, this.logger, metrics);
    this.checks = dependencyChecks(redis, prisma, deadlineMs, status);
    metrics.readAtScrape(clusterReadings({ checks: this.checks, prisma, sql, queues, deadlineMs, logger: this.logger }));
    const workflows = new WorkflowService(prisma, tasks, events, this.logger);
    // Every node fires schedules: its worker on the schedule queue takes due times of every tenant.
    const schedules = new ScheduleService(prisma, tasks, events, new ScheduleFiring(redis, keys, deadlineMs), redis, this.logger, metrics, {
      keys,
      failures: status,
      reconcileIntervalMs: config.tasks.reconcileIntervalMs,
      concurrency: SCHEDULE_CONCURRENCY,
    });
    this.startHooks.push(async () => schedules.start(bullConnection));
    const reconciler = new TaskReconciler(prisma, redis, tasks, workflows, queues, metrics, this.logger, {
      keys,
      failures: status,
      intervalMs: config.tasks.reconcileIntervalMs,
      minAgeMs: config.tasks.reconcileMinAgeMs,
      batchSize: 2000,
      maxRequeues: 5,
    });
    this.startHooks.push(async () => reconciler.start());
    // Pools that ask for it (targetQueuedPerWorker) get desiredWorkers from their queues, one node per interval.
    const autoscaler = new PoolAutoscaler(prisma, queues, pools, redis, {
      lockKey: keys.autoscaleLock,
      intervalMs: config.tasks.autoscaleIntervalMs,
      failures: status,
      logger: this.logger,
    });
    this.startHooks.push(async () => autoscaler.start());
    const workers = new WorkerService(prisma, redis, resources, events, queues, taskTypes, this.logger, {
      keys,
      nodeId: config.nodeId,
      heartbeatIntervalMs: config.workers.heartbeatIntervalMs,
      heartbeatTimeoutMs: config.workers.heartbeatTimeoutMs,
      maxPayloadBytes: config.limits.maxPayloadBytes,
      disconnectGraceMs: config.workers.disconnectGraceMs,
      sweepIntervalMs: Math.min(1000, config.workers.heartbeatTimeoutMs),
      aggregateDelayMs: 500,
      failures: status,
      heartbeatCounted: (written) => metrics.workerHeartbeats.inc({ outcome: written ? "written" : "absorbed" }),
    });
    const retention = new EventRetention(sql, redis, this.logger, {
      keys,
      failures: status,
      maxAgeMs: config.events.retentionMs,
      maxPerRoom: config.events.retentionPerRoom,
      intervalMs: config.events.retentionIntervalMs,
      // Up to one interval (the cluster lock's lifetime), and never less than a request gets.
      statementTimeoutMs: Math.max(config.events.retentionIntervalMs, deadlineMs),
    });
    this.startHooks.push(async () => retention.start());
    this.startHooks.push(async () => workers.start());

    http = createHttpApp({
      health: {
        nodeId: config.nodeId,
        redis,
        prisma,
        metrics,
        deadlineMs,
        failures: status,
        presence: () => workers.presence,
        isShuttingDown: () => this.shuttingDown,
        ...(config.metrics.token !== undefined ? { metricsToken: config.metrics.token } : {}),
      },
      verifyToken,
      logger: this.logger,
      metrics,
      failures: status,
      maxPayloadBytes: config.limits.maxPayloadBytes,
      corsOrigins: config.corsOrigins,
      requestRate: new TenantRequestRate(limitsRedis, keys, config.limits.restRatePerTenant, this.logger),
      fairShare,
      api: {
        // Every list and history page is bounded in bytes as well as rows (MAX_RESPONSE_BYTES).
        pools: poolRoutes(pools, logReader, config.limits.maxResponseBytes),
        tasks: taskRoutes(tasks, new TaskBulkActions(prisma, tasks), config.limits.maxResponseBytes),
        schedules: scheduleRoutes(schedules, config.limits.maxResponseBytes),
        workflows: workflowRoutes(workflows, logReader, config.limits.maxResponseBytes),
        events: [eventRoutes(logReader, resources, config.limits.maxResponseBytes), publishRoutes(events, resources)],
        tokens: tokenRoutes(revocations),
        nodes: nodeRoutes(nodeReadings),
      },
    });

    // Workers in this process (embedded, and the hub's for hub-mode workers) report in process: a database that
    // cannot store the report now is "not delivered" (PoolWorker sends it again); a refusal (4xx) is final, as it
    // is for a standalone worker.
    const inProcess: TaskReporter = {
      report: async ({ tenantId, poolId }, report) => {
        try {
          return await fairShare.run(tenantId, () => tasks.applyReport(tenantId, poolId, report, { trusted: true }), false);
        } catch (error) {
          const appError = toAppError(error);
          if (appError.status >= 500) throw new ReportNotDelivered(`${appError.code}: ${appError.message}`, { cause: error });
          throw appError;
        }
      },
    };
    const cancellations = new CancellationListener(redisClient("cancellations"), keys, this.logger);
    const inProcessWorkers = {
      connection: bullConnection,
      keys,
      nodeId: config.nodeId,
      reporter: inProcess,
      cancellations,
      logger: this.logger,
      failures: status,
      backoffMs: config.tasks.backoffMs,
      lockDurationMs: config.tasks.lockDurationMs,
      stalledIntervalMs: Math.max(1000, Math.floor(config.tasks.lockDurationMs / 2)),
      // A result is stored and sent to every subscriber: the same bound as what the node accepts from a socket.
      maxPayloadBytes: () => config.limits.maxPayloadBytes,
    };
    const hub = new HubPools(inProcessWorkers);
    realtime.onConnection("pools", (socket) => attachPoolWorker(socket, { workers, tasks, fairShare, logger: this.logger, metrics, failures: status, hub }));
    let embedded: EmbeddedWorkers | undefined;
    if (config.embeddedWorker) {
      embedded = new EmbeddedWorkers({ ...inProcessWorkers, redis, concurrency: config.tasks.concurrency, syncIntervalMs: 2000 });
      const worker = embedded;
      taskJobs.onPoolActive((tenantId, poolId) => {
        if (poolId === DEFAULT_POOL_ID) worker.ensure(tenantId);
      });
      this.startHooks.push(() => worker.start());
    }

    // Order matters: clients are told first, then running tasks finish (their events still reach other
    // nodes through the adapter's Redis client), then connections close. The whole stop fits in
    // SHUTDOWN_TIMEOUT_MS: running tasks get what is left once one dependency deadline is kept for closing.
    const drainBudgetMs = Math.max(config.shutdownTimeoutMs - deadlineMs, config.shutdownTimeoutMs / 2);
    this.stopHooks.push(
      // Out of the nodes list first: a node on its way out is not one to look at.
      () => nodeReadings.stop(),
      async () => workers.stop(),
      async () => reconciler.stop(),
      async () => autoscaler.stop(),
      // No new due times are taken; one being turned into a task finishes (BullMQ's close waits for it).
      () => schedules.stop(deadlineMs),
      async () => retention.stop(),
      () => realtime.close(config.nodeId),
      () => connections.stop(),
      // While Redis is away BullMQ could not record the end of a running job anyway: not worth waiting for.
      () => this.withinBudget(Promise.all([embedded?.close(!status.isUp("redis")), hub.close(!status.isUp("redis"))]), drainBudgetMs),
      async () => cancellations.stop(),
      () => revocations.stop(),
      async () => events.stopRelay(),
      // From here on connections close on purpose, which is no outage to log.
      async () => status.stop(),
      // All at once, each within the deadline: a server that is down or frozen delays the exit by one deadline.
      () =>
        Promise.allSettled([
          queues.close(),
          withDeadline(database.close(), deadlineMs, "postgresql"),
          ...redisClients.map((client) => closeRedis(client, deadlineMs)),
        ]),
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
    // The one line an operator looks for: where to point a browser or a client, and what this node is wired to.
    const shownHost = ["0.0.0.0", "::"].includes(address.address) ? "localhost" : address.address.includes(":") ? `[${address.address}]` : address.address;
    this.logger.info(
      {
        port: address.port,
        host: address.address,
        url: `${this.config.tls ? "https" : "http"}://${shownHost}:${address.port}/`,
        nodeId: this.config.nodeId,
        redis: describeRedis(this.config.redis),
        postgres: redactUrl(this.config.databaseUrl),
      },
      "switchyard listening",
    );
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
    if ((this.redis.status as string) !== "ready") this.logger.warn({ url: describeRedis(this.config.redis) }, "redis not reachable yet");
  }

  private async withinBudget(work: Promise<unknown> | undefined, budgetMs: number): Promise<void> {
    if (!work) return;
    let timer: NodeJS.Timeout | undefined;
    const budget = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.logger.warn("in-flight tasks did not finish in time; BullMQ will hand them to another worker");
        resolve();
      }, budgetMs);
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
