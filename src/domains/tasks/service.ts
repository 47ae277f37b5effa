import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import { z } from "zod";
import type { Principal } from "../../auth/principal.js";
import type { PrismaClient } from "../../db/client.js";
import { randomUUID } from "node:crypto";
import { AppError, BadRequestError, ConflictError, ForbiddenError, NotFoundError, UnavailableError } from "../../errors.js";
import { targetKey } from "../../events/event-log.js";
import type { Db, EventPublisher } from "../../events/publisher.js";
import type { TaskQueues, TaskTypeRegistry } from "../../jobs/queues.js";
import type { RedisKeys } from "../../jobs/redis-keys.js";
import type { Logger } from "../../observability/logger.js";
import { ID_PATTERN, roomNames } from "../../protocol/rooms.js";
import {
  BUILTIN_TASK_TYPES,
  isTerminal,
  leaseLockToken,
  TASK_STATUSES,
  type TaskJobData,
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
  lease: string | null;
  requeues: number;
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

/**
 * The same view as serializeTask, built by PostgreSQL from a row, so a state change's event is written in the
 * statement that makes the change. Timestamps are stored as UTC `timestamp(3)`; to_char gives what
 * Date#toISOString gives. Kept next to serializeTask, and test/task-view.test.ts checks the two agree.
 */
export function taskViewSql(t: string): string {
  const iso = (column: string) => `to_char(${t}."${column}", 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
  return `jsonb_build_object(
    'id', ${t}."id", 'type', ${t}."type", 'poolId', ${t}."poolId", 'status', ${t}."status", 'payload', ${t}."payload",
    'priority', ${t}."priority", 'maxAttempts', ${t}."maxAttempts", 'attempts', ${t}."attempts", 'timeoutMs', ${t}."timeoutMs",
    'result', ${t}."result", 'error', ${t}."error", 'workerId', ${t}."workerId", 'workflowId', ${t}."workflowId",
    'stepKey', ${t}."stepKey", 'createdAt', ${iso("createdAt")}, 'updatedAt', ${iso("updatedAt")},
    'queuedAt', ${iso("queuedAt")}, 'startedAt', ${iso("startedAt")}, 'finishedAt', ${iso("finishedAt")})`;
}

/** The rooms of a task's events, as outbox targets built from the row (task.assigned also goes to /pools). */
function taskTargetsSql(t: string, alsoInPools: boolean): string {
  const literal = (namespace: "tasks" | "pools", room: string) => `'${targetKey({ namespace, room })}'`;
  const targets = [
    literal("tasks", roomNames.tasks()),
    `${literal("tasks", roomNames.task(""))} || ${t}."id"`,
    `${literal("tasks", roomNames.pool(""))} || ${t}."poolId"`,
  ];
  // Pool dashboards watch assignments too: who took what.
  if (alsoInPools) targets.push(`${literal("pools", roomNames.pool(""))} || ${t}."poolId"`);
  return `ARRAY[${targets.join(", ")}]::text[]`;
}

const NOW_UTC = `(now() AT TIME ZONE 'UTC')`;
/** An event's time: the real current time, not the transaction's start (the outbox relay compares with it). */
const EVENT_TS = `(clock_timestamp() AT TIME ZONE 'UTC')`;

/** Called when a task reaches a terminal state, whoever drove it there (workflows chain on this). */
export type TaskFinishedListener = (task: TaskRow) => Promise<void>;

export interface TaskServiceOptions {
  backoffMs: number;
  keys: RedisKeys;
}

/** The columns a transition may set besides the status, and how each is passed to SQL. */
const COLUMN_KIND = {
  workerId: "plain",
  attempts: "plain",
  lease: "plain",
  requeues: "plain",
  queuedAt: "time",
  startedAt: "time",
  finishedAt: "time",
  result: "json",
  error: "json",
} as const;
type TaskChanges = Partial<Record<keyof typeof COLUMN_KIND, unknown>>;

/** Conditions a transition needs besides the state machine's. */
export interface TransitionGuard {
  /** A pool worker may only touch its own pool's tasks (and the queue a report's lease belongs to). */
  poolId?: string;
  /** The attempt's lease, as bound by `assigned`: reports of any other attempt are refused. */
  lease?: string;
  /** Optimistic check for the reconciler: the row must still be exactly as it was read. */
  updatedAt?: Date;
}

/** A committed transition: the new row and the outbox rows of its event, to be numbered and broadcast. */
export interface TransitionResult {
  task: TaskRow | null;
  outboxIds: string[];
}

/** Called after a task was put on the queue of (tenant, pool): lets an embedded worker start serving it. */
export type PoolActiveListener = (tenantId: string, poolId: string) => void;

/**
 * Tasks: submission, queries, cancellation, and the one place that applies state changes (`transition`).
 * Every change is one SQL statement that updates the row and writes its event to the outbox, so the change and
 * its event commit together; the event is numbered and broadcast right after.
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
      await this.redis.sadd(this.options.keys.defaultPoolTenants, tenantId);
      this.registeredDefaultTenants.add(tenantId);
    }
    for (const listener of this.poolActiveListeners) listener(tenantId, poolId);
  }

  /**
   * `POST /api/v1/tasks`: stores the task as queued with its task.created and task.queued events (one
   * statement), numbers and broadcasts them, then adds the BullMQ job. Once the statement has committed the
   * task will run: a job that cannot be added now is added by the retry below or by the reconciler.
   */
  async submit(principal: Principal, body: unknown, idempotencyKey?: string): Promise<{ task: TaskView; created: boolean }> {
    const input = parseInput(SubmitTaskSchema, body);
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw new BadRequestError("invalid Idempotency-Key", [{ field: "Idempotency-Key", message: "1-200 visible ASCII characters" }]);
    }
    const requestHash = idempotencyKey ? createHash("sha256").update(JSON.stringify(input)).digest("hex") : null;
    if (idempotencyKey) {
      const existing = await this.findByIdempotencyKey(principal.tenantId, idempotencyKey, requestHash!);
      if (existing) return { task: serializeTask(await this.ensureJob(existing)), created: false };
    }
    const poolId = input.poolId ?? DEFAULT_POOL_ID;
    await this.validateTarget(principal.tenantId, poolId, input.type);
    // Refuse while the queue is unreachable, before anything is stored: a 202 must mean the task will run soon.
    if (this.redis.status !== "ready") throw new UnavailableError("the task queue is unavailable; try again");
    const { task, outboxIds } = await this.createQueued(this.prisma, principal.tenantId, { ...input, poolId }, { idempotencyKey: idempotencyKey ?? null, requestHash });
    if (!task) {
      // A concurrent request with the same key won the insert: answer with its task.
      const existing = await this.findByIdempotencyKey(principal.tenantId, idempotencyKey!, requestHash!);
      if (existing) return { task: serializeTask(await this.ensureJob(existing)), created: false };
      throw new ConflictError("a concurrent request with this Idempotency-Key failed; try again");
    }
    await this.events.relay(outboxIds);
    await this.addJob(task);
    return { task: serializeTask(task), created: true };
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

  /**
   * A client resends a key when it did not get our answer, typically because the node that stored the task
   * died before adding its job: add it now (idempotent: the job id is the task id) rather than leave it to
   * the reconciler.
   */
  private async ensureJob(task: TaskRow): Promise<TaskRow> {
    if (task.status === "queued") await this.addJob(task);
    return task;
  }

  private async findByIdempotencyKey(tenantId: string, key: string, requestHash: string): Promise<TaskRow | null> {
    const existing = await this.prisma.task.findUnique({ where: { tenantId_idempotencyKey: { tenantId, idempotencyKey: key } } });
    if (existing && existing.requestHash !== requestHash) {
      throw new ConflictError("Idempotency-Key was already used with a different request body");
    }
    return existing;
  }

  /**
   * Inserts a task directly as `queued` together with its task.created and task.queued events, in one statement
   * on `db` (a transaction's, for workflow steps). The row is the durable enqueue intent: the BullMQ job is
   * added from it after the commit. `task` is null when the Idempotency-Key is already taken.
   */
  async createQueued(
    db: Db,
    tenantId: string,
    input: Omit<SubmitTaskInput, "poolId"> & { poolId: string },
    extra: { idempotencyKey: string | null; requestHash: string | null; workflowId?: string; stepKey?: string; id?: string },
  ): Promise<TransitionResult> {
    const rows = await db.$queryRawUnsafe<Array<TaskRow & { outboxIds: string[] }>>(
      `WITH inserted AS (
         INSERT INTO "Task" ("id", "tenantId", "poolId", "type", "payload", "status", "priority", "maxAttempts", "timeoutMs",
                             "idempotencyKey", "requestHash", "workflowId", "stepKey", "createdAt", "updatedAt", "queuedAt")
         VALUES ($1, $2, $3, $4, $5::jsonb, 'queued', $6, $7, $8, $9, $10, $11, $12, ${NOW_UTC}, ${NOW_UTC}, ${NOW_UTC})
         ON CONFLICT ("tenantId", "idempotencyKey") DO NOTHING
         RETURNING *
       ), staged AS (
         INSERT INTO "Outbox" ("tenantId", "eventId", "type", "targets", "data", "ts")
         SELECT i."tenantId", e.event_id, e.type, ${taskTargetsSql("i", false)},
                jsonb_build_object('task', ${taskViewSql("i")} || e.patch), ${EVENT_TS}
         FROM inserted i CROSS JOIN (VALUES
           (1, $13, 'task.created', '{"status":"created","queuedAt":null}'::jsonb),
           (2, $14, 'task.queued', '{}'::jsonb)) AS e(n, event_id, type, patch)
         ORDER BY e.n
         RETURNING "id"
       )
       SELECT i.*, ARRAY(SELECT "id"::text FROM staged ORDER BY "id") AS "outboxIds" FROM inserted i`,
      extra.id ?? randomUUID(),
      tenantId,
      input.poolId,
      input.type,
      JSON.stringify(input.payload ?? {}),
      input.priority,
      input.maxAttempts,
      input.timeoutMs ?? null,
      extra.idempotencyKey,
      extra.requestHash,
      extra.workflowId ?? null,
      extra.stepKey ?? null,
      randomUUID(),
      randomUUID(),
    );
    const row = rows[0];
    if (!row) return { task: null, outboxIds: [] };
    const { outboxIds, ...task } = row;
    return { task, outboxIds };
  }

  /**
   * Adds the task's BullMQ job (idempotent: the job id is the task id). If Redis refuses, it keeps trying for a
   * while in the background; past that, or if this node dies first, the reconciler adds it.
   */
  async addJob(task: TaskRow, attempt = 0): Promise<void> {
    try {
      await this.queues.enqueue(jobData(task), {
        maxAttempts: attemptsLeft(task),
        priority: task.priority,
        backoffMs: this.options.backoffMs,
      });
    } catch (error) {
      this.logger.warn({ err: (error as Error).message, taskId: task.id, attempt }, "could not add the task's job yet; retrying");
      if (attempt < 30) setTimeout(() => void this.retryAddJob(task, attempt + 1), Math.min(5000, 200 * 2 ** attempt)).unref();
      return;
    }
    // The job exists now. If the tenant could not be noted, embedded workers of other nodes learn of it at the
    // tenant's next submission (the note is retried then).
    await this.notePoolActive(task.tenantId, task.poolId).catch((error: unknown) =>
      this.logger.warn({ err: (error as Error).message, taskId: task.id }, "could not register the pool for embedded workers"),
    );
  }

  private async retryAddJob(task: TaskRow, attempt: number): Promise<void> {
    const current = await this.prisma.task.findUnique({ where: { id: task.id }, select: { status: true } }).catch(() => ({ status: "queued" }));
    if (current?.status === "queued") await this.addJob(task, attempt);
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
    const { task } = await this.transition(existing.tenantId, existing.id, "cancelled", cancelChanges("cancelled by request"));
    if (!task) throw new ConflictError(`task is already ${(await this.currentStatus(existing.id)) ?? "gone"}`);
    await this.stopJobs([task]);
    return serializeTask(task);
  }

  /** Cancellation inside a caller's transaction (workflows); call stopJobs with the tasks after the commit. */
  async cancelIn(db: Db, task: TaskRow, reason: string): Promise<TransitionResult> {
    return this.transitionStatement(db, task.tenantId, task.id, "cancelled", cancelChanges(reason), {});
  }

  /** After cancelling: remove queued jobs, and tell whichever process runs the others to abort them. */
  async stopJobs(tasks: readonly TaskRow[]): Promise<void> {
    for (const task of tasks) {
      await this.queues.remove(task.tenantId, task.poolId, task.id);
      await this.redis.publish(this.options.keys.taskCancel, JSON.stringify({ taskId: task.id })).catch((error: unknown) => {
        this.logger.warn({ err: error, taskId: task.id }, "could not broadcast cancellation");
      });
    }
  }

  private async currentStatus(taskId: string): Promise<string | undefined> {
    return (await this.prisma.task.findUnique({ where: { id: taskId }, select: { status: true } }))?.status;
  }

  /**
   * Applies what a pool worker reports about a task of (tenant, pool). `assigned` binds the attempt's lease,
   * and only when the lease's token holds the job's lock in Redis; every other report must carry the bound
   * lease. So a report of an attempt that lost its job, or of a worker that never took it, changes nothing.
   */
  async applyReport(tenantId: string, poolId: string, report: TaskReport): Promise<TaskReportReply> {
    const now = new Date();
    const guard: TransitionGuard = { poolId, lease: report.lease };
    let changed: { task: TaskRow | null };
    switch (report.kind) {
      case "assigned": {
        const token = leaseLockToken(report.lease);
        if (!token || !(await this.queues.holdsLock(tenantId, poolId, report.taskId, token))) {
          this.logger.warn({ tenantId, poolId, taskId: report.taskId, workerId: report.workerId }, "assignment refused: the lease does not hold the job's lock");
          return this.refusal(tenantId, poolId, report.taskId);
        }
        changed = await this.transition(tenantId, report.taskId, "assigned", { workerId: report.workerId, lease: report.lease }, {}, { poolId });
        break;
      }
      case "started":
        changed = await this.transition(tenantId, report.taskId, "started", { attempts: report.attempt, startedAt: now }, {}, guard);
        break;
      case "progress":
        changed = await this.transition(tenantId, report.taskId, "progress", {}, { progress: report.progress, detail: report.detail ?? null }, guard);
        break;
      case "retrying":
        changed = await this.transition(tenantId, report.taskId, "retrying", { attempts: report.attempt, error: report.error }, {
          nextAttemptInMs: report.nextAttemptInMs,
        }, guard);
        break;
      case "completed":
        changed = await this.transition(tenantId, report.taskId, "completed", { result: report.result ?? null, error: null, finishedAt: now }, {}, guard);
        break;
      case "failed":
        changed = await this.transition(tenantId, report.taskId, "failed", { attempts: report.attempt, error: report.error, finishedAt: now }, {}, guard);
        break;
      case "cancelled":
        changed = await this.transition(tenantId, report.taskId, "cancelled", cancelChanges("cancelled"), {}, guard);
        break;
    }
    if (changed.task) return { accepted: true, status: changed.task.status as TaskStatus };
    const reply = await this.refusal(tenantId, poolId, report.taskId);
    const current = await this.prisma.task.findUnique({ where: { id: report.taskId }, select: { lease: true } });
    if (current?.lease !== report.lease && report.kind !== "assigned") {
      this.logger.warn({ tenantId, poolId, taskId: report.taskId, kind: report.kind }, "report refused: its lease is not the task's current lease");
    }
    return reply;
  }

  /** Why a report was refused: no such task (for this tenant), another pool's task, or a state or lease that no longer allows it. */
  private async refusal(tenantId: string, poolId: string, taskId: string): Promise<TaskReportReply> {
    const current = await this.prisma.task.findFirst({ where: { id: taskId, tenantId }, select: { poolId: true, status: true } });
    if (!current) throw new NotFoundError("task");
    if (current.poolId !== poolId) throw new ForbiddenError("the task belongs to another pool");
    return { accepted: false, status: current.status as TaskStatus };
  }

  /**
   * The only writer of task state: moves the task if (and only if) the state machine and the guard allow it,
   * in one statement with its event, then numbers and broadcasts the event. Returns null when refused.
   */
  async transition(
    tenantId: string,
    taskId: string,
    change: TransitionName,
    data: TaskChanges,
    eventExtra: Record<string, unknown> = {},
    guard: TransitionGuard = {},
  ): Promise<{ task: TaskRow | null }> {
    const { task, outboxIds } = await this.transitionStatement(this.prisma, tenantId, taskId, change, data, guard, eventExtra);
    if (!task) return { task: null };
    await this.events.relay(outboxIds);
    if (isTerminal(task.status)) await this.finished(task);
    return { task };
  }

  /** Tells the task-finished listeners (workflows); a failure is logged, and the reconciler repeats it later. */
  async finished(task: TaskRow): Promise<void> {
    for (const listener of this.finishedListeners) {
      await listener(task).catch((error: unknown) => this.logger.error({ err: error, taskId: task.id }, "task-finished listener failed"));
    }
  }

  /** One UPDATE … RETURNING that also writes the event to the outbox, on `db` (the client or a transaction). */
  async transitionStatement(
    db: Db,
    tenantId: string,
    taskId: string,
    change: TransitionName,
    data: TaskChanges,
    guard: TransitionGuard,
    eventExtra: Record<string, unknown> = {},
  ): Promise<TransitionResult> {
    const rule = TRANSITIONS[change];
    const params: unknown[] = [taskId, tenantId, [...rule.from], rule.to];
    const sets = [`"status" = $4`, `"updatedAt" = ${NOW_UTC}`];
    for (const [column, value] of Object.entries(data) as Array<[keyof TaskChanges, unknown]>) {
      params.push(value instanceof Date ? value.toISOString() : COLUMN_KIND[column] === "json" ? (value === null ? null : JSON.stringify(value)) : value);
      const placeholder = `$${params.length}`;
      const kind = COLUMN_KIND[column];
      sets.push(`"${column}" = ${kind === "json" ? `${placeholder}::jsonb` : kind === "time" ? `(${placeholder}::timestamptz AT TIME ZONE 'UTC')` : placeholder}`);
    }
    const conditions = [`"id" = $1`, `"tenantId" = $2`, `"status" = ANY($3::text[])`];
    const condition = (sql: (placeholder: string) => string, value: unknown): void => {
      params.push(value);
      conditions.push(sql(`$${params.length}`));
    };
    if (guard.poolId !== undefined) condition((p) => `"poolId" = ${p}`, guard.poolId);
    if (guard.lease !== undefined) condition((p) => `"lease" = ${p}`, guard.lease);
    if (guard.updatedAt !== undefined) condition((p) => `"updatedAt" = (${p}::timestamptz AT TIME ZONE 'UTC')`, guard.updatedAt.toISOString());
    params.push(randomUUID(), rule.event, JSON.stringify(eventExtra));
    const [eventId, type, extra] = [params.length - 2, params.length - 1, params.length].map((n) => `$${n}`);
    const eventData =
      change === "progress"
        ? `jsonb_build_object('taskId', u."id", 'status', u."status") || ${extra}::jsonb`
        : `jsonb_build_object('task', ${taskViewSql("u")}) || ${extra}::jsonb`;
    const rows = await db.$queryRawUnsafe<Array<TaskRow & { outboxId: string }>>(
      `WITH updated AS (
         UPDATE "Task" SET ${sets.join(", ")} WHERE ${conditions.join(" AND ")} RETURNING *
       ), staged AS (
         INSERT INTO "Outbox" ("tenantId", "eventId", "type", "targets", "data", "ts")
         SELECT u."tenantId", ${eventId}, ${type}, ${taskTargetsSql("u", rule.event === "task.assigned")}, ${eventData}, ${EVENT_TS}
         FROM updated u
         RETURNING "id"
       )
       SELECT u.*, (SELECT "id"::text FROM staged) AS "outboxId" FROM updated u`,
      ...params,
    );
    const row = rows[0];
    if (!row) return { task: null, outboxIds: [] };
    const { outboxId, ...task } = row;
    return { task, outboxIds: [outboxId] };
  }
}

function cancelChanges(reason: string): TaskChanges {
  return { finishedAt: new Date(), error: { code: "CANCELLED", message: reason, retryable: false } };
}

/** Runs a task already failed (finished with an error) before its job was (re-)added. */
function failedRuns(task: TaskRow): number {
  // `attempts` counts runs started; a run still assigned or started when the job was lost did not fail.
  return task.status === "started" ? Math.max(0, task.attempts - 1) : task.attempts;
}

/** BullMQ attempts for a job added now: what the task has left, and at least one (a lost run is not a failure). */
export function attemptsLeft(task: TaskRow): number {
  return Math.max(1, task.maxAttempts - failedRuns(task));
}

export function jobData(task: TaskRow): TaskJobData {
  return {
    tenantId: task.tenantId,
    taskId: task.id,
    poolId: task.poolId,
    type: task.type,
    payload: task.payload,
    timeoutMs: task.timeoutMs,
    maxAttempts: task.maxAttempts,
    ...(task.attempts > 0 ? { attemptOffset: task.attempts } : {}),
  };
}
