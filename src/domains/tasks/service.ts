import { createHash } from "node:crypto";
import { z } from "zod";
import type { Principal } from "../../auth/principal.js";
import type { Db, PrismaClient } from "../../db/client.js";
import { prismaSql, type Sql } from "../../db/sql.js";
import {
  BadRequestError,
  ConflictError,
  DependencyUnavailableError,
  ForbiddenError,
  InvalidStateError,
  NotFoundError,
} from "../../errors.js";
import { stageChange } from "../../events/outbox.js";
import type { EventPublisher } from "../../events/publisher.js";
import type { TaskTypeRegistry } from "../../jobs/queues.js";
import type { Logger } from "../../observability/logger.js";
import type { Metrics } from "../../observability/metrics.js";
import { encodeCursor } from "../../protocol/cursor.js";
import { ID_PATTERN, roomNames } from "../../protocol/rooms.js";
import {
  BUILTIN_TASK_TYPES,
  isTerminal,
  leaseLockToken,
  TASK_STATUSES,
  type TaskReport,
  type TaskReportReply,
  type TaskStatus,
} from "../../protocol/tasks.js";
import { afterPageKey, decodePageCursor, keysWithinBytes, PAGE_ORDER, PageQuerySchema, toPage } from "../pagination.js";
import type { ResourceDirectory } from "../resources.js";
import { DEFAULT_POOL_ID } from "../tenants.js";
import { parseInput } from "../validation.js";
import type { TaskJobs } from "./jobs.js";
import { statusesEntered, type TransitionName } from "./state-machine.js";
import { ProgressCoalescer } from "./progress-coalescer.js";
import { TASK_WRITES, taskInsert, type TaskChanges, type TransitionGuard, type TransitionResult } from "./store.js";
import { SubmitTaskSchema, TYPE_PATTERN, type SubmitTaskInput } from "./submission.js";
import { serializeTask, type TaskRow, type TaskView } from "./view.js";

const isoTime = z.iso
  .datetime({ offset: true, message: "must be an ISO-8601 time, e.g. 2026-12-07T10:00:00Z" })
  .transform((value) => new Date(value));

/** The filters a task list, its counts and a bulk action share. */
export const TaskFilterSchema = z.strictObject({
  status: z.enum(TASK_STATUSES).optional(),
  poolId: z.string().regex(ID_PATTERN, "must be a pool id").optional(),
  type: z.string().regex(TYPE_PATTERN, "must be a task type").optional(),
  createdAfter: isoTime.optional(),
  createdBefore: isoTime.optional(),
  /** The tasks a schedule created. */
  scheduleId: z.string().regex(ID_PATTERN, "must be a schedule id").optional(),
  /** A prefix of the task id. */
  q: z
    .string()
    .regex(/^[0-9a-fA-F-]{1,36}$/, "must be the beginning of a task id (hex digits and '-')")
    .optional(),
});
export type TaskFilter = z.infer<typeof TaskFilterSchema>;

/** The Prisma `where` of a tenant's tasks matching a filter. */
export function taskFilterWhere(tenantId: string, { status, poolId, type, scheduleId, createdAfter, createdBefore, q }: TaskFilter) {
  return {
    tenantId,
    ...(status ? { status } : {}),
    ...(poolId ? { poolId } : {}),
    ...(type ? { type } : {}),
    ...(scheduleId ? { scheduleId } : {}),
    ...(createdAfter || createdBefore
      ? { createdAt: { ...(createdAfter ? { gte: createdAfter } : {}), ...(createdBefore ? { lt: createdBefore } : {}) } }
      : {}),
    ...(q ? { id: { startsWith: q.toLowerCase() } } : {}),
  };
}

/** `GET /api/v1/tasks`: filters and the page. Unknown parameters are a 400 (a misspelt filter must not list everything). */
const ListQuerySchema = z.strictObject({
  ...PageQuerySchema.shape,
  ...TaskFilterSchema.shape,
});

/** `GET /api/v1/tasks/counts`: every filter of the list but the status (the counts are per status). */
const CountsQuerySchema = TaskFilterSchema.omit({ status: true });

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;

/** What a retry needs of the task as read: its queue, its retries so far, and the version its guard compares. */
export type RetryTarget = Pick<TaskRow, "tenantId" | "poolId" | "id" | "retries" | "updatedAt">;

/** The Idempotency-Key of a schedule's task for one due time (spaces: outside what IDEMPOTENCY_KEY lets clients send). */
export function scheduledTaskKey(scheduleId: string, dueAt: number): string {
  return `schedule ${scheduleId} ${new Date(dueAt).toISOString()}`;
}

/** Called when a task reaches a terminal state, whoever drove it there (workflows chain on this). */
export type TaskFinishedListener = (task: TaskRow) => Promise<void>;

/**
 * Tasks: submission, queries, cancellation, and the one place that applies state changes (`transition`).
 * Every change is one SQL statement that writes the row and its events (in the event log's own statement, or into
 * the outbox inside a caller's transaction), so the change and its events commit together; they are numbered and
 * broadcast in that statement or right after the transaction.
 */
export class TaskService {
  private readonly finishedListeners: TaskFinishedListener[] = [];
  /** A flood of progress reports stores at most one progress event per attempt per interval (the newest wins). */
  private readonly progress = new ProgressCoalescer<TaskReportReply>();

  constructor(
    private readonly prisma: PrismaClient,
    private readonly sql: Sql,
    private readonly resources: ResourceDirectory,
    readonly jobs: TaskJobs,
    private readonly types: TaskTypeRegistry,
    private readonly events: EventPublisher,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {}

  onTaskFinished(listener: TaskFinishedListener): void {
    this.finishedListeners.push(listener);
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
    if (!this.jobs.ready) throw new DependencyUnavailableError("redis");
    const task = await this.metrics.timeQuery("task_write", () =>
      this.events.write(
        TASK_WRITES,
        taskInsert(principal.tenantId, { ...input, poolId }, { idempotencyKey: idempotencyKey ?? null, requestHash }),
      ),
    );
    if (!task) {
      // A concurrent request with the same key won the insert: answer with its task.
      const existing = await this.findByIdempotencyKey(principal.tenantId, idempotencyKey!, requestHash!);
      if (existing) return { task: serializeTask(await this.ensureJob(existing)), created: false };
      throw new ConflictError("a concurrent request with this Idempotency-Key failed; try again");
    }
    this.recordCommitted(task, "inserted");
    await this.jobs.add(task);
    return { task: serializeTask(task), created: true };
  }

  /**
   * The task of one due time of a schedule, through the same insert as `submit`. Its Idempotency-Key names the
   * schedule and the due time, in a form no client can send (it has spaces), so however often a due time is
   * handled (a retried or stalled scheduler job, two nodes) it stores one task; a repeat only makes sure the
   * job exists. The insert also requires the schedule to exist and not be paused (in the same statement): null
   * when it does not, and no task was stored for the due time.
   */
  async submitScheduled(
    tenantId: string,
    scheduleId: string,
    dueAt: number,
    input: Omit<SubmitTaskInput, "poolId"> & { poolId: string },
  ): Promise<{ task: TaskRow; created: boolean } | null> {
    const idempotencyKey = scheduledTaskKey(scheduleId, dueAt);
    const task = await this.metrics.timeQuery("task_write", () =>
      this.events.write(TASK_WRITES, taskInsert(tenantId, input, { idempotencyKey, requestHash: null, scheduleId })),
    );
    if (task) {
      this.recordCommitted(task, "inserted");
      await this.jobs.add(task);
      return { task, created: true };
    }
    const existing = await this.prisma.task.findUnique({ where: { tenantId_idempotencyKey: { tenantId, idempotencyKey } } });
    return existing ? { task: await this.ensureJob(existing), created: false } : null;
  }

  async validateTarget(tenantId: string, poolId: string, type: string): Promise<void> {
    // Also creates the tenant's default pool on first sight; positive answers are cached.
    if (!(await this.resources.exists(tenantId, "pool", poolId))) {
      throw new NotFoundError("pool", [{ field: "poolId", message: "no such pool" }]);
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
    if (task.status === "queued") await this.jobs.add(task);
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
   * The task with `head`, the cursor of its room `task:<id>`, from one statement: a task's change and its events'
   * numbers commit together, so the row and the room's sequence read in one snapshot agree exactly, and
   * subscribing with `after: head` neither misses nor repeats anything. (A workflow step's task created or
   * cancelled inside its workflow's transaction is numbered right after that commits: in that instant the
   * event can come once more.)
   */
  async getWithHead(principal: Principal, taskId: string): Promise<{ task: TaskView; head: string }> {
    const rows = await this.sql.query<Array<TaskRow & { _headSeq: number | null; _headEpoch: string | null }>>(
      `SELECT t.*, s."seq" AS "_headSeq", s."epoch" AS "_headEpoch"
         FROM "Task" t LEFT JOIN "RoomSequence" s
           ON s."tenantId" = t."tenantId" AND s."namespace" = 'tasks' AND s."room" = 'task:' || t."id"
        WHERE t."id" = $1 AND t."tenantId" = $2`,
      [taskId, principal.tenantId],
    );
    const row = rows[0];
    if (!row) throw new NotFoundError("task");
    const { _headSeq, _headEpoch, ...task } = row;
    const head =
      _headEpoch === null || _headSeq === null
        ? await this.events.head(principal.tenantId, "tasks", roomNames.task(task.id))
        : { epoch: _headEpoch, seq: Number(_headSeq) };
    return { task: serializeTask(task), head: encodeCursor(head) };
  }

  /** A page of the tenant's tasks, bounded in rows (`limit`) and in bytes (`maxBytes`, MAX_RESPONSE_BYTES). */
  async list(principal: Principal, query: unknown, maxBytes: number) {
    const { cursor, limit, ...filter } = parseInput(ListQuerySchema, query, "query");
    const keys = await this.prisma.task.findMany({
      where: { ...taskFilterWhere(principal.tenantId, filter), ...afterPageKey(cursor ? decodePageCursor(cursor) : undefined) },
      orderBy: PAGE_ORDER,
      take: limit + 1,
      select: { id: true, createdAt: true },
    });
    const fit = await keysWithinBytes(keys, limit, maxBytes, (ids) => this.storedSizes(principal.tenantId, ids));
    const rows = fit.keys.length
      ? await this.prisma.task.findMany({
          where: { tenantId: principal.tenantId, id: { in: fit.keys.map((key) => key.id) } },
          orderBy: PAGE_ORDER,
        })
      : [];
    return toPage(rows, limit, serializeTask, maxBytes, fit.more);
  }

  /** The text size of the tasks' payload, result and error: what can make one task big. */
  private async storedSizes(tenantId: string, ids: string[]): Promise<Map<string, number>> {
    const rows = await this.sql.query<Array<{ id: string; bytes: number }>>(
      `SELECT "id", (octet_length("payload"::text) + coalesce(octet_length("result"::text), 0) + coalesce(octet_length("error"::text), 0))::int AS "bytes"
         FROM "Task" WHERE "tenantId" = $1 AND "id" = ANY($2::text[])`,
      [tenantId, ids],
    );
    return new Map(rows.map((row) => [row.id, Number(row.bytes)]));
  }

  /** Exact counts of the tenant's tasks per status (every status, zeros included), under the list's filters but the status. */
  async counts(principal: Principal, query: unknown): Promise<{ counts: Record<TaskStatus, number>; total: number }> {
    const filter = parseInput(CountsQuerySchema, query, "query");
    const rows = await this.prisma.task.groupBy({
      by: ["status"],
      where: taskFilterWhere(principal.tenantId, filter),
      _count: { _all: true },
    });
    const counts = Object.fromEntries(TASK_STATUSES.map((status) => [status, 0])) as Record<TaskStatus, number>;
    let total = 0;
    for (const row of rows) {
      counts[row.status as TaskStatus] = row._count._all;
      total += row._count._all;
    }
    return { counts, total };
  }

  /**
   * Runs a failed or cancelled task again: back to `queued` with its attempts starting over and `retries` counted,
   * announced by task.retried then task.queued, and its job added anew. Any other state is INVALID_STATE (409),
   * and so is a task whose previous run still holds its job (a cancelled run that has not stopped yet).
   */
  async retry(principal: Principal, taskId: string): Promise<TaskView> {
    const existing = await this.prisma.task.findFirst({ where: { id: taskId, tenantId: principal.tenantId } });
    if (!existing) throw new NotFoundError("task");
    if (existing.status !== "failed" && existing.status !== "cancelled") {
      throw new InvalidStateError(`only a failed or cancelled task can be retried; this one is ${existing.status}`);
    }
    if (!this.jobs.ready) throw new DependencyUnavailableError("redis");
    const outcome = await this.retryRow(existing);
    if (outcome === "active") throw new InvalidStateError("the task's previous run has not stopped yet; try again shortly");
    if (!outcome) throw new InvalidStateError(`task is now ${(await this.currentStatus(existing.id)) ?? "gone"}`);
    await this.jobs.add(outcome);
    return serializeTask(outcome);
  }

  /**
   * The retry of one task as read (`existing`), shared by the single and the bulk retry: its old job is cleared,
   * then the row moves back to queued, guarded by the row as read (a concurrent change in between refuses it:
   * null). "active" when its previous run still holds the job. The caller adds the new job.
   */
  async retryRow(existing: RetryTarget): Promise<TaskRow | "active" | null> {
    if ((await this.jobs.queues.clearFinished(existing.tenantId, existing.poolId, existing.id)) === "active") return "active";
    const changes: TaskChanges = {
      attempts: 0,
      retries: existing.retries + 1,
      queuedAt: new Date(),
      workerId: null,
      lease: null,
      startedAt: null,
      finishedAt: null,
      result: null,
      error: null,
    };
    const { task } = await this.transition(existing.tenantId, existing.id, "retried", changes, {}, { updatedAt: existing.updatedAt });
    return task;
  }

  /**
   * Cancels a task that has not finished. A queued job is removed from its queue; a running one is told to
   * abort through Redis, and whatever its worker reports afterwards is refused by the state machine.
   */
  async cancel(principal: Principal, taskId: string): Promise<TaskView> {
    const existing = await this.prisma.task.findFirst({ where: { id: taskId, tenantId: principal.tenantId } });
    if (!existing) throw new NotFoundError("task");
    const task = await this.cancelRow(existing, "cancelled by request");
    if (!task) throw new ConflictError(`task is already ${(await this.currentStatus(existing.id)) ?? "gone"}`);
    await this.jobs.stop([task]);
    return serializeTask(task);
  }

  /** Cancels one task if it is still open (null otherwise); the caller stops its job. */
  async cancelRow(existing: { tenantId: string; id: string }, reason: string): Promise<TaskRow | null> {
    return (await this.transition(existing.tenantId, existing.id, "cancelled", cancelChanges(reason))).task;
  }

  /** Cancellation inside a caller's transaction (workflows); after the commit, record it and stop the tasks' jobs. */
  async cancelIn(db: Db, task: TaskRow, reason: string): Promise<TransitionResult> {
    const write = {
      op: "transition",
      tenantId: task.tenantId,
      taskId: task.id,
      change: "cancelled",
      data: cancelChanges(reason),
      guard: {},
      eventExtra: {},
    } as const;
    const { row, outboxIds } = await this.metrics.timeQuery("task_write", () => stageChange(prismaSql(db), TASK_WRITES, write));
    return { task: row, outboxIds };
  }

  /** A new task inside a caller's transaction (workflow steps); after the commit, record it and add its job. */
  async createIn(
    db: Db,
    tenantId: string,
    input: Parameters<typeof taskInsert>[1],
    extra: Parameters<typeof taskInsert>[2],
  ): Promise<TransitionResult> {
    const { row, outboxIds } = await this.metrics.timeQuery("task_write", () =>
      stageChange(prismaSql(db), TASK_WRITES, taskInsert(tenantId, input, extra)),
    );
    return { task: row, outboxIds };
  }

  /**
   * Counts a committed change of `task`: each state it entered, and, when it finished, its time from creation.
   * Only after the commit, so a rolled-back transaction (a workflow's) counts nothing.
   */
  recordCommitted(task: TaskRow, change: TransitionName | "inserted"): void {
    const entered = statusesEntered(change);
    for (const status of entered) this.metrics.taskEntered(status, task.tenantId);
    if (entered.some(isTerminal)) {
      const finishedAt = task.finishedAt ?? task.updatedAt;
      this.metrics.taskDuration.observe(Math.max(0, finishedAt.getTime() - task.createdAt.getTime()) / 1000);
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
  async applyReport(tenantId: string, poolId: string, report: TaskReport, options: { trusted?: boolean } = {}): Promise<TaskReportReply> {
    const attempt = `${tenantId}|${report.taskId}|${report.lease}`;
    if (report.kind === "progress") return this.progress.submit(attempt, () => this.applyOne(tenantId, poolId, report, options));
    // The attempt's progress still waiting for its interval is stored first: an outcome is never followed by progress.
    await this.progress.settle(attempt);
    return this.applyOne(tenantId, poolId, report, options);
  }

  private async applyOne(tenantId: string, poolId: string, report: TaskReport, options: { trusted?: boolean }): Promise<TaskReportReply> {
    const now = new Date();
    const guard: TransitionGuard = { poolId, lease: report.lease };
    // A report that binds a lease must prove the worker took the job. The embedded worker is this process: it
    // got the token from BullMQ itself, so its word needs no Redis round trip.
    const holdsJob = async (workerId: string): Promise<boolean> => {
      if (options.trusted) return true;
      const token = leaseLockToken(report.lease);
      if (token && (await this.jobs.queues.holdsLock(tenantId, poolId, report.taskId, token))) return true;
      this.logger.warn({ tenantId, poolId, taskId: report.taskId, workerId }, "assignment refused: the lease does not hold the job's lock");
      return false;
    };
    let changed: { task: TaskRow | null };
    switch (report.kind) {
      case "assigned": {
        if (!(await holdsJob(report.workerId))) return withoutLease(await this.refusal(tenantId, poolId, report.taskId));
        changed = await this.transition(
          tenantId,
          report.taskId,
          "assigned",
          { workerId: report.workerId, lease: report.lease },
          {},
          { poolId, newLease: report.lease },
        );
        break;
      }
      case "started":
        if (report.workerId !== undefined) {
          // A claim: assigned and started in one statement, both events stored.
          if (!(await holdsJob(report.workerId))) return withoutLease(await this.refusal(tenantId, poolId, report.taskId));
          const claim = { workerId: report.workerId, lease: report.lease, attempts: report.attempt, startedAt: now };
          changed = await this.transition(tenantId, report.taskId, "claimed", claim, {}, { poolId, newLease: report.lease });
          break;
        }
        changed = await this.transition(tenantId, report.taskId, "started", { attempts: report.attempt, startedAt: now }, {}, guard);
        break;
      case "progress":
        changed = await this.transition(
          tenantId,
          report.taskId,
          "progress",
          {},
          { progress: report.progress, detail: report.detail ?? null },
          guard,
        );
        break;
      case "retrying":
        changed = await this.transition(
          tenantId,
          report.taskId,
          "retrying",
          { attempts: report.attempt, error: report.error },
          {
            nextAttemptInMs: report.nextAttemptInMs,
          },
          guard,
        );
        break;
      case "completed":
        changed = await this.transition(
          tenantId,
          report.taskId,
          "completed",
          { result: report.result ?? null, error: null, finishedAt: now },
          {},
          guard,
        );
        break;
      case "failed":
        changed = await this.transition(
          tenantId,
          report.taskId,
          "failed",
          { attempts: report.attempt, error: report.error, finishedAt: now },
          {},
          guard,
        );
        break;
      case "cancelled":
        changed = await this.transition(tenantId, report.taskId, "cancelled", cancelChanges("cancelled"), {}, guard);
        break;
    }
    if (changed.task) return { accepted: true, status: changed.task.status as TaskStatus };
    const reply = await this.refusal(tenantId, poolId, report.taskId);
    const binds = report.kind === "assigned" || (report.kind === "started" && report.workerId !== undefined);
    if (binds && reply.lease === report.lease && (reply.status === "assigned" || reply.status === "started")) {
      // The same claim again (its first ack was lost): it already holds, and nothing is published twice.
      return { accepted: true, status: reply.status };
    }
    if (reply.lease !== report.lease && !binds) {
      this.logger.warn(
        { tenantId, poolId, taskId: report.taskId, kind: report.kind },
        "report refused: its lease is not the task's current lease",
      );
    }
    return withoutLease(reply);
  }

  /** Why a report was refused: no such task (for this tenant), another pool's task, or a state or lease that no longer allows it. */
  private async refusal(tenantId: string, poolId: string, taskId: string): Promise<TaskReportReply & { lease: string | null }> {
    const current = await this.prisma.task.findFirst({
      where: { id: taskId, tenantId },
      select: { poolId: true, status: true, lease: true },
    });
    if (!current) throw new NotFoundError("task");
    if (current.poolId !== poolId) throw new ForbiddenError("the task belongs to another pool");
    return { accepted: false, status: current.status as TaskStatus, lease: current.lease };
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
    const task = await this.metrics.timeQuery("task_write", () =>
      this.events.write(TASK_WRITES, { op: "transition", tenantId, taskId, change, data, guard, eventExtra }),
    );
    if (!task) return { task: null };
    this.recordCommitted(task, change);
    if (isTerminal(task.status)) await this.finished(task);
    return { task };
  }

  /** Tells the task-finished listeners (workflows); a failure is logged, and the reconciler repeats it later. */
  async finished(task: TaskRow): Promise<void> {
    for (const listener of this.finishedListeners) {
      await listener(task).catch((error: unknown) => this.logger.error({ err: error, taskId: task.id }, "task-finished listener failed"));
    }
  }
}

/** A reply never shows the worker the task's lease. */
function withoutLease(reply: TaskReportReply): TaskReportReply {
  return { accepted: reply.accepted, status: reply.status };
}

function cancelChanges(reason: string): TaskChanges {
  return { finishedAt: new Date(), error: { code: "CANCELLED", message: reason, retryable: false } };
}
