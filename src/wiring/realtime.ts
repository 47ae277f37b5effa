import { readFileSync } from "node:fs";
import type { Server as HttpServer } from "node:http";
import type { Config } from "../config.js";
import type { ResourceDirectory } from "../domains/resources.js";
import type { EventLogReader } from "../events/event-log-reader.js";
import { MAX_WAITING_REQUESTS_PER_TENANT, TenantFairShare } from "../limits/tenant-fair-share.js";
import type { Logger } from "../observability/logger.js";
import { NodeReadings } from "../realtime/node-readings.js";
import { TenantDeliveries } from "../observability/tenant-deliveries.js";
import { Realtime } from "../realtime/server.js";
import type { Access } from "./access.js";
import type { Infrastructure } from "./infrastructure.js";

/** The server's version, as package.json says (two levels up from src/wiring/ and from dist/wiring/ alike). */
function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: string }).version ?? "unknown";
  } catch {
    return "unknown";
  }
}

/** The Socket.IO side of a node, the share of its work each tenant gets, and what it tells other nodes about itself. */
export interface Live {
  realtime: Realtime;
  fairShare: TenantFairShare;
  nodeReadings: NodeReadings;
}

export function wireRealtime(
  config: Config,
  infra: Infrastructure,
  access: Access,
  store: { resources: ResourceDirectory; eventLog: EventLogReader },
  httpServer: HttpServer,
  logger: Logger,
): Live {
  const { metrics, keys, cluster, status, redis } = infra;
  const { revocations } = access;
  // Deliveries are counted where a single Redis's tick broadcast hands them out; a Redis Cluster has no such place.
  const deliveries = cluster ? undefined : new TenantDeliveries();
  // The node's database-bound work (requests, task reports, subscribes' reads of the log), shared among tenants in turn.
  const fairShare = new TenantFairShare(
    config.limits.nodeWorkConcurrency,
    config.limits.tenantWorkConcurrency,
    MAX_WAITING_REQUESTS_PER_TENANT,
    (running, waiting) => {
      metrics.tenantWork.set({ state: "running" }, running);
      metrics.tenantWork.set({ state: "waiting" }, waiting);
    },
  );
  const realtime = new Realtime({
    httpServer,
    verifyToken: access.verifyToken,
    isRevoked: (principal) => revocations.list.isRevoked(principal),
    pubClient: infra.redisClient("adapter-pub"),
    subClient: infra.redisClient("adapter-sub"),
    sharded: cluster,
    keys,
    corsOrigins: config.corsOrigins,
    clockToleranceS: config.jwt.clockToleranceS,
    maxPayloadBytes: config.limits.maxPayloadBytes,
    connections: access.connections,
    socketEventsPerSecond: config.limits.socketEventsPerSecond,
    workerEventsPerSecond: config.limits.workerEventsPerSecond,
    connectTimeoutMs: config.limits.connectTimeoutMs,
    compression: config.compression,
    maxSocketBufferBytes: config.limits.maxSocketBufferBytes,
    slowConsumerTimeoutMs: config.limits.slowConsumerTimeoutMs,
    roomCheckIntervalMs: config.limits.roomCheckIntervalMs,
    metrics,
    logger,
    deliveries,
    subscriptions: {
      resources: store.resources,
      eventLog: store.eventLog,
      maxRoomsPerSocket: config.limits.maxRoomsPerSocket,
      failures: status,
      fairShare,
    },
  });
  const nodeReadings = new NodeReadings(realtime.io, deliveries, redis, keys, logger, { nodeId: config.nodeId, version: packageVersion() });
  revocations.onRevoked((revocation) => {
    const ended = realtime.endRevokedSessions(revocation);
    if (ended > 0) logger.info({ tenant: revocation.tenantId, kind: revocation.kind, sockets: ended }, "sessions of a revoked token ended");
  });
  return { realtime, fairShare, nodeReadings };
}
