import type { RedisClient } from "../../jobs/redis-connection.js";
import type { Principal } from "../../auth/principal.js";
import type { PrismaClient } from "../../db/client.js";
import { ForbiddenError, NotFoundError } from "../../errors.js";
import type { EventDraft, EventPublisher } from "../../events/publisher.js";
import type { TaskQueues, TaskTypeRegistry } from "../../jobs/queues.js";
import type { Logger } from "../../observability/logger.js";
import type { WorkerHello, WorkerWelcome } from "../../protocol/events.js";
import type { ReportedWorkerStatus, WorkerStatus } from "../../protocol/workers.js";
import { roomNames } from "../../protocol/rooms.js";
import type { ResourceDirectory } from "../resources.js";
import { serializeWorker } from "./service.js";
import type { RedisKeys } from "../../jobs/redis-keys.js";
import type { FailureReporter } from "../../dependencies/status.js";
import { PresenceAgreement, type PresenceState } from "./presence-agreement.js";
import { HeartbeatWrites } from "./heartbeat-writes.js";
import { every, type Periodic } from "../../every.js";
import { defineScripts } from "../../jobs/lua.js";

export interface WorkerServiceOptions {
  keys: RedisKeys;
  nodeId: string;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  /** Told to workers in `worker.welcome`, so that they never send a report the node would drop them for. */
  maxPayloadBytes: number;
  disconnectGraceMs: number;
  /** Where failed sweeps and aggregates are reported (an outage is logged once, not once per sweep). */
  failures: FailureReporter;
  /** Told of each heartbeat: whether it wrote (presence and the database) or was absorbed (see HeartbeatWrites). */
  heartbeatCounted?: (written: boolean) => void;
}

/** worker.status_changed for one worker row: to the tenant's `pools` room and the worker's pool. */
function statusEvent(
  tenantId: string,
  row: Parameters<typeof serializeWorker>[0] & { poolId: string },
  previous: string | null,
): EventDraft<"worker.status_changed"> {
  return {
    tenantId,
    type: "worker.status_changed",
    rooms: { pools: [roomNames.pools(), roomNames.pool(row.poolId)] },
    data: { poolId: row.poolId, worker: serializeWorker(row), previous: previous as WorkerStatus | null },
  };
}

/** How often each node looks for workers whose presence expired at most (more often with a shorter heartbeat timeout). */
const MAX_SWEEP_INTERVAL_MS = 1000;
/** Pool aggregates are published at most this often per pool and node. */
const AGGREGATE_DELAY_MS = 500;

/**
 * Pool worker presence and status. Presence lives in Redis, not in one node's memory: a key per worker whose
 * expiry is pushed forward by every heartbeat, cut to the grace period when its connection closes, and taken
 * over by whichever node the worker reconnects to. Every node sweeps for workers whose key expired; the move
 * to `offline` is a conditional update, so exactly one node makes it and publishes it.
 *
 * A worker is marked offline only when two witnesses agree: its key is gone from this node's Redis, and the
 * shared database has heard no heartbeat from it (through any node) for `silenceMs`. A node whose Redis is not
 * the cluster's (an empty one, a wrong REDIS_URL) cannot see the keys other nodes keep, but it sees their
 * heartbeats in the database, so it never announces a live worker offline (see PresenceAgreement).
 */
export class WorkerService {
  private sweeper: Periodic | undefined;
  private readonly aggregateTimers = new Map<string, NodeJS.Timeout>();
  private readonly agreement: PresenceAgreement;
  /**
   * A live worker's heartbeats renew `lastHeartbeatAt` every heartbeat interval; twice that without one means no
   * node has heard from it (node clocks are assumed to agree to well within an interval).
   */
  private readonly silenceMs: number;
  /** A flood of heartbeats writes once per half interval (see HeartbeatWrites); at the interval, every one writes. */
  private readonly heartbeats: HeartbeatWrites;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly redis: RedisClient,
    private readonly resources: ResourceDirectory,
    private readonly events: EventPublisher,
    private readonly queues: TaskQueues,
    private readonly taskTypes: TaskTypeRegistry,
    private readonly logger: Logger,
    private readonly options: WorkerServiceOptions,
  ) {
    defineScripts(redis);
    this.agreement = new PresenceAgreement(logger, options.heartbeatTimeoutMs);
    this.silenceMs = 2 * options.heartbeatIntervalMs;
    // Half the interval: the database's witness is then never older than 1.5 intervals for a live worker,
    // inside silenceMs; and a worker heartbeating at its interval (a little early or late) writes each time.
    this.heartbeats = new HeartbeatWrites(options.heartbeatIntervalMs / 2);
  }

  /** Whether this node's Redis holds the presence other nodes keep (for /ready). */
  get presence(): PresenceState {
    return this.agreement.current;
  }

  private presenceKey(tenantId: string, workerId: string): string {
    return this.options.keys.presence(tenantId, workerId);
  }

  /** A pool worker connected (or reconnected, possibly to another node). */
  async connect(principal: Principal, hello: WorkerHello, connectionId: string): Promise<WorkerWelcome> {
    const poolId = principal.poolId!;
    if (!(await this.resources.exists(principal.tenantId, "pool", poolId))) throw new NotFoundError("pool");
    const existing = await this.prisma.worker.findUnique({ where: { tenantId_id: { tenantId: principal.tenantId, id: hello.id } } });
    if (existing && existing.poolId !== poolId) throw new ForbiddenError(`worker ${hello.id} belongs to another pool`);
    // Presence before the row changes: the sweeper must never see a live row without it.
    await this.redis.set(this.presenceKey(principal.tenantId, hello.id), connectionId, "PX", this.options.heartbeatTimeoutMs);
    await this.events
      .transaction(async (tx, outbox) => {
        // Read again under the row lock: two connections of one worker racing must announce one change.
        const [before] = await tx.$queryRawUnsafe<Array<{ status: string }>>(
          `SELECT "status" FROM "Worker" WHERE "tenantId" = $1 AND "id" = $2 FOR UPDATE`,
          principal.tenantId,
          hello.id,
        );
        const comingBack = !before || before.status === "offline";
        const row = await tx.worker.upsert({
          where: { tenantId_id: { tenantId: principal.tenantId, id: hello.id } },
          create: {
            tenantId: principal.tenantId,
            id: hello.id,
            poolId,
            status: "idle",
            nodeId: this.options.nodeId,
            version: hello.version ?? null,
          },
          update: {
            nodeId: this.options.nodeId,
            version: hello.version ?? null,
            lastHeartbeatAt: new Date(),
            ...(comingBack ? { status: "idle", detail: null } : {}),
          },
        });
        if (comingBack) outbox.add(statusEvent(principal.tenantId, row, before?.status ?? null));
        return comingBack;
      })
      .then((changed) => changed && this.scheduleAggregate(principal.tenantId, poolId));
    await this.taskTypes.register(principal.tenantId, poolId, hello.types ?? []);
    return {
      workerId: hello.id,
      poolId,
      heartbeatIntervalMs: this.options.heartbeatIntervalMs,
      heartbeatTimeoutMs: this.options.heartbeatTimeoutMs,
      maxPayloadBytes: this.options.maxPayloadBytes,
    };
  }

  async reportStatus(
    principal: Principal,
    workerId: string,
    connectionId: string,
    status: ReportedWorkerStatus,
    detail: string | undefined,
  ): Promise<WorkerStatus> {
    await this.touch(principal, workerId, connectionId);
    const changed = await this.events.transaction(async (tx, outbox) => {
      const [before] = await tx.$queryRawUnsafe<Array<{ status: string; detail: string | null; poolId: string }>>(
        `SELECT "status", "detail", "poolId" FROM "Worker" WHERE "tenantId" = $1 AND "id" = $2 FOR UPDATE`,
        principal.tenantId,
        workerId,
      );
      if (!before || before.poolId !== principal.poolId) throw new NotFoundError("worker");
      if (before.status === status && before.detail === (detail ?? null)) return false;
      const row = await tx.worker.update({
        where: { tenantId_id: { tenantId: principal.tenantId, id: workerId } },
        data: { status, detail: detail ?? null, lastHeartbeatAt: new Date(), nodeId: this.options.nodeId },
      });
      if (before.status === status) return false;
      outbox.add(statusEvent(principal.tenantId, row, before.status));
      return true;
    });
    if (changed) this.scheduleAggregate(principal.tenantId, principal.poolId!);
    return status;
  }

  /** A heartbeat (or any report) pushes the worker's presence forward; the connection it came on owns it. */
  async touch(principal: Principal, workerId: string, connectionId: string): Promise<void> {
    await this.redis.set(this.presenceKey(principal.tenantId, workerId), connectionId, "PX", this.options.heartbeatTimeoutMs);
  }

  /**
   * A heartbeat: presence and the database's witness are renewed (at most once per half interval), and a
   * worker found `offline` comes back. Nothing else: the database learns of changes from reports and statuses.
   */
  async heartbeat(principal: Principal, workerId: string, connectionId: string): Promise<void> {
    const due = this.heartbeats.due(`${principal.tenantId}|${workerId}`, connectionId);
    this.options.heartbeatCounted?.(due);
    if (!due) return;
    await this.touch(principal, workerId, connectionId);
    const [row] = await this.prisma.$queryRawUnsafe<Array<{ status: string }>>(
      `UPDATE "Worker" SET "lastHeartbeatAt" = (now() AT TIME ZONE 'UTC') WHERE "tenantId" = $1 AND "id" = $2 RETURNING "status"`,
      principal.tenantId,
      workerId,
    );
    // Declared offline during a long silence, but its connection survived: it is back.
    if (row?.status === "offline")
      await this.changeIf(principal.tenantId, workerId, "offline", { status: "idle", detail: null, nodeId: this.options.nodeId });
  }

  /** The worker's connection to this node closed: it has the grace period to come back (to any node). */
  async disconnected(tenantId: string, workerId: string, connectionId: string): Promise<void> {
    this.heartbeats.forget(`${tenantId}|${workerId}`, connectionId);
    // Only if the presence still belongs to the closing connection: another may have taken it over meanwhile.
    await this.redis.releasePresence(this.presenceKey(tenantId, workerId), connectionId, this.options.disconnectGraceMs);
  }

  start(): void {
    this.sweeper = every(Math.min(MAX_SWEEP_INTERVAL_MS, this.options.heartbeatTimeoutMs), () => this.sweep(), {
      name: "worker presence sweep",
      logger: this.logger,
    });
  }

  stop(): void {
    this.sweeper?.stop();
    for (const timer of this.aggregateTimers.values()) clearTimeout(timer);
    this.aggregateTimers.clear();
  }

  /**
   * Marks offline, exactly once across nodes, every worker whose presence expired and that no node heard from
   * lately; notes whether this node's Redis sees the presence of the workers other nodes hear from.
   */
  private async sweep(): Promise<void> {
    try {
      const candidates = await this.prisma.worker.findMany({
        where: { status: { not: "offline" } },
        select: { tenantId: true, id: true, nodeId: true, lastHeartbeatAt: true },
        take: 5000,
      });
      if (candidates.length === 0) {
        this.agreement.observe(0, 0);
        return;
      }
      const pipeline = this.redis.pipeline();
      for (const c of candidates) pipeline.exists(this.presenceKey(c.tenantId, c.id));
      const results = (await pipeline.exec()) ?? [];
      const heardSince = Date.now() - this.silenceMs;
      let heardElsewhere = 0;
      let visibleHere = 0;
      for (const [i, c] of candidates.entries()) {
        const [error, exists] = results[i] ?? [null, 1];
        if (error) continue;
        const heard = c.lastHeartbeatAt.getTime() > heardSince;
        if (heard && c.nodeId !== this.options.nodeId) {
          heardElsewhere++;
          if (exists === 1) visibleHere++;
        }
        if (exists === 1 || heard) continue;
        await this.markOffline(c.tenantId, c.id);
      }
      this.agreement.observe(heardElsewhere, visibleHere);
    } catch (error) {
      this.options.failures.report(error, "worker presence sweep failed");
    }
  }

  private async markOffline(tenantId: string, workerId: string): Promise<void> {
    const before = await this.prisma.worker.findUnique({ where: { tenantId_id: { tenantId, id: workerId } } });
    if (!before || before.status === "offline") return;
    // Re-check presence right before the conditional update: the worker may have come back meanwhile.
    if ((await this.redis.exists(this.presenceKey(tenantId, workerId))) === 1) return;
    const silentSince = new Date(Date.now() - this.silenceMs);
    if (await this.changeIf(tenantId, workerId, { not: "offline" }, { status: "offline" }, silentSince)) {
      this.logger.info({ tenantId, workerId, pool: before.poolId }, "worker offline");
    }
  }

  /**
   * Changes a worker's row only while its status matches `from` (and, with `silentSince`, while its last heartbeat
   * is older than that), and commits the worker.status_changed event with the change: with every node sweeping,
   * exactly one of them makes (and announces) it.
   */
  private async changeIf(
    tenantId: string,
    workerId: string,
    from: string | { not: string },
    data: { status: string; detail?: null; nodeId?: string },
    silentSince?: Date,
  ): Promise<boolean> {
    const row = await this.events.transaction(async (tx, outbox) => {
      const [before] = await tx.$queryRawUnsafe<Array<{ status: string; silent: boolean }>>(
        `SELECT "status", ($3::timestamptz IS NULL OR "lastHeartbeatAt" < ($3::timestamptz AT TIME ZONE 'UTC')) AS "silent"
         FROM "Worker" WHERE "tenantId" = $1 AND "id" = $2 FOR UPDATE`,
        tenantId,
        workerId,
        silentSince?.toISOString() ?? null,
      );
      const matches =
        before !== undefined && before.silent && (typeof from === "string" ? before.status === from : before.status !== from.not);
      if (!matches) return null;
      const row = await tx.worker.update({ where: { tenantId_id: { tenantId, id: workerId } }, data });
      outbox.add(statusEvent(tenantId, row, before.status));
      return row;
    });
    if (row) this.scheduleAggregate(tenantId, row.poolId);
    return row !== null;
  }

  /** Coalesces a pool's aggregate: many worker changes in a burst give one pool.status_changed. */
  scheduleAggregate(tenantId: string, poolId: string): void {
    const key = `${tenantId}|${poolId}`;
    if (this.aggregateTimers.has(key)) return;
    const timer = setTimeout(() => {
      this.aggregateTimers.delete(key);
      void this.publishAggregate(tenantId, poolId).catch((error: unknown) =>
        this.options.failures.report(error, "pool aggregate failed", { poolId }),
      );
    }, AGGREGATE_DELAY_MS);
    timer.unref();
    this.aggregateTimers.set(key, timer);
  }

  private async publishAggregate(tenantId: string, poolId: string): Promise<void> {
    const workers = await countWorkers(this.prisma, { tenantId, poolId });
    const queueDepth = await this.queues.waitingCount(tenantId, poolId).catch(() => null);
    await this.events.publish({
      tenantId,
      type: "pool.status_changed",
      rooms: { pools: [roomNames.pools(), roomNames.pool(poolId)] },
      data: { poolId, workers, queueDepth },
    });
  }
}

/** Workers by status, every status present: of one pool (its aggregate event) or of the whole deployment (metrics). */
export async function countWorkers(
  prisma: PrismaClient,
  where: { tenantId: string; poolId: string } | Record<string, never> = {},
): Promise<Record<WorkerStatus, number>> {
  const groups = await prisma.worker.groupBy({ by: ["status"], where, _count: { _all: true } });
  const workers: Record<WorkerStatus, number> = { idle: 0, busy: 0, error: 0, draining: 0, offline: 0 };
  for (const group of groups) if (group.status in workers) workers[group.status as WorkerStatus] = group._count._all;
  return workers;
}
