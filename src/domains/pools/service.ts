import { z } from "zod";
import type { Principal } from "../../auth/principal.js";
import type { PrismaClient } from "../../db/client.js";
import { ConflictError, NotFoundError } from "../../errors.js";
import type { EventPublisher } from "../../events/publisher.js";
import type { WorkerStatus } from "../../protocol/events.js";
import { roomNames } from "../../protocol/rooms.js";
import { storableText } from "../../protocol/schemas.js";
import type { PoolView, WorkerView } from "../../protocol/views.js";
import { parseInput } from "../validation.js";
import { PageQuerySchema, PAGE_ORDER, afterPageKey, decodePageCursor, toPage } from "../pagination.js";
import type { TenantDirectory } from "../tenants.js";

export const CreatePoolSchema = z.strictObject({
  name: z.string().trim().min(1).max(128),
  description: storableText(1000).nullable().optional(),
  desiredWorkers: z.number().int().min(0).max(10_000).default(0),
});
export const UpdatePoolSchema = z
  .strictObject({
    name: z.string().trim().min(1).max(128).optional(),
    description: storableText(1000).nullable().optional(),
    desiredWorkers: z.number().int().min(0).max(10_000).optional(),
  })
  .refine((body) => Object.keys(body).length > 0, "give at least one of name, description, desiredWorkers");
export const ScalePoolSchema = z.strictObject({
  desiredWorkers: z.number().int().min(0).max(10_000),
});

interface PoolRow {
  id: string;
  name: string;
  description: string | null;
  desiredWorkers: number;
  status: string;
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
  ) {}

  async create(principal: Principal, body: unknown) {
    const input = parseInput(CreatePoolSchema, body);
    await this.tenants.ensure(principal.tenantId);
    try {
      return await this.events.transaction(async (tx, outbox) => {
        const pool = await tx.pool.create({
          data: { tenantId: principal.tenantId, id: crypto.randomUUID(), name: input.name, description: input.description ?? null, desiredWorkers: input.desiredWorkers },
        });
        const view = serializePool(pool);
        outbox.add({ tenantId: principal.tenantId, type: "pool.created", rooms: { pools: [roomNames.pools(), roomNames.pool(pool.id)] }, data: { pool: view } });
        return view;
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new ConflictError(`a pool named "${input.name}" already exists`);
      throw error;
    }
  }

  async list(principal: Principal, query: unknown) {
    const { cursor, limit } = parseInput(PageQuerySchema, query, "query");
    await this.tenants.ensure(principal.tenantId);
    const rows = await this.prisma.pool.findMany({
      where: { tenantId: principal.tenantId, ...afterPageKey(cursor ? decodePageCursor(cursor) : undefined) },
      orderBy: PAGE_ORDER,
      take: limit + 1,
    });
    return toPage(rows, limit, serializePool);
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

  /** `PATCH /api/v1/pools/:id`: rename, describe or resize a pool; `pool.updated` names what changed. */
  async update(principal: Principal, poolId: string, body: unknown): Promise<PoolView> {
    const input = parseInput(UpdatePoolSchema, body);
    await this.tenants.ensure(principal.tenantId);
    try {
      return await this.events.transaction(async (tx, outbox) => {
        const [before] = await tx.$queryRawUnsafe<Array<{ name: string; description: string | null; desiredWorkers: number }>>(
          `SELECT "name", "description", "desiredWorkers" FROM "Pool" WHERE "tenantId" = $1 AND "id" = $2 FOR UPDATE`,
          principal.tenantId,
          poolId,
        );
        if (!before) throw new NotFoundError("pool");
        const changed = (["name", "description", "desiredWorkers"] as const).filter((field) => input[field] !== undefined && input[field] !== before[field]);
        const pool = changed.length === 0
          ? await tx.pool.findUniqueOrThrow({ where: { tenantId_id: { tenantId: principal.tenantId, id: poolId } } })
          : await tx.pool.update({
              where: { tenantId_id: { tenantId: principal.tenantId, id: poolId } },
              data: Object.fromEntries(changed.map((field) => [field, input[field]])),
            });
        const view = serializePool(pool);
        // Nothing changed, nothing to announce: a repeated PATCH is idempotent.
        if (changed.length > 0) {
          outbox.add({ tenantId: principal.tenantId, type: "pool.updated", rooms: { pools: [roomNames.pools(), roomNames.pool(pool.id)] }, data: { pool: view, changed } });
        }
        return view;
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new ConflictError(`a pool named "${input.name}" already exists`);
      throw error;
    }
  }

  async scale(principal: Principal, poolId: string, body: unknown) {
    const { desiredWorkers } = parseInput(ScalePoolSchema, body);
    await this.tenants.ensure(principal.tenantId);
    return this.events.transaction(async (tx, outbox) => {
      // Locked, so that two concurrent scales each announce the change they really made.
      const [before] = await tx.$queryRawUnsafe<Array<{ desiredWorkers: number }>>(
        `SELECT "desiredWorkers" FROM "Pool" WHERE "tenantId" = $1 AND "id" = $2 FOR UPDATE`,
        principal.tenantId,
        poolId,
      );
      if (!before) throw new NotFoundError("pool");
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
