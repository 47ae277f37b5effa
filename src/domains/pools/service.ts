import { z } from "zod";
import type { Principal } from "../../auth/principal.js";
import type { PrismaClient } from "../../db/client.js";
import { BadRequestError, ConflictError, NotFoundError } from "../../errors.js";
import type { EventPublisher } from "../../events/publisher.js";
import type { WorkerStatus } from "../../protocol/workers.js";
import { roomNames } from "../../protocol/rooms.js";
import { storableText } from "../../protocol/schemas.js";
import type { PoolView, WorkerView } from "../../protocol/views.js";
import { parseInput } from "../validation.js";
import { PageQuerySchema, PAGE_ORDER, afterPageKey, decodePageCursor, toPage } from "../pagination.js";
import type { TenantDirectory } from "../tenants.js";

/** `maxConcurrency`: BullMQ's global concurrency of the pool's queue; null lifts it. */
const MaxConcurrency = z.number().int().min(1).max(10_000).nullable();

/** Autoscaling bounds and target; null turns each off (without a target, nothing is scaled). */
const WorkerBound = z.number().int().min(0).max(10_000).nullable();
const TargetQueued = z.number().int().min(1).max(1_000_000).nullable();
const minNotAboveMax = (body: { minWorkers?: number | null; maxWorkers?: number | null }): boolean =>
  body.minWorkers == null || body.maxWorkers == null || body.minWorkers <= body.maxWorkers;

export const CreatePoolSchema = z
  .strictObject({
    name: z.string().trim().min(1).max(128),
    description: storableText(1000).nullable().optional(),
    desiredWorkers: z.number().int().min(0).max(10_000).default(0),
    maxConcurrency: MaxConcurrency.default(null),
    minWorkers: WorkerBound.default(null),
    maxWorkers: WorkerBound.default(null),
    targetQueuedPerWorker: TargetQueued.default(null),
  })
  .refine(minNotAboveMax, { message: "minWorkers must not be above maxWorkers", path: ["minWorkers"] });
export const UpdatePoolSchema = z
  .strictObject({
    name: z.string().trim().min(1).max(128).optional(),
    description: storableText(1000).nullable().optional(),
    desiredWorkers: z.number().int().min(0).max(10_000).optional(),
    maxConcurrency: MaxConcurrency.optional(),
    minWorkers: WorkerBound.optional(),
    maxWorkers: WorkerBound.optional(),
    targetQueuedPerWorker: TargetQueued.optional(),
  })
  .refine(
    (body) => Object.keys(body).length > 0,
    "give at least one of name, description, desiredWorkers, maxConcurrency, minWorkers, maxWorkers, targetQueuedPerWorker",
  )
  .refine(minNotAboveMax, { message: "minWorkers must not be above maxWorkers", path: ["minWorkers"] });
export const ScalePoolSchema = z.strictObject({
  desiredWorkers: z.number().int().min(0).max(10_000),
});

/** The fields a pool change may set; `paused` only through pause and resume. */
type PoolChange = z.infer<typeof UpdatePoolSchema> & { paused?: boolean };
const CHANGEABLE = [
  "name",
  "description",
  "desiredWorkers",
  "paused",
  "maxConcurrency",
  "minWorkers",
  "maxWorkers",
  "targetQueuedPerWorker",
] as const;

/** What BullMQ must hold for a pool's queue: the row is the truth, and the queue follows each change. */
export interface PoolQueueSettings {
  apply(tenantId: string, poolId: string, settings: { paused?: boolean; maxConcurrency?: number | null }): Promise<void>;
}

interface PoolRow {
  id: string;
  name: string;
  description: string | null;
  desiredWorkers: number;
  status: string;
  paused: boolean;
  maxConcurrency: number | null;
  minWorkers: number | null;
  maxWorkers: number | null;
  targetQueuedPerWorker: number | null;
  createdAt: Date;
  updatedAt: Date;
}
interface WorkerRow {
  id: string;
  status: string;
  detail: string | null;
  nodeId: string | null;
  version: string | null;
  lastHeartbeatAt: Date;
}

export function serializePool(pool: PoolRow): PoolView {
  return {
    id: pool.id,
    name: pool.name,
    description: pool.description,
    desiredWorkers: pool.desiredWorkers,
    status: pool.status,
    paused: pool.paused,
    maxConcurrency: pool.maxConcurrency,
    minWorkers: pool.minWorkers,
    maxWorkers: pool.maxWorkers,
    targetQueuedPerWorker: pool.targetQueuedPerWorker,
    createdAt: pool.createdAt.toISOString(),
    updatedAt: pool.updatedAt.toISOString(),
  };
}

export function serializeWorker(worker: WorkerRow): WorkerView {
  return {
    id: worker.id,
    status: worker.status as WorkerStatus,
    detail: worker.detail,
    node: worker.nodeId,
    version: worker.version,
    lastHeartbeatAt: worker.lastHeartbeatAt.toISOString(),
  };
}

/** Pools of workers, per tenant. Every method takes the principal: the tenant comes only from it. */
export class PoolService {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly tenants: TenantDirectory,
    private readonly events: EventPublisher,
    private readonly queues: PoolQueueSettings,
  ) {}

  async create(principal: Principal, body: unknown) {
    const input = parseInput(CreatePoolSchema, body);
    await this.tenants.ensure(principal.tenantId);
    try {
      return await this.events.transaction(async (tx, outbox) => {
        const pool = await tx.pool.create({
          data: {
            tenantId: principal.tenantId,
            id: crypto.randomUUID(),
            name: input.name,
            description: input.description ?? null,
            desiredWorkers: input.desiredWorkers,
            maxConcurrency: input.maxConcurrency,
            minWorkers: input.minWorkers,
            maxWorkers: input.maxWorkers,
            targetQueuedPerWorker: input.targetQueuedPerWorker,
          },
        });
        // Inside the transaction: if Redis refuses, the pool is not created.
        if (input.maxConcurrency !== null) await this.queues.apply(principal.tenantId, pool.id, { maxConcurrency: input.maxConcurrency });
        const view = serializePool(pool);
        outbox.add({
          tenantId: principal.tenantId,
          type: "pool.created",
          rooms: { pools: [roomNames.pools(), roomNames.pool(pool.id)] },
          data: { pool: view },
        });
        return view;
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new ConflictError(`a pool named "${input.name}" already exists`);
      throw error;
    }
  }

  /** A page, bounded in rows and in bytes (MAX_RESPONSE_BYTES), like every list. */
  async list(principal: Principal, query: unknown, maxBytes: number) {
    const { cursor, limit } = parseInput(PageQuerySchema, query, "query");
    await this.tenants.ensure(principal.tenantId);
    const rows = await this.prisma.pool.findMany({
      where: { tenantId: principal.tenantId, ...afterPageKey(cursor ? decodePageCursor(cursor) : undefined) },
      orderBy: PAGE_ORDER,
      take: limit + 1,
    });
    return toPage(rows, limit, serializePool, maxBytes);
  }

  async get(principal: Principal, poolId: string) {
    await this.tenants.ensure(principal.tenantId);
    const pool = await this.prisma.pool.findUnique({
      where: { tenantId_id: { tenantId: principal.tenantId, id: poolId } },
      include: { workers: { orderBy: { createdAt: "asc" } } },
    });
    if (!pool) throw new NotFoundError("pool");
    return { ...serializePool(pool), workers: pool.workers.map(serializeWorker) };
  }

  /** `PATCH /api/v1/pools/:id`: rename, describe, resize or bound a pool; `pool.updated` names what changed. */
  async update(principal: Principal, poolId: string, body: unknown): Promise<PoolView> {
    return this.change(principal, poolId, parseInput(UpdatePoolSchema, body));
  }

  /** `POST /api/v1/pools/:id/pause` and `/resume`: running tasks finish, new ones wait `queued` until resumed. */
  async setPaused(principal: Principal, poolId: string, paused: boolean): Promise<PoolView> {
    return this.change(principal, poolId, { paused });
  }

  /**
   * Applies a change to the pool's row and, for its queue settings, to BullMQ, inside one transaction: BullMQ is
   * told before the commit, so a Redis that refuses leaves the row as it was (503). If the commit itself fails
   * after BullMQ took the change, BullMQ is set back to the row's values.
   */
  private async change(principal: Principal, poolId: string, input: PoolChange): Promise<PoolView> {
    await this.tenants.ensure(principal.tenantId);
    let applied: { before: Pick<PoolRow, "paused" | "maxConcurrency"> } | undefined;
    try {
      return await this.events.transaction(async (tx, outbox) => {
        const [before] = await tx.$queryRawUnsafe<Array<Pick<PoolRow, (typeof CHANGEABLE)[number]>>>(
          `SELECT "name", "description", "desiredWorkers", "paused", "maxConcurrency", "minWorkers", "maxWorkers", "targetQueuedPerWorker" FROM "Pool" WHERE "tenantId" = $1 AND "id" = $2 FOR UPDATE`,
          principal.tenantId,
          poolId,
        );
        if (!before) throw new NotFoundError("pool");
        const changed = CHANGEABLE.filter((field) => input[field] !== undefined && input[field] !== before[field]);
        // The bounds as they will stand, one of them perhaps unchanged: a minimum above the maximum is refused.
        if (
          !minNotAboveMax({
            minWorkers: input.minWorkers === undefined ? before.minWorkers : input.minWorkers,
            maxWorkers: input.maxWorkers === undefined ? before.maxWorkers : input.maxWorkers,
          })
        ) {
          throw new BadRequestError("invalid body: minWorkers", [{ field: "minWorkers", message: "above maxWorkers" }]);
        }
        // Told even when the row already says so: a queue left out of step (a revert that failed) is set right again.
        const queueSettings = Object.fromEntries(
          (["paused", "maxConcurrency"] as const).filter((f) => input[f] !== undefined).map((f) => [f, input[f]]),
        );
        if (Object.keys(queueSettings).length > 0) {
          await this.queues.apply(principal.tenantId, poolId, queueSettings);
          applied = { before: { paused: before.paused, maxConcurrency: before.maxConcurrency } };
        }
        const pool =
          changed.length === 0
            ? await tx.pool.findUniqueOrThrow({ where: { tenantId_id: { tenantId: principal.tenantId, id: poolId } } })
            : await tx.pool.update({
                where: { tenantId_id: { tenantId: principal.tenantId, id: poolId } },
                data: Object.fromEntries(changed.map((field) => [field, input[field]])),
              });
        const view = serializePool(pool);
        // Nothing changed, nothing to announce: a repeated PATCH (or pause) is idempotent.
        if (changed.length > 0) {
          outbox.add({
            tenantId: principal.tenantId,
            type: "pool.updated",
            rooms: { pools: [roomNames.pools(), roomNames.pool(pool.id)] },
            data: { pool: view, changed },
          });
        }
        return view;
      });
    } catch (error) {
      if (applied) await this.queues.apply(principal.tenantId, poolId, applied.before).catch(() => undefined);
      if (isUniqueViolation(error)) throw new ConflictError(`a pool named "${input.name}" already exists`);
      throw error;
    }
  }

  async scale(principal: Principal, poolId: string, body: unknown) {
    const { desiredWorkers } = parseInput(ScalePoolSchema, body);
    await this.tenants.ensure(principal.tenantId);
    return this.scaleTo(principal.tenantId, poolId, desiredWorkers);
  }

  /**
   * Sets a pool's `desiredWorkers` and announces `pool.scaling` (from an operator's scale, or the autoscaler's).
   * With `unless`, nothing changes when the row no longer says what the caller saw (an operator scaled meanwhile).
   */
  async scaleTo(tenantId: string, poolId: string, desiredWorkers: number, unless?: { from: number }): Promise<PoolView | null> {
    const principal = { tenantId };
    return this.events.transaction(async (tx, outbox) => {
      // Locked, so that two concurrent scales each announce the change they really made.
      const [before] = await tx.$queryRawUnsafe<Array<{ desiredWorkers: number }>>(
        `SELECT "desiredWorkers" FROM "Pool" WHERE "tenantId" = $1 AND "id" = $2 FOR UPDATE`,
        principal.tenantId,
        poolId,
      );
      if (!before) throw new NotFoundError("pool");
      if (unless && before.desiredWorkers !== unless.from) return null;
      const pool = await tx.pool.update({
        where: { tenantId_id: { tenantId: principal.tenantId, id: poolId } },
        data: { desiredWorkers },
      });
      const view = serializePool(pool);
      outbox.add({
        tenantId: principal.tenantId,
        type: "pool.scaling",
        rooms: { pools: [roomNames.pools(), roomNames.pool(pool.id)] },
        data: { poolId: pool.id, from: before.desiredWorkers, to: desiredWorkers, pool: view },
      });
      return view;
    });
  }
}

export function isUniqueViolation(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === "P2002";
}
