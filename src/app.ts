import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Express } from "express";
import type { Config } from "./config.js";
import { ResourceDirectory } from "./domains/resources.js";
import { TenantDirectory } from "./domains/tenants.js";
import type { EventLogObserver } from "./events/event-log.js";
import { EventLogReader } from "./events/event-log-reader.js";
import { EventLogWriter } from "./events/event-log-writer.js";
import { describeRedis, type RedisClient } from "./jobs/redis-connection.js";
import { dependencyChecks, type DependencyChecks } from "./http/health.js";
import { clusterReadings } from "./http/cluster-readings.js";
import { createLogger, type Logger } from "./observability/logger.js";
import { redactUrl } from "./observability/redact.js";
import { wireAccess } from "./wiring/access.js";
import { wireEvents } from "./wiring/events.js";
import { wireHttp } from "./wiring/http.js";
import { wireInfrastructure } from "./wiring/infrastructure.js";
import { wireRealtime } from "./wiring/realtime.js";
import { wireTasks } from "./wiring/tasks.js";
import { wireWorkers } from "./wiring/workers.js";

/** How long start() gives Redis to connect before the node starts anyway (and says so on /ready). */
const REDIS_WAIT_AT_START_MS = 3000;

/**
 * The composition root: builds every part from the Config (one wiring function per domain, in src/wiring/) and
 * owns their lifecycle: the order in which they start and stop is here, in one place.
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
    const logger = createLogger({ level: config.logLevel, nodeId: config.nodeId, format: config.logFormat });
    this.logger = logger;
    const infra = wireInfrastructure(config, logger);
    const { deadlineMs, status, redis } = infra;
    this.redis = redis;
    const { prisma, sql } = infra.database;
    const access = wireAccess(config, infra, logger);
    const tenants = new TenantDirectory(prisma);
    const logObserver: EventLogObserver = {
      timeQuery: infra.metrics.timeQuery,
      batchRows: (rows) => infra.metrics.eventLogBatchRows.observe(rows),
    };
    const eventLog = new EventLogReader(prisma, sql, logObserver);
    const resources = new ResourceDirectory(prisma, tenants);
    const store = { tenants, eventLog, resources };

    this.httpServer = config.tls ? createHttpsServer({ cert: config.tls.cert, key: config.tls.key }) : createHttpServer();
    // Express must be the server's request listener before Socket.IO attaches: Socket.IO wraps the existing
    // listeners so that /socket.io/ requests never reach Express. The app itself is built below.
    const express: { app?: Express } = {};
    this.httpServer.on("request", (req, res) => {
      express.app?.(req, res);
    });
    const live = wireRealtime(config, infra, access, store, this.httpServer, logger);
    const events = wireEvents(config, infra, { reader: eventLog, writer: new EventLogWriter(sql, logObserver) }, live.realtime, logger);
    const work = wireTasks(config, infra, store, events.publisher, logger);
    this.checks = dependencyChecks(redis, prisma, deadlineMs, status);
    infra.metrics.readAtScrape(clusterReadings({ checks: this.checks, prisma, sql, queues: work.queues, deadlineMs, logger }));
    const workers = wireWorkers(config, infra, resources, events.publisher, work, live, logger);
    express.app = wireHttp(config, infra, { access, store, live, events, work, workers }, () => this.shuttingDown, logger);

    const { embedded, hub } = workers;
    this.startHooks.push(
      // Revocations are known before the node listens: no token revoked earlier is admitted after a start.
      () => access.revocations.start(),
      async () => access.connections.start(),
      async () => live.nodeReadings.start(),
      async () => events.publisher.startRelay(),
      () =>
        work.runningSlots
          .setLimit(config.limits.maxRunningTasksPerTenant)
          .catch((error: unknown) => status.report(error, "could not record TENANT_MAX_RUNNING_TASKS")),
      async () => work.schedules.start(work.bullConnection),
      async () => work.reconciler.start(),
      async () => work.autoscaler.start(),
      async () => events.retention.start(),
      async () => workers.service.start(),
      async () => embedded?.start(),
    );

    // Order matters: clients are told first, then running tasks finish (their events still reach other
    // nodes through the adapter's Redis client), then connections close. The whole stop fits in
    // SHUTDOWN_TIMEOUT_MS: running tasks get what is left once one dependency deadline is kept for closing.
    const drainBudgetMs = Math.max(config.shutdownTimeoutMs - deadlineMs, config.shutdownTimeoutMs / 2);
    this.stopHooks.push(
      // Out of the nodes list first: a node on its way out is not one to look at.
      () => live.nodeReadings.stop(),
      async () => workers.service.stop(),
      async () => work.reconciler.stop(),
      async () => work.autoscaler.stop(),
      // No new due times are taken; one being turned into a task finishes (BullMQ's close waits for it).
      () => work.schedules.stop(deadlineMs),
      async () => events.retention.stop(),
      () => live.realtime.close(config.nodeId),
      () => access.connections.stop(),
      // While Redis is away BullMQ could not record the end of a running job anyway: not worth waiting for.
      () => this.withinBudget(Promise.all([embedded?.close(!status.isUp("redis")), hub.close(!status.isUp("redis"))]), drainBudgetMs),
      async () => workers.cancellations.stop(),
      () => access.revocations.stop(),
      async () => events.publisher.stopRelay(),
      // From here on connections close on purpose, which is no outage to log.
      async () => status.stop(),
      () => Promise.allSettled([work.queues.close(), infra.close()]),
    );
  }

  async start(): Promise<AddressInfo> {
    // Give Redis a moment so the first /ready after start is truthful; a node without Redis still starts
    // (and says so on /ready) rather than crash-looping.
    await this.waitForRedis(REDIS_WAIT_AT_START_MS);
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
    const shownHost = ["0.0.0.0", "::"].includes(address.address)
      ? "localhost"
      : address.address.includes(":")
        ? `[${address.address}]`
        : address.address;
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
