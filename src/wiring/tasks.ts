import type { Config } from "../config.js";
import { PoolAutoscaler } from "../domains/pools/autoscaler.js";
import { PoolService } from "../domains/pools/service.js";
import type { ResourceDirectory } from "../domains/resources.js";
import { ScheduleFiring } from "../domains/schedules/firing.js";
import { ScheduleService } from "../domains/schedules/service.js";
import { TaskJobs } from "../domains/tasks/jobs.js";
import { TaskReconciler } from "../domains/tasks/reconciler.js";
import { TaskService } from "../domains/tasks/service.js";
import type { TenantDirectory } from "../domains/tenants.js";
import { WorkflowService } from "../domains/workflows/service.js";
import type { EventPublisher } from "../events/publisher.js";
import { TaskQueues, TaskTypeRegistry } from "../jobs/queues.js";
import type { RedisClient } from "../jobs/redis-connection.js";
import { TenantRunningSlots } from "../jobs/tenant-running-slots.js";
import type { Logger } from "../observability/logger.js";
import type { Infrastructure } from "./infrastructure.js";

/** Tasks, pools, workflows and schedules, and the cluster-wide loops that keep PostgreSQL and BullMQ in step. */
export interface Work {
  queues: TaskQueues;
  taskTypes: TaskTypeRegistry;
  pools: PoolService;
  runningSlots: TenantRunningSlots;
  taskJobs: TaskJobs;
  tasks: TaskService;
  workflows: WorkflowService;
  schedules: ScheduleService;
  reconciler: TaskReconciler;
  autoscaler: PoolAutoscaler;
  /** BullMQ workers block on their connection, so they get their own. */
  bullConnection: RedisClient;
}

export function wireTasks(
  config: Config,
  infra: Infrastructure,
  store: { tenants: TenantDirectory; resources: ResourceDirectory },
  events: EventPublisher,
  logger: Logger,
): Work {
  const { metrics, keys, deadlineMs, status, redis } = infra;
  const { prisma, sql } = infra.database;
  const bullConnection = infra.redisClient("bullmq");
  const queues = new TaskQueues(redis, keys, deadlineMs);
  const pools = new PoolService(prisma, store.tenants, events, queues);
  const taskTypes = new TaskTypeRegistry(redis, keys);
  // Workers of every process read the limit from Redis when they take a running slot.
  const runningSlots = new TenantRunningSlots(redis, keys, config.tasks.lockDurationMs);
  const taskJobs = new TaskJobs(prisma, redis, queues, keys, status, { backoffMs: config.tasks.backoffMs });
  const tasks = new TaskService(prisma, sql, store.resources, taskJobs, taskTypes, events, logger, metrics);
  const workflows = new WorkflowService(prisma, tasks, events, logger);
  // Every node fires schedules: its worker on the schedule queue takes due times of every tenant.
  const schedules = new ScheduleService(prisma, tasks, events, new ScheduleFiring(redis, keys, deadlineMs), redis, logger, metrics, {
    keys,
    failures: status,
    reconcileIntervalMs: config.tasks.reconcileIntervalMs,
  });
  const reconciler = new TaskReconciler(prisma, redis, tasks, workflows, queues, metrics, logger, {
    keys,
    failures: status,
    intervalMs: config.tasks.reconcileIntervalMs,
    minAgeMs: config.tasks.reconcileMinAgeMs,
  });
  // Pools that ask for it (targetQueuedPerWorker) get desiredWorkers from their queues, one node per interval.
  const autoscaler = new PoolAutoscaler(prisma, queues, pools, redis, {
    lockKey: keys.autoscaleLock,
    intervalMs: config.tasks.autoscaleIntervalMs,
    failures: status,
    logger,
  });
  return { queues, taskTypes, pools, runningSlots, taskJobs, tasks, workflows, schedules, reconciler, autoscaler, bullConnection };
}
