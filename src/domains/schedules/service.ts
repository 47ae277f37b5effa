import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { Principal } from "../../auth/principal.js";
import { jsonColumn, type Db, type PrismaClient } from "../../db/client.js";
import type { FailureReporter } from "../../dependencies/status.js";
import { AppError, BadRequestError, ConflictError, NotFoundError } from "../../errors.js";
import type { EventPublisher } from "../../events/publisher.js";
import { ClusterTimer } from "../../jobs/cluster-timer.js";
import type { RedisClient } from "../../jobs/redis-connection.js";
import type { RedisKeys } from "../../jobs/redis-keys.js";
import type { Logger } from "../../observability/logger.js";
import type { Metrics } from "../../observability/metrics.js";
import { roomNames } from "../../protocol/rooms.js";
import type { ScheduleTaskTemplate, ScheduleView } from "../../protocol/views.js";
import { afterPageKey, decodePageCursor, keysWithinBytes, PAGE_ORDER, PageQuerySchema, toPage } from "../pagination.js";
import { isUniqueViolation } from "../pools/service.js";
import type { TaskService } from "../tasks/service.js";
import { SubmitTaskSchema } from "../tasks/submission.js";
import { DEFAULT_POOL_ID } from "../tenants.js";
import { parseInput } from "../validation.js";
import { parseSchedulerId, schedulerId, type ScheduleFiring, type ScheduleJobData } from "./firing.js";
import { canonicalTimeZone, cronProblem, firstRunAt, MAX_EVERY_MS, MIN_EVERY_MS, type Timing } from "./timing.js";

const every = z
  .number()
  .int()
  .min(MIN_EVERY_MS, `must be at least ${MIN_EVERY_MS} ms`)
  .max(MAX_EVERY_MS, `must be at most ${MAX_EVERY_MS} ms (about 24.8 days); use cron for longer periods`);
const cron = z.string().max(200);
const timezone = z.string().max(64);

export const CreateScheduleSchema = z.strictObject({
  name: z.string().trim().min(1).max(128),
  task: SubmitTaskSchema,
  every: every.optional(),
  cron: cron.optional(),
  timezone: timezone.optional(),
});
export const UpdateScheduleSchema = z
  .strictObject({
    paused: z.boolean().optional(),
    every: every.optional(),
    cron: cron.optional(),
    /** null: back to UTC. */
    timezone: timezone.nullable().optional(),
    /** The whole template, as in POST (fields left out take their defaults). */
    task: SubmitTaskSchema.optional(),
  })
  .refine((body) => Object.keys(body).length > 0, "give at least one of paused, every, cron, timezone, task");

type TaskInput = z.infer<typeof SubmitTaskSchema>;

interface ScheduleRow {
  tenantId: string;
  id: string;
  name: string;
  task: unknown;
  every: number | null;
  cron: string | null;
  timezone: string | null;
  paused: boolean;
  createdAt: Date;
  updatedAt: Date;
}

const TIMING_FIELDS = ["every", "cron", "timezone"] as const;

export function serializeSchedule(row: ScheduleRow, nextRunAt: number | null): ScheduleView {
  return {
    id: row.id,
    name: row.name,
    task: row.task as ScheduleTaskTemplate,
    every: row.every,
    cron: row.cron,
    timezone: row.timezone,
    paused: row.paused,
    nextRunAt: row.paused || nextRunAt === null ? null : new Date(nextRunAt).toISOString(),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

function invalid(field: string, message: string): BadRequestError {
  return new BadRequestError(`invalid body: ${field}`, [{ field, message }]);
}

/** A time zone as given, checked and in its canonical spelling; 400 naming `timezone` otherwise. */
function checkedTimeZone(name: string): string {
  const canonical = canonicalTimeZone(name);
  if (!canonical) throw invalid("timezone", "must be an IANA time zone name, e.g. Europe/Berlin or UTC");
  return canonical;
}

/** The timing a body asks for, over the current one (none when creating); 400 naming the field otherwise. */
function resolveTiming(
  input: { every?: number | undefined; cron?: string | undefined; timezone?: string | null | undefined },
  current?: Timing,
): Timing {
  if (input.every !== undefined && input.cron !== undefined) throw invalid("every", "give exactly one of every and cron");
  let timing: Timing;
  if (input.every !== undefined) timing = { every: input.every, cron: null, timezone: null };
  else if (input.cron !== undefined)
    timing = { every: null, cron: input.cron.trim().replace(/\s+/g, " "), timezone: current?.timezone ?? null };
  else if (current) timing = { every: current.every, cron: current.cron, timezone: current.timezone };
  else throw invalid("every", "give exactly one of every (ms) and cron");
  if (input.timezone !== undefined) {
    if (timing.cron === null) throw invalid("timezone", "applies to cron schedules only");
    timing.timezone = input.timezone === null ? null : checkedTimeZone(input.timezone);
  }
  if (timing.cron !== null) {
    const problem = cronProblem(timing.cron, timing.timezone);
    if (problem) throw invalid("cron", problem);
  }
  return timing;
}

/** JSON with object keys sorted: PostgreSQL's jsonb and a JSON string keep keys in different orders. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

function sameTiming(a: Timing, b: Timing): boolean {
  return a.every === b.every && (a.cron ?? null) === (b.cron ?? null) && (a.timezone ?? null) === (b.timezone ?? null);
}

export interface ScheduleServiceOptions {
  keys: RedisKeys;
  failures: FailureReporter;
  /** How often one node compares the schedules with BullMQ's job schedulers and repairs the difference. */
  reconcileIntervalMs: number;
}

/** Due times one node turns into tasks at once: each is one group-committed insert and the job it adds. */
const SCHEDULE_CONCURRENCY = 50;

/**
 * Recurring tasks. A schedule is a row (with its template) and, while it is not paused, a BullMQ job scheduler on
 * the schedule queue; each due time is one job, which any node's worker turns into one task through TaskService
 * (with an Idempotency-Key naming the due time, so a due time handled twice still makes one task). Changes to the
 * row and to its scheduler happen inside one transaction that holds the row, so concurrent changes reach Redis in
 * the order they commit; a change whose Redis call fails rolls back (503) and changes nothing. Every node
 * reconciles rows and schedulers now and then (ClusterTimer), which covers a Redis that lost its keys.
 */
export class ScheduleService {
  private readonly timer: ClusterTimer;
  /** Schedulers without a row seen by the last reconciliation here: removed when seen twice (a create may be in flight). */
  private orphans = new Set<string>();

  constructor(
    private readonly prisma: PrismaClient,
    private readonly tasks: TaskService,
    private readonly events: EventPublisher,
    private readonly firing: ScheduleFiring,
    private readonly redis: RedisClient,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    private readonly options: ScheduleServiceOptions,
  ) {
    this.timer = new ClusterTimer(
      redis,
      options.keys.scheduleReconcileLock,
      options.reconcileIntervalMs,
      () => this.reconcile(),
      options.failures,
      "schedule reconciliation",
    );
  }

  /** Starts this node's worker on the schedule queue, the periodic reconciliation, and one reconciliation now. */
  start(workerConnection: RedisClient): void {
    this.firing.startWorker(workerConnection, (data, dueAt) => this.fire(data, dueAt), {
      concurrency: SCHEDULE_CONCURRENCY,
      failures: this.options.failures,
    });
    this.timer.start();
    void this.reconcile().catch((error: unknown) =>
      this.options.failures.report(error, "schedule reconciliation failed; retrying next interval"),
    );
  }

  async stop(deadlineMs: number): Promise<void> {
    this.timer.stop();
    await this.firing.close(deadlineMs);
  }

  /** The template a body's `task` stands for, checked as POST /api/v1/tasks checks a task (404 pool, 400 type). */
  private async template(tenantId: string, task: TaskInput): Promise<ScheduleTaskTemplate> {
    const poolId = task.poolId ?? DEFAULT_POOL_ID;
    try {
      await this.tasks.validateTarget(tenantId, poolId, task.type);
    } catch (error) {
      // The same refusal, its fields named where they are in this body.
      if (error instanceof AppError && Array.isArray(error.details)) {
        const details = (error.details as Array<{ field: string; message: string }>).map((d) => ({ ...d, field: `task.${d.field}` }));
        throw error.withDetails(details);
      }
      throw error;
    }
    return {
      type: task.type,
      payload: task.payload ?? {},
      poolId,
      priority: task.priority,
      maxAttempts: task.maxAttempts,
      timeoutMs: task.timeoutMs ?? null,
    };
  }

  async create(principal: Principal, body: unknown): Promise<ScheduleView> {
    const input = parseInput(CreateScheduleSchema, body);
    const timing = resolveTiming(input);
    const task = await this.template(principal.tenantId, input.task);
    const data: ScheduleJobData = { tenantId: principal.tenantId, scheduleId: randomUUID(), task };
    const startAt = firstRunAt(timing);
    let scheduled = false;
    try {
      return await this.events.transaction(async (tx, outbox) => {
        const row = await tx.schedule.create({
          data: { tenantId: data.tenantId, id: data.scheduleId, name: input.name, task: jsonColumn(task), ...timing },
        });
        // Inside the transaction: a scheduler Redis refuses rolls the row back. A due time that comes before the
        // commit finds no row yet, and its job is tried again (see fire).
        await this.firing.upsert(data, timing, startAt);
        scheduled = true;
        const schedule = serializeSchedule(row, startAt);
        outbox.add({ tenantId: data.tenantId, type: "schedule.created", rooms: { tasks: [roomNames.schedules()] }, data: { schedule } });
        return schedule;
      });
    } catch (error) {
      if (scheduled) await this.firing.remove(data.tenantId, data.scheduleId).catch(() => undefined); // else the reconciler does
      if (isUniqueViolation(error))
        throw new ConflictError(`a schedule named "${input.name}" already exists`, [{ field: "name", message: "already taken" }]);
      throw error;
    }
  }

  /** A page of the tenant's schedules, bounded in rows and in bytes (a schedule's task template holds a payload). */
  async list(principal: Principal, query: unknown, maxBytes: number) {
    const { cursor, limit } = parseInput(PageQuerySchema.strict(), query, "query");
    const keys = await this.prisma.schedule.findMany({
      where: { tenantId: principal.tenantId, ...afterPageKey(cursor ? decodePageCursor(cursor) : undefined) },
      orderBy: PAGE_ORDER,
      take: limit + 1,
      select: { id: true, createdAt: true },
    });
    const fit = await keysWithinBytes(keys, limit, maxBytes, async (ids) => {
      const sizes = await this.prisma.$queryRawUnsafe<Array<{ id: string; bytes: number }>>(
        `SELECT "id", octet_length("task"::text)::int AS "bytes" FROM "Schedule" WHERE "tenantId" = $1 AND "id" = ANY($2::text[])`,
        principal.tenantId,
        ids,
      );
      return new Map(sizes.map((row) => [row.id, Number(row.bytes)]));
    });
    const rows = fit.keys.length
      ? await this.prisma.schedule.findMany({
          where: { tenantId: principal.tenantId, id: { in: fit.keys.map((key) => key.id) } },
          orderBy: PAGE_ORDER,
        })
      : [];
    const next = await this.nextRuns(rows);
    const nextById = new Map(rows.map((row, i) => [row.id, next[i] ?? null]));
    return toPage(rows, limit, (row) => serializeSchedule(row, nextById.get(row.id) ?? null), maxBytes, fit.more);
  }

  async get(principal: Principal, id: string): Promise<ScheduleView> {
    const row = await this.prisma.schedule.findUnique({ where: { tenantId_id: { tenantId: principal.tenantId, id } } });
    if (!row) throw new NotFoundError("schedule");
    const [next] = await this.nextRuns([row]);
    return serializeSchedule(row, next ?? null);
  }

  /** Next due times as the schedulers hold them; null for each when Redis cannot say (a read still answers). */
  private async nextRuns(rows: ScheduleRow[]): Promise<Array<number | null>> {
    try {
      return await this.firing.nextRuns(rows.map((row) => ({ tenantId: row.tenantId, id: row.id })));
    } catch (error) {
      this.options.failures.report(error, "could not read the schedules' next due times");
      return rows.map(() => null);
    }
  }

  /** `PATCH /api/v1/schedules/:id`: pause, resume, retime or change the template; `schedule.updated` names what changed. */
  async update(principal: Principal, id: string, body: unknown): Promise<ScheduleView> {
    const input = parseInput(UpdateScheduleSchema, body);
    const task = input.task ? await this.template(principal.tenantId, input.task) : undefined;
    return this.events.transaction(async (tx, outbox) => {
      const before = await lockSchedule(tx, principal.tenantId, id);
      if (!before) throw new NotFoundError("schedule");
      const timing = resolveTiming(input, before);
      const paused = input.paused ?? before.paused;
      const changed: Array<"paused" | "every" | "cron" | "timezone" | "task"> = [];
      if (paused !== before.paused) changed.push("paused");
      for (const field of TIMING_FIELDS) if (timing[field] !== before[field]) changed.push(field);
      if (task && canonicalJson(task) !== canonicalJson(before.task)) changed.push("task");
      const retimed = !sameTiming(timing, before);
      const data: ScheduleJobData = {
        tenantId: before.tenantId,
        scheduleId: before.id,
        task: task ?? (before.task as ScheduleTaskTemplate),
      };
      let nextRunAt: number | null = null;
      if (paused) {
        if (!before.paused) await this.firing.remove(data.tenantId, data.scheduleId);
      } else if (before.paused || retimed) {
        nextRunAt = firstRunAt(timing);
        await this.firing.upsert(data, timing, nextRunAt);
      } else {
        // The due times stay; a new template replaces the one the scheduler's jobs carry (same timing: same next due time).
        if (changed.includes("task")) await this.firing.upsert(data, timing, firstRunAt(timing));
        [nextRunAt = null] = await this.nextRuns([before]);
      }
      // Nothing changed, nothing to announce: a repeated PATCH is idempotent.
      if (changed.length === 0) return serializeSchedule(before, nextRunAt);
      const row = await tx.schedule.update({
        where: { tenantId_id: { tenantId: data.tenantId, id: data.scheduleId } },
        data: { paused, ...timing, ...(task ? { task: jsonColumn(task) } : {}) },
      });
      const schedule = serializeSchedule(row, nextRunAt);
      outbox.add({
        tenantId: data.tenantId,
        type: "schedule.updated",
        rooms: { tasks: [roomNames.schedules()] },
        data: { schedule, changed },
      });
      return schedule;
    });
  }

  /**
   * `DELETE /api/v1/schedules/:id`. The row goes with its `schedule.deleted`; the scheduler is removed after the
   * commit. A due time that still comes finds no row and makes nothing, and a scheduler Redis did not let go of is
   * removed by the reconciler.
   */
  async delete(principal: Principal, id: string): Promise<void> {
    const removed = await this.events.transaction(async (tx, outbox) => {
      const before = await lockSchedule(tx, principal.tenantId, id);
      if (!before) throw new NotFoundError("schedule");
      await tx.schedule.delete({ where: { tenantId_id: { tenantId: before.tenantId, id: before.id } } });
      const schedule = serializeSchedule(before, null);
      outbox.add({ tenantId: before.tenantId, type: "schedule.deleted", rooms: { tasks: [roomNames.schedules()] }, data: { schedule } });
      return before;
    });
    await this.firing.remove(removed.tenantId, removed.id).catch((error: unknown) => {
      this.options.failures.report(error, "could not remove a deleted schedule's job scheduler; the reconciler will", {
        scheduleId: removed.id,
      });
    });
  }

  /**
   * One due time of a schedule (a job of its scheduler, on any node): the task of that due time, made once, from the
   * template the job carries. The insert itself checks that the schedule exists and is not paused. When it stored
   * nothing and no task of the due time exists, the schedule is paused or gone (nothing to do), or is being created
   * and not committed yet while its scheduler already fired: then the job fails, and BullMQ tries it again shortly.
   */
  async fire(data: ScheduleJobData, dueAt: number): Promise<void> {
    const { timeoutMs, ...rest } = data.task as ScheduleTaskTemplate & { payload: TaskInput["payload"] };
    const stored = await this.tasks.submitScheduled(data.tenantId, data.scheduleId, dueAt, {
      ...rest,
      ...(timeoutMs !== null ? { timeoutMs } : {}),
    });
    if (stored) {
      this.metrics.scheduleDue.inc({ outcome: stored.created ? "created" : "repeated" });
      if (stored.created) this.metrics.scheduleLateness.observe(Math.max(0, stored.task.createdAt.getTime() - dueAt) / 1000);
      else this.logger.debug({ scheduleId: data.scheduleId, dueAt }, "due time already had its task");
      return;
    }
    const row = await this.prisma.schedule.findUnique({
      where: { tenantId_id: { tenantId: data.tenantId, id: data.scheduleId } },
      select: { paused: true },
    });
    if (row && !row.paused) throw new ConflictError("the schedule changed while its due time was handled; trying again");
    if (!row) {
      const [next] = await this.firing.nextRuns([{ tenantId: data.tenantId, id: data.scheduleId }]);
      if (next !== null && next !== undefined) throw new NotFoundError("schedule");
    }
    // Paused, or deleted (its last job came after all).
    this.metrics.scheduleDue.inc({ outcome: "skipped" });
  }

  /**
   * Makes BullMQ's job schedulers match the rows: a scheduler for every schedule that is not paused, with its
   * timing (one Redis lost, or a change whose commit failed after its Redis call, is repaired here), and none for
   * any other. Schedulers are read before rows, so a scheduler seen belongs to a committed change or is an orphan.
   */
  async reconcile(): Promise<void> {
    const schedulers = await this.firing.schedulers();
    const rows = await this.prisma.schedule.findMany({
      select: { tenantId: true, id: true, every: true, cron: true, timezone: true, paused: true, task: true },
    });
    const wanted = new Map(rows.filter((row) => !row.paused).map((row) => [schedulerId(row.tenantId, row.id), row]));
    let repaired = 0;
    for (const [id, row] of wanted) {
      const held = schedulers.get(id);
      if (held && sameTiming(held, row) && canonicalJson(held.task) === canonicalJson(row.task)) continue;
      if (await this.repair(row.tenantId, row.id)) repaired++;
    }
    const orphans = new Set<string>();
    for (const id of schedulers.keys()) if (!wanted.has(id)) orphans.add(id);
    let removed = 0;
    for (const id of orphans) {
      const ids = parseSchedulerId(id);
      if (!ids) continue;
      const paused = rows.some((row) => row.paused && row.tenantId === ids.tenantId && row.id === ids.scheduleId);
      // A paused row is settled under its lock at once; a missing one only when seen twice (a create in flight).
      if (
        paused
          ? await this.repair(ids.tenantId, ids.scheduleId)
          : this.orphans.has(id) && (await this.removeOrphan(ids.tenantId, ids.scheduleId))
      )
        removed++;
    }
    this.orphans = orphans;
    // Info, not warn: a schedule paused or deleted during the pass is counted too (settled under its lock, a no-op).
    if (repaired + removed > 0) this.logger.info({ repaired, removed }, "schedule reconciliation set job schedulers from their rows");
  }

  /** Sets one schedule's scheduler from its row, holding the row (so no change interleaves). */
  private async repair(tenantId: string, id: string): Promise<boolean> {
    return this.prisma.$transaction(async (tx) => {
      const row = await lockSchedule(tx, tenantId, id);
      if (!row) return false;
      const data: ScheduleJobData = { tenantId, scheduleId: id, task: row.task as ScheduleTaskTemplate };
      if (row.paused) await this.firing.remove(tenantId, id);
      else {
        const timing = { every: row.every, cron: row.cron, timezone: row.timezone };
        await this.firing.upsert(data, timing, firstRunAt(timing));
      }
      return true;
    });
  }

  private async removeOrphan(tenantId: string, scheduleId: string): Promise<boolean> {
    const row = await this.prisma.schedule.findUnique({ where: { tenantId_id: { tenantId, id: scheduleId } }, select: { id: true } });
    if (row) return false;
    await this.firing.remove(tenantId, scheduleId);
    return true;
  }
}

/** The schedule, locked until the transaction ends (concurrent changes of one schedule take turns); undefined when absent. */
async function lockSchedule(tx: Db, tenantId: string, id: string): Promise<ScheduleRow | undefined> {
  const locked = await tx.$queryRawUnsafe<unknown[]>(
    `SELECT 1 FROM "Schedule" WHERE "tenantId" = $1 AND "id" = $2 FOR UPDATE`,
    tenantId,
    id,
  );
  if (locked.length === 0) return undefined;
  return (await tx.schedule.findUnique({ where: { tenantId_id: { tenantId, id } } })) ?? undefined;
}
