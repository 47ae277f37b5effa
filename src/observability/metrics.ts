import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { NAMESPACES, type NamespaceName } from "../protocol/namespaces.js";
import { WORKER_STATUSES, type WorkerStatus } from "../protocol/workers.js";
import { TASK_STATUSES, type TaskStatus } from "../protocol/tasks.js";
import { ERROR_CODES } from "../protocol/errors.js";

/** The hot SQL whose latency is measured: a fixed set, so the label stays bounded. */
export const DB_OPERATIONS = ["task_write", "event_numbering", "replay_read", "head"] as const;
export type DbOperation = (typeof DB_OPERATIONS)[number];

/** Runs one query and records how long it took under `operation` (whether it succeeded or not). */
export type QueryTimer = <T>(operation: DbOperation, query: () => Promise<T>) => Promise<T>;

/** For parts built without metrics (tests and scripts that construct an event log writer or reader directly). */
export const untimedQuery: QueryTimer = (_operation, query) => query();

/** What the limiters count a refusal as (connections per tenant, REST per tenant, dashboard or worker socket events). */
export const RATE_LIMIT_KINDS = ["connections", "rest", "socket", "worker"] as const;
export type RateLimitKind = (typeof RATE_LIMIT_KINDS)[number];

/**
 * Why a connection was closed: it read nothing for SLOW_CONSUMER_TIMEOUT_MS while it had data waiting
 * (`read_timeout`); its unsent data passed HARD_LIMIT_FACTOR times the limit although live events had stopped
 * (`buffer_limit`: replies and pings of a client that keeps asking and never reads); or what it missed while it was
 * behind can no longer be sent from the log (`catch_up_failed`: past retention, or more than a replay sends).
 * Declared here, with the label it becomes, so the realtime layer that closes connections uses the same values.
 */
export const SLOW_CONSUMER_REASONS = ["read_timeout", "buffer_limit", "catch_up_failed"] as const;
export type SlowConsumerReason = (typeof SLOW_CONSUMER_REASONS)[number];
const WORKER_ROW_STATUSES: readonly WorkerStatus[] = [...WORKER_STATUSES, "offline"];
/** The reconciler's repairs, the `action` label (its routine workflow_advanced is not a repair and is not counted). */
export const RECONCILE_REPAIRS = ["requeued", "job_added", "settled_failed", "settled_completed", "lost"] as const;
export type ReconcileRepair = (typeof RECONCILE_REPAIRS)[number];
export const SCHEDULE_DUE_OUTCOMES = ["created", "repeated", "skipped"] as const;

/**
 * Figures that live in Redis or PostgreSQL rather than in this process, read when Prometheus scrapes.
 * `undefined` means "not known now" (the dependency failed or is too slow), exported as NaN: never a made-up 0.
 */
export interface ScrapeSources {
  redisUp(): Promise<boolean>;
  postgresUp(): Promise<boolean>;
  queueWaiting(): Promise<number | undefined>;
  workers(): Promise<Readonly<Record<WorkerStatus, number>> | undefined>;
}

export interface MetricsOptions {
  /** METRICS_TENANT_LABELS: a `tenant` label on the task and event counters (one series per tenant). */
  tenantLabels?: boolean;
}

/**
 * One registry per server instance, so tests and several apps in one process never share counters.
 *
 * Every label has a small fixed set of values (namespaces, statuses, kinds, operations), so the number of series
 * stays bounded however many tenants, rooms and tasks there are; the only exception is the opt-in tenant label.
 * Known label values start at 0, so `rate()` and `increase()` see the first event rather than a series appearing.
 */
export function createMetrics(nodeId: string, options: MetricsOptions = {}) {
  const tenantLabels = options.tenantLabels ?? false;
  const registry = new Registry();
  registry.setDefaultLabels({ node: nodeId });
  collectDefaultMetrics({ register: registry });
  let sources: ScrapeSources | undefined;

  const connectedSockets = new Gauge({
    name: "switchyard_connected_sockets",
    help: "Sockets connected to this node, by namespace",
    labelNames: ["namespace"] as const,
    registers: [registry],
  });
  const connections = new Counter({
    name: "switchyard_connections_total",
    help: "Sockets that connected to this node since it started, by namespace (authenticated namespace connections)",
    labelNames: ["namespace"] as const,
    registers: [registry],
  });
  const subscriptions = new Gauge({
    name: "switchyard_subscriptions",
    help: "Room subscriptions held by sockets on this node, by namespace",
    labelNames: ["namespace"] as const,
    registers: [registry],
  });
  const eventsPublished = new Counter<"namespace" | "tenant">({
    name: "switchyard_events_published_total",
    help: "Events published by this node (one per room delivery), by namespace",
    labelNames: tenantLabels ? ["namespace", "tenant"] : ["namespace"],
    registers: [registry],
  });
  const slowConsumerDisconnects = new Counter({
    name: "switchyard_slow_consumer_disconnects_total",
    help: "Connections this node closed as slow consumers, by reason: read_timeout (nothing read for SLOW_CONSUMER_TIMEOUT_MS while data waited), buffer_limit (unsent data past four times MAX_SOCKET_BUFFER_BYTES), catch_up_failed (what it missed while behind is no longer in the log)",
    labelNames: ["reason"] as const,
    registers: [registry],
  });
  const slowReaders = new Counter({
    name: "switchyard_slow_readers_total",
    help: "Times a connection's unsent data passed MAX_SOCKET_BUFFER_BYTES: its live events paused until it drained, then what it missed was sent from the log",
    registers: [registry],
  });
  const deliveryGaps = new Counter({
    name: "switchyard_delivery_gaps_total",
    help: "Gaps in a room's live events this node found (an event arrived ahead of missing ones, or the room's head in the log was past what it had delivered), by outcome: filled (the missing events were read from the log and delivered in order) or lost (the log no longer had them: the room's sockets were closed to resume from their cursors)",
    labelNames: ["namespace", "outcome"] as const,
    registers: [registry],
  });
  const deliveryGapEvents = new Counter({
    name: "switchyard_delivery_gap_events_total",
    help: "Events this node read from the log and delivered to a room's live sockets because they had not reached it through Redis",
    labelNames: ["namespace"] as const,
    registers: [registry],
  });
  const tenantWork = new Gauge({
    name: "switchyard_tenant_work",
    help: "REST requests and task reports on this node, by state: running, or waiting for their tenant's turn (NODE_WORK_CONCURRENCY, TENANT_WORK_CONCURRENCY)",
    labelNames: ["state"] as const,
    registers: [registry],
  });
  const rateLimited = new Counter({
    name: "switchyard_rate_limited_total",
    help: "Requests and connections refused by a limit, by kind: connections (per tenant), rest (per tenant), socket (dashboard socket events), worker (pool worker socket events)",
    labelNames: ["kind"] as const,
    registers: [registry],
  });
  const tasks = new Counter<"status" | "tenant">({
    name: "switchyard_tasks_total",
    help: "Task state changes this node committed, by the status the task entered",
    labelNames: tenantLabels ? ["status", "tenant"] : ["status"],
    registers: [registry],
  });
  const dbQueryDuration = new Histogram({
    name: "switchyard_db_query_duration_seconds",
    help: "Time of the hot SQL statements, by operation: task_write (a task's change with its events), event_numbering (numbering and storing events), replay_read (a page of a room's history), head (a room's position at subscribe)",
    labelNames: ["operation"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });

  const reconciled = new Counter({
    name: "switchyard_reconciled_total",
    help: "Tasks and workflows the reconciler repaired, by action",
    labelNames: ["action"] as const,
    registers: [registry],
  });
  const workerHeartbeats = new Counter({
    name: "switchyard_worker_heartbeats_total",
    help: "worker.heartbeat events this node handled, by outcome: written (presence in Redis and lastHeartbeatAt in the database renewed) or absorbed (the same worker connection wrote less than half a heartbeat interval ago)",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  const clientErrors = new Counter({
    name: "switchyard_client_errors_total",
    help: "Client requests refused, by error code",
    labelNames: ["code"] as const,
    registers: [registry],
  });

  for (const namespace of NAMESPACES) {
    connectedSockets.set({ namespace }, 0);
    connections.inc({ namespace }, 0);
    subscriptions.set({ namespace }, 0);
    if (!tenantLabels) eventsPublished.inc({ namespace }, 0);
  }
  for (const reason of SLOW_CONSUMER_REASONS) slowConsumerDisconnects.inc({ reason }, 0);
  for (const kind of RATE_LIMIT_KINDS) rateLimited.inc({ kind }, 0);
  for (const outcome of ["written", "absorbed"]) workerHeartbeats.inc({ outcome }, 0);
  for (const namespace of NAMESPACES) {
    for (const outcome of ["filled", "lost"]) deliveryGaps.inc({ namespace, outcome }, 0);
    deliveryGapEvents.inc({ namespace }, 0);
  }
  for (const state of ["running", "waiting"]) tenantWork.set({ state }, 0);
  if (!tenantLabels) for (const status of TASK_STATUSES) tasks.inc({ status }, 0);
  for (const operation of DB_OPERATIONS) dbQueryDuration.zero({ operation });
  for (const action of RECONCILE_REPAIRS) reconciled.inc({ action }, 0);
  for (const code of ERROR_CODES) clientErrors.inc({ code }, 0);
  const scheduleDue = new Counter({
    name: "switchyard_schedule_due_total",
    help: "Due times of schedules this node handled, by outcome: created (its task), repeated (the due time already had its task), skipped (the schedule was paused or deleted)",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  for (const outcome of SCHEDULE_DUE_OUTCOMES) scheduleDue.inc({ outcome }, 0);

  return {
    registry,
    connectedSockets,
    connections,
    subscriptions,
    slowConsumerDisconnects,
    slowReaders,
    deliveryGaps,
    deliveryGapEvents,
    tenantWork,
    rateLimited,
    workerHeartbeats,
    handshakeFailures: new Counter({
      name: "switchyard_handshake_failures_total",
      help: "Socket.IO handshakes refused, by error code",
      labelNames: ["code"] as const,
      registers: [registry],
    }),
    publishDuration: new Histogram({
      name: "switchyard_publish_duration_seconds",
      help: "Time from appending an event (or a state change's events) to the event log until it is stored and broadcast",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    eventLogBatchRows: new Histogram({
      name: "switchyard_event_log_batch_rows",
      help: "Event rows (event x room) stored by one numbering statement: how much group commit gathers",
      buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000],
      registers: [registry],
    }),
    taskDuration: new Histogram({
      name: "switchyard_task_duration_seconds",
      help: "Time from a task's creation to its terminal state (completed, failed or cancelled), observed by the node that finished it",
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
      registers: [registry],
    }),
    scheduleDue,
    scheduleLateness: new Histogram({
      name: "switchyard_schedule_lateness_seconds",
      help: "Time from a schedule's due time to the insert of its task, for the tasks this node created",
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    outboxRelayed: new Counter({
      name: "switchyard_outbox_relayed_total",
      help: "Events a node committed but did not number (it died or lost the database), numbered by this node's relay",
      registers: [registry],
    }),
    reconciled,
    httpRequests: new Counter({
      name: "switchyard_http_requests_total",
      help: "HTTP requests, by method, route and status",
      labelNames: ["method", "route", "status"] as const,
      registers: [registry],
    }),
    clientErrors,
    redisUp: new Gauge({
      name: "switchyard_redis_up",
      help: "1 when this node's Redis answered the readiness check (PING) at scrape time, else 0",
      registers: [registry],
      async collect() {
        if (sources) this.set((await sources.redisUp()) ? 1 : 0);
      },
    }),
    postgresUp: new Gauge({
      name: "switchyard_postgres_up",
      help: "1 when PostgreSQL answered the readiness check (SELECT 1) at scrape time, else 0",
      registers: [registry],
      async collect() {
        if (sources) this.set((await sources.postgresUp()) ? 1 : 0);
      },
    }),
    queueWaiting: new Gauge({
      name: "switchyard_queue_waiting",
      help: "Task jobs waiting for a worker (BullMQ wait, prioritized and delayed) over every pool of the deployment; the same on every node; NaN when Redis or PostgreSQL cannot say",
      registers: [registry],
      async collect() {
        if (sources) this.set((await sources.queueWaiting()) ?? Number.NaN);
      },
    }),
    workers: new Gauge({
      name: "switchyard_workers",
      help: "Standalone pool workers by status, over the whole deployment (PostgreSQL); the same on every node; NaN when PostgreSQL cannot say",
      labelNames: ["status"] as const,
      registers: [registry],
      async collect() {
        if (!sources) return;
        const counts = await sources.workers();
        for (const status of WORKER_ROW_STATUSES) this.set({ status }, counts ? counts[status] : Number.NaN);
      },
    }),
    dbQueryDuration,

    /** Where the scrape-time gauges read from (set once the app has its connections). */
    readAtScrape(from: ScrapeSources): void {
      sources = from;
    },

    timeQuery: (async (operation, query) => {
      const stop = dbQueryDuration.startTimer({ operation });
      try {
        return await query();
      } finally {
        stop();
      }
    }) as QueryTimer,

    /** One event copy delivered to a room of `namespace`. */
    eventPublished(namespace: NamespaceName, tenantId: string): void {
      eventsPublished.inc(tenantLabels ? { namespace, tenant: tenantId } : { namespace });
    },

    /** A committed change moved a task of `tenantId` into `status`. */
    taskEntered(status: TaskStatus, tenantId: string): void {
      tasks.inc(tenantLabels ? { status, tenant: tenantId } : { status });
    },
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
