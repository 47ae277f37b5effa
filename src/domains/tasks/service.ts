import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import { z } from "zod";
import type { Principal } from "../../auth/principal.js";
import type { PrismaClient } from "../../db/client.js";
import { AppError, BadRequestError, ConflictError, ForbiddenError, NotFoundError } from "../../errors.js";
import type { EventPublisher } from "../../events/publisher.js";
import { cancelChannel, defaultPoolTenantsKey, type TaskQueues, type TaskTypeRegistry } from "../../jobs/queues.js";
import type { Logger } from "../../observability/logger.js";
import { ID_PATTERN, roomNames } from "../../protocol/rooms.js";
import {
  BUILTIN_TASK_TYPES,
  isTerminal,
  TASK_STATUSES,
  type TaskReport,
  type TaskReportReply,
  type TaskStatus,
} from "../../protocol/tasks.js";
import { afterPageKey, decodePageCursor, PAGE_ORDER, PageQuerySchema, toPage } from "../pagination.js";
import { isUniqueViolation } from "../pools/service.js";
import type { ResourceDirectory } from "../resources.js";
import { DEFAULT_POOL_ID } from "../tenants.js";
import { parseInput } from "../validation.js";
import { TRANSITIONS, type TransitionName } from "./state-machine.js";

const TYPE_PATTERN = /^[A-Za-z0-9_.:-]{1,100}$/;

export const SubmitTaskSchema = z.strictObject({
  type: z.string().regex(TYPE_PATTERN, "must be 1-100 letters, digits, '_', '.', ':' or '-'"),
  payload: z.json().optional(),
  poolId: z.string().regex(ID_PATTERN, "must be a pool id").optional(),
  priority: z.number().int().min(0).max(100).default(50),
  maxAttempts: z.number().int().min(1).max(25).default(1),
  timeoutMs: z.number().int().min(1).max(24 * 3600 * 1000).optional(),
});
export type SubmitTaskInput = z.infer<typeof SubmitTaskSchema>;

const ListQuerySchema = PageQuerySchema.extend({
  status: z.enum(TASK_STATUSES).optional(),
  poolId: z.string().regex(ID_PATTERN).optional(),
});

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;

export interface TaskRow {
  id: string;
  tenantId: string;
  poolId: string;
  type: string;
  payload: unknown;
  status: string;
  priority: number;
  maxAttempts: number;
  attempts: number;
  timeoutMs: number | null;
  result: unknown;
  error: unknown;
  workerId: string | null;
  workflowId: string | null;
  stepKey: string | null;
  createdAt: Date;
  updatedAt: Date;
  queuedAt: Date | null;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export function serializeTask(task: TaskRow) {
  return {
    id: task.id,
    type: task.type,
    poolId: task.poolId,
    status: task.status as TaskStatus,
    payload: task.payload,
    priority: task.priority,
    maxAttempts: task.maxAttempts,
    attempts: task.attempts,
    timeoutMs: task.timeoutMs,
    result: task.result ?? null,
    error: task.error ?? null,
    workerId: task.workerId,
    workflowId: task.workflowId,
    stepKey: task.stepKey,
    createdAt: task.createdAt.toISOString(),
    updatedAt: task.updatedAt.toISOString(),
    queuedAt: task.queuedAt?.toISOString() ?? null,
    startedAt: task.startedAt?.toISOString() ?? null,
    finishedAt: task.finishedAt?.toISOString() ?? null,
  };
}
export type TaskView = ReturnType<typeof serializeTask>;

/** Called when a task reaches a terminal state, whoever drove it there (workflows chain on this). */
export type TaskFinishedListener = (task: TaskRow) => Promise<void>;

export interface TaskServiceOptions {
  backoffMs: number;
  redisPrefix: string;
}

/** Called after a task was put on the queue of (tenant, pool): lets an embedded worker start serving it. */
/** The columns a transition may set besides the status, and how each is passed to SQL. */
const COLUMN_KIND = {
  workerId: "plain",
  attempts: "plain",
  queuedAt: "time",
  startedAt: "time",
  finishedAt: "time",
  result: "json",
  error: "json",
} as const;
type TaskChanges = Partial<Record<keyof typeof COLUMN_KIND, unknown>>;

export type PoolActiveListener = (tenantId: string, poolId: string) => void;

/**
 * Tasks: submission, queries, cancellation, and the one place that applies state changes (`transition`),
 * writing each to PostgreSQL and publishing it through the event path.
 */
export class TaskService {
  private readonly finishedListeners: TaskFinishedListener[] = [];
  private readonly poolActiveListeners: PoolActiveListener[] = [];
  private readonly registeredDefaultTenants = new Set<string>();

  constructor(
    private readonly prisma: PrismaClient,
    private readonly redis: Redis,
    private readonly resources: ResourceDirectory,
    private readonly queues: TaskQueues,
    private readonly types: TaskTypeRegistry,
    private readonly events: EventPublisher,
    private readonly logger: Logger,
    private readonly options: TaskServiceOptions,
  ) {}

  onTaskFinished(listener: TaskFinishedListener): void {
    this.finishedListeners.push(listener);
  }

  onPoolActive(listener: PoolActiveListener): void {
    this.poolActiveListeners.push(listener);
  }

  /** Default pools are served by every node's embedded worker: record the tenant where they all look. */
  private async notePoolActive(tenantId: string, poolId: string): Promise<void> {
    if (poolId === DEFAULT_POOL_ID && !this.registeredDefaultTenants.has(tenantId)) {
      await this.redis.sadd(defaultPoolTenantsKey(this.options.redisPrefix), tenantId);
      this.registeredDefaultTenants.add(tenantId);
    }
    for (const listener of this.poolActiveListeners) listener(tenantId, poolId);
  }

  /** `POST /api/v1/tasks`: stores the task, publishes task.created, enqueues it, publishes task.queued. */
  async submit(principal: Principal, body: unknown, idempotencyKey?: string): Promise<{ task: TaskView; created: boolean }> {
    const input = parseInput(SubmitTaskSchema, body);
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw new BadRequestError("invalid Idempotency-Key", [{ field: "Idempotency-Key", message: "1-200 visible ASCII characters" }]);
    }
    const requestHash = idempotencyKey ? createHash("sha256").update(JSON.stringify(input)).digest("hex") : null;
    if (idempotencyKey) {
      const existing = await this.findByIdempotencyKey(principal.tenantId, idempotencyKey, requestHash!);
      if (existing) return { task: serializeTask(existing), created: false };
    }
    const poolId = input.poolId ?? DEFAULT_POOL_ID;
    await this.validateTarget(principal.tenantId, poolId, input.type);
    let task: TaskRow;
    try {
      task = await this.create(principal.tenantId, { ...input, poolId }, { idempotencyKey: idempotencyKey ?? null, requestHash });
    } catch (error) {
      if (idempotencyKey && isUniqueViolation(error)) {
        // A concurrent request with the same key won the insert: answer with its task.
        const existing = await this.findByIdempotencyKey(principal.tenantId, idempotencyKey, requestHash!);
        if (existing) return { task: serializeTask(existing), created: false };
      }
      throw error;
    }
    return { task: serializeTask(await this.enqueue(task)), created: true };
  }

  /** Creates and enqueues a task on behalf of the server itself (workflow steps). */
  async submitInternal(
    tenantId: string,
    input: { type: string; payload: SubmitTaskInput["payload"]; poolId: string; workflowId: string; stepKey: string },
  ): Promise<TaskRow> {
    const task = await this.create(
      tenantId,
      { type: input.type, payload: input.payload, poolId: input.poolId, priority: 50, maxAttempts: 1, timeoutMs: undefined },
      { idempotencyKey: null, requestHash: null, workflowId: input.workflowId, stepKey: input.stepKey },
    );
    return this.enqueue(task);
  }

  async validateTarget(tenantId: string, poolId: string, type: string): Promise<void> {
    // Also creates the tenant's default pool on first sight; positive answers are cached.
    if (!(await this.resources.exists(tenantId, "pool", poolId))) {
      throw new AppError("NOT_FOUND", "pool not found", 404, [{ field: "poolId", message: "no such pool" }]);
    }
    const known = (BUILTIN_TASK_TYPES as readonly string[]).includes(type) || (await this.types.has(tenantId, poolId, type));
    if (!known) {
      throw new BadRequestError(`unknown task type "${type}"`, [
        { field: "type", message: `must be one of ${BUILTIN_TASK_TYPES.join(", ")} or a type a worker of the pool registered` },
      ]);
    }
  }

  private async findByIdempotencyKey(tenantId: string, key: string, requestHash: string): Promise<TaskRow | null> {
    const existing = await this.prisma.task.findUnique({ where: { tenantId_idempotencyKey: { tenantId, idempotencyKey: key } } });
    if (existing && existing.requestHash !== requestHash) {
      throw new ConflictError("Idempotency-Key was already used with a different request body");
    }
    return existing;
  }

  private async create(
    tenantId: string,
    input: Omit<SubmitTaskInput, "poolId"> & { poolId: string },
    extra: { idempotencyKey: string | null; requestHash: string | null; workflowId?: string; stepKey?: string },
  ): Promise<TaskRow> {
    const task = await this.prisma.task.create({
      data: {
        tenantId,
        poolId: input.poolId,
        type: input.type,
        payload: (input.payload ?? {}) as object,
        status: "created",
        priority: input.priority,
        maxAttempts: input.maxAttempts,
        timeoutMs: input.timeoutMs ?? null,
        idempotencyKey: extra.idempotencyKey,
        requestHash: extra.requestHash,
        workflowId: extra.workflowId ?? null,
        stepKey: extra.stepKey ?? null,
      },
    });
    await this.publish(task, "task.created");
    return task;
  }

  /**
   * Marks the task queued, then adds its job. In this order because a worker may take the job the moment it
   * exists, and its `assigned` report must find the task queued. If adding fails, the task fails.
   */
  private async enqueue(task: TaskRow): Promise<TaskRow> {
    const queued = (await this.transition(task.tenantId, task.id, "queued", { queuedAt: new Date() })).task ?? task;
    try {
      await this.queues.enqueue(
        {
          tenantId: task.tenantId,
          taskId: task.id,
          poolId: task.poolId,
          type: task.type,
          payload: task.payload,
          timeoutMs: task.timeoutMs,
          maxAttempts: task.maxAttempts,
        },
        { maxAttempts: task.maxAttempts, priority: task.priority, backoffMs: this.options.backoffMs },
      );
    } catch (error) {
      this.logger.error({ err: error, taskId: task.id }, "enqueue failed");
      await this.transition(task.tenantId, task.id, "failed", {
        error: { code: "ENQUEUE_FAILED", message: "the task could not be queued", retryable: false },
        finishedAt: new Date(),
      });
      throw new AppError("UNAVAILABLE", "the task queue is unavailable; the task was marked failed", 503);
    }
    // The job exists now, so the task stays queued either way. If the tenant could not be noted, embedded
    // workers of other nodes learn of it at the tenant's next submission (the note is retried then).
    await this.notePoolActive(task.tenantId, task.poolId).catch((error: unknown) =>
      this.logger.warn({ err: (error as Error).message, taskId: task.id }, "could not register the pool for embedded workers"),
    );
    return queued;
  }

  async get(principal: Principal, taskId: string): Promise<TaskView> {
    const task = await this.prisma.task.findFirst({ where: { id: taskId, tenantId: principal.tenantId } });
    if (!task) throw new NotFoundError("task");
    return serializeTask(task);
  }

  async list(principal: Principal, query: unknown) {
    const { cursor, limit, status, poolId } = parseInput(ListQuerySchema, query, "query");
    const rows = await this.prisma.task.findMany({
      where: {
        tenantId: principal.tenantId,
        ...(status ? { status } : {}),
        ...(poolId ? { poolId } : {}),
        ...afterPageKey(cursor ? decodePageCursor(cursor) : undefined),
      },
      orderBy: PAGE_ORDER,
      take: limit + 1,
    });
    return toPage(rows, limit, serializeTask);
  }

  /**
   * Cancels a task that has not finished. A queued job is removed from its queue; a running one is told to
   * abort through Redis, and whatever its worker reports afterwards is refused by the state machine.
   */
  async cancel(principal: Principal, taskId: string): Promise<TaskView> {
    const existing = await this.prisma.task.findFirst({ where: { id: taskId, tenantId: principal.tenantId } });
    if (!existing) throw new NotFoundError("task");
    return serializeTask(await this.cancelRow(existing, "cancelled by request"));
  }

  async cancelRow(existing: TaskRow, reason: string): Promise<TaskRow> {
    const { task } = await this.transition(existing.tenantId, existing.id, "cancelled", {
      finishedAt: new Date(),
      error: { code: "CANCELLED", message: reason, retryable: false },
    });
    if (!task) throw new ConflictError(`task is already ${(await this.currentStatus(existing.id)) ?? "gone"}`);
    await this.queues.remove(task.tenantId, task.poolId, task.id);
    await this.redis.publish(cancelChannel(this.options.redisPrefix), JSON.stringify({ taskId: task.id })).catch((error: unknown) => {
      this.logger.warn({ err: error, taskId: task.id }, "could not broadcast cancellation");
    });
    return task;
  }

  private async currentStatus(taskId: string): Promise<string | undefined> {
    return (await this.prisma.task.findUnique({ where: { id: taskId }, select: { status: true } }))?.status;
  }

  /** Applies what a pool worker reports about a task of `tenantId` (and, for a pool worker, of `poolId`). */
  async applyReport(tenantId: string, report: TaskReport, poolId?: string): Promise<TaskReportReply> {
    const now = new Date();
    let changed: { task: TaskRow | null };
    switch (report.kind) {
      case "assigned":
        changed = await this.transition(tenantId, report.taskId, "assigned", { workerId: report.workerId }, {}, poolId);
        break;
      case "started":
        changed = await this.transition(tenantId, report.taskId, "started", { attempts: report.attempt, startedAt: now }, {}, poolId);
        break;
      case "progress":
        changed = await this.transition(tenantId, report.taskId, "progress", {}, { progress: report.progress, detail: report.detail ?? null }, poolId);
        break;
      case "retrying":
        changed = await this.transition(tenantId, report.taskId, "retrying", { attempts: report.attempt, error: report.error }, {
          nextAttemptInMs: report.nextAttemptInMs,
        }, poolId);
        break;
      case "completed":
        changed = await this.transition(tenantId, report.taskId, "completed", { result: report.result ?? null, error: null, finishedAt: now }, {}, poolId);
        break;
      case "failed":
        changed = await this.transition(tenantId, report.taskId, "failed", { attempts: report.attempt, error: report.error, finishedAt: now }, {}, poolId);
        break;
      case "cancelled":
        changed = await this.transition(tenantId, report.taskId, "cancelled", {
          finishedAt: now,
          error: { code: "CANCELLED", message: "cancelled", retryable: false },
        }, {}, poolId);
        break;
    }
    if (changed.task) return { accepted: true, status: changed.task.status as TaskStatus };
    // Refused: say why — no such task (for this tenant), another pool's task, or a state that no longer allows it.
    const current = await this.prisma.task.findFirst({ where: { id: report.taskId, tenantId }, select: { poolId: true, status: true } });
    if (!current) throw new NotFoundError("task");
    if (poolId !== undefined && current.poolId !== poolId) throw new ForbiddenError("the task belongs to another pool");
    return { accepted: false, status: current.status as TaskStatus };
  }

  /**
   * The only writer of task state: moves the task if (and only if) the state machine allows it from its
   * current state, atomically in PostgreSQL, then publishes the change. Returns null when refused.
   */
  async transition(
    tenantId: string,
    taskId: string,
    change: TransitionName,
    data: TaskChanges,
    eventExtra: Record<string, unknown> = {},
    poolId?: string,
  ): Promise<{ task: TaskRow | null }> {
    const rule = TRANSITIONS[change];
    // One round trip: the state check, the write and the read of the new row are one UPDATE … RETURNING.
    const params: unknown[] = [taskId, tenantId, [...rule.from], rule.to];
    const sets = [`"status" = $4`, `"updatedAt" = (now() AT TIME ZONE 'UTC')`];
    for (const [column, value] of Object.entries(data) as Array<[keyof TaskChanges, unknown]>) {
      params.push(value instanceof Date ? value.toISOString() : COLUMN_KIND[column] === "json" ? (value === null ? null : JSON.stringify(value)) : value);
      const placeholder = `$${params.length}`;
      const kind = COLUMN_KIND[column];
      sets.push(`"${column}" = ${kind === "json" ? `${placeholder}::jsonb` : kind === "time" ? `(${placeholder}::timestamptz AT TIME ZONE 'UTC')` : placeholder}`);
    }
    let poolFilter = "";
    if (poolId !== undefined) {
      params.push(poolId);
      poolFilter = ` AND "poolId" = $${params.length}`;
    }
    const rows = await this.prisma.$queryRawUnsafe<TaskRow[]>(
      `UPDATE "Task" SET ${sets.join(", ")} WHERE "id" = $1 AND "tenantId" = $2 AND "status" = ANY($3::text[])${poolFilter} RETURNING *`,
      ...params,
    );
    const task = rows[0];
    if (!task) return { task: null };
    if (change === "progress") {
      await this.publishRaw(task, "task.progress", { taskId: task.id, status: task.status, ...eventExtra });
    } else {
      await this.publish(task, `task.${change}`, eventExtra);
    }
    if (isTerminal(task.status)) {
      for (const listener of this.finishedListeners) {
        await listener(task).catch((error: unknown) => this.logger.error({ err: error, taskId }, "task-finished listener failed"));
      }
    }
    return { task };
  }

  private async publish(task: TaskRow, type: string, extra: Record<string, unknown> = {}): Promise<void> {
    await this.publishRaw(task, type, { task: serializeTask(task), ...extra });
  }

  private async publishRaw(task: TaskRow, type: string, data: Record<string, unknown>): Promise<void> {
    await this.events.publish({
      tenantId: task.tenantId,
      namespace: "tasks",
      rooms: [roomNames.tasks(), roomNames.task(task.id), roomNames.pool(task.poolId)],
      // Pool dashboards watch assignments too: who took what.
      alsoIn: type === "task.assigned" ? [{ namespace: "pools", rooms: [roomNames.pool(task.poolId)] }] : [],
      type,
      data,
    });
  }
}
