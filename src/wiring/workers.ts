import type { Config } from "../config.js";
import { WorkerService } from "../domains/pools/workers.js";
import type { ResourceDirectory } from "../domains/resources.js";
import { DEFAULT_POOL_ID } from "../domains/tenants.js";
import { toAppError } from "../errors.js";
import type { EventPublisher } from "../events/publisher.js";
import type { TenantFairShare } from "../limits/tenant-fair-share.js";
import type { Logger } from "../observability/logger.js";
import { attachPoolWorker } from "../realtime/pool-workers.js";
import type { Realtime } from "../realtime/server.js";
import { CancellationListener } from "../worker/cancellations.js";
import { EmbeddedWorkers } from "../worker/embedded.js";
import { HubPools } from "../worker/hub-pools.js";
import { ReportNotDelivered, type TaskReporter } from "../worker/pool-worker.js";
import type { Infrastructure } from "./infrastructure.js";
import type { Work } from "./tasks.js";

/** Pool workers: the standalone ones' presence, the hub's for hub-mode workers, and the embedded one. */
export interface Workers {
  service: WorkerService;
  hub: HubPools;
  /** Set with EMBEDDED_WORKER. */
  embedded: EmbeddedWorkers | undefined;
  cancellations: CancellationListener;
}

export function wireWorkers(
  config: Config,
  infra: Infrastructure,
  resources: ResourceDirectory,
  events: EventPublisher,
  work: Work,
  live: { realtime: Realtime; fairShare: TenantFairShare },
  logger: Logger,
): Workers {
  const { metrics, keys, status, redis } = infra;
  const { tasks } = work;
  const { fairShare } = live;
  const workers = new WorkerService(infra.database.prisma, redis, resources, events, work.queues, work.taskTypes, logger, {
    keys,
    nodeId: config.nodeId,
    heartbeatIntervalMs: config.workers.heartbeatIntervalMs,
    heartbeatTimeoutMs: config.workers.heartbeatTimeoutMs,
    maxPayloadBytes: config.limits.maxPayloadBytes,
    disconnectGraceMs: config.workers.disconnectGraceMs,
    failures: status,
    heartbeatCounted: (written) => metrics.workerHeartbeats.inc({ outcome: written ? "written" : "absorbed" }),
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
  const cancellations = new CancellationListener(infra.redisClient("cancellations"), keys, logger);
  const inProcessWorkers = {
    connection: work.bullConnection,
    keys,
    nodeId: config.nodeId,
    reporter: inProcess,
    cancellations,
    logger,
    failures: status,
    backoffMs: config.tasks.backoffMs,
    lockDurationMs: config.tasks.lockDurationMs,
    // A result is stored and sent to every subscriber: the same bound as what the node accepts from a socket.
    maxPayloadBytes: () => config.limits.maxPayloadBytes,
  };
  const hub = new HubPools(inProcessWorkers);
  live.realtime.onConnection("pools", (socket) =>
    attachPoolWorker(socket, { workers, tasks, fairShare, logger, metrics, failures: status, hub }),
  );
  let embedded: EmbeddedWorkers | undefined;
  if (config.embeddedWorker) {
    const worker = new EmbeddedWorkers({ ...inProcessWorkers, redis, concurrency: config.tasks.concurrency });
    work.taskJobs.onPoolActive((tenantId, poolId) => {
      if (poolId === DEFAULT_POOL_ID) worker.ensure(tenantId);
    });
    embedded = worker;
  }
  return { service: workers, hub, embedded, cancellations };
}
