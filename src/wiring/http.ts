import type { Express } from "express";
import type { Config } from "../config.js";
import { TaskBulkActions } from "../domains/tasks/bulk.js";
import type { ResourceDirectory } from "../domains/resources.js";
import type { EventLogReader } from "../events/event-log-reader.js";
import { createHttpApp } from "../http/app.js";
import { eventRoutes } from "../http/routes/events.js";
import { nodeRoutes } from "../http/routes/nodes.js";
import { poolRoutes } from "../http/routes/pools.js";
import { publishRoutes } from "../http/routes/publish.js";
import { scheduleRoutes } from "../http/routes/schedules.js";
import { taskRoutes } from "../http/routes/tasks.js";
import { tokenRoutes } from "../http/routes/tokens.js";
import { workflowRoutes } from "../http/routes/workflows.js";
import type { Logger } from "../observability/logger.js";
import type { Access } from "./access.js";
import type { Events } from "./events.js";
import type { Infrastructure } from "./infrastructure.js";
import type { Live } from "./realtime.js";
import type { Work } from "./tasks.js";
import type { Workers } from "./workers.js";

/** The REST API, health endpoints and metrics, as one Express app. */
export function wireHttp(
  config: Config,
  infra: Infrastructure,
  parts: {
    access: Access;
    store: { resources: ResourceDirectory; eventLog: EventLogReader };
    live: Live;
    events: Events;
    work: Work;
    workers: Workers;
  },
  isShuttingDown: () => boolean,
  logger: Logger,
): Express {
  const { metrics, deadlineMs, status, redis } = infra;
  const { prisma } = infra.database;
  const { access, store, live, events, work, workers } = parts;
  const { resources, eventLog } = store;
  const maxResponseBytes = config.limits.maxResponseBytes;
  return createHttpApp({
    health: {
      nodeId: config.nodeId,
      redis,
      prisma,
      metrics,
      deadlineMs,
      failures: status,
      presence: () => workers.service.presence,
      isShuttingDown,
      ...(config.metrics.token !== undefined ? { metricsToken: config.metrics.token } : {}),
    },
    verifyToken: access.verifyToken,
    logger,
    metrics,
    failures: status,
    maxPayloadBytes: config.limits.maxPayloadBytes,
    corsOrigins: config.corsOrigins,
    requestRate: access.requestRate,
    fairShare: live.fairShare,
    api: {
      // Every list and history page is bounded in bytes as well as rows (MAX_RESPONSE_BYTES).
      pools: poolRoutes(work.pools, eventLog, maxResponseBytes),
      tasks: taskRoutes(work.tasks, new TaskBulkActions(prisma, work.tasks), maxResponseBytes),
      schedules: scheduleRoutes(work.schedules, maxResponseBytes),
      workflows: workflowRoutes(work.workflows, eventLog, maxResponseBytes),
      events: [eventRoutes(eventLog, resources, maxResponseBytes), publishRoutes(events.publisher, resources)],
      tokens: tokenRoutes(access.revocations),
      nodes: nodeRoutes(live.nodeReadings),
    },
  });
}
