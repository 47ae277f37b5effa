import { z } from "zod";
import type { Principal } from "../../auth/principal.js";
import type { PrismaClient } from "../../db/client.js";
import { BadRequestError, DependencyUnavailableError } from "../../errors.js";
import type { TaskStatus } from "../../protocol/tasks.js";
import { parseInput } from "../validation.js";
import { TRANSITIONS } from "./state-machine.js";
import { TaskFilterSchema, taskFilterWhere, type TaskService } from "./service.js";
import type { TaskRow } from "./view.js";

/** Most tasks one bulk call changes: a larger filter is refused, so that a call's work (and its answer) stays bounded. */
export const MAX_BULK_TASKS = 10_000;

/**
 * Tasks changed at a time. One chunk fills about one group-committed statement of the event log (eight rows per
 * change). A few chunks are under way at once, so that one chunk's statement overlaps the next one's Redis work
 * (one at a time, the node sat idle three quarters of a 10,000-task retry, waiting on PostgreSQL and Redis in
 * turn); other tenants' writes queue behind at most those few statements, never behind the whole call.
 */
const CHUNK = 250;
const CHUNKS_AT_ONCE = 4;

const BulkSchema = z.strictObject({
  action: z.enum(["cancel", "retry"]),
  filter: TaskFilterSchema.default({}),
});

/** The states each action applies to: those its transition may start from. */
const ELIGIBLE: Record<"cancel" | "retry", readonly TaskStatus[]> = {
  cancel: TRANSITIONS.cancelled.from,
  retry: TRANSITIONS.retried.from,
};

export interface BulkResult {
  /** Tasks the filter found in a state the action applies to. */
  matched: number;
  /** Tasks changed (and announced); fewer than matched when some changed state meanwhile or still ran. */
  changed: number;
}

/**
 * `POST /api/v1/tasks/bulk`: cancels or retries every task a filter finds, each changed and announced exactly as
 * its single action would (its own transition, its own events in its own rooms), in chunks. Tasks already in a
 * state the action does not apply to are not matched; a filter matching more than MAX_BULK_TASKS is refused as a
 * whole, before anything changes.
 */
export class TaskBulkActions {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly tasks: TaskService,
  ) {}

  async run(principal: Principal, body: unknown): Promise<BulkResult> {
    const { action, filter } = parseInput(BulkSchema, body);
    const eligible = ELIGIBLE[action].filter((status) => filter.status === undefined || filter.status === status);
    if (eligible.length === 0) return { matched: 0, changed: 0 };
    if (!this.tasks.jobs.ready) throw new DependencyUnavailableError("redis");
    const rows = await this.prisma.task.findMany({
      where: { ...taskFilterWhere(principal.tenantId, filter), status: { in: [...eligible] } },
      select: { tenantId: true, poolId: true, id: true, retries: true, updatedAt: true },
      orderBy: [{ createdAt: "asc" }, { id: "asc" }],
      take: MAX_BULK_TASKS + 1,
    });
    if (rows.length > MAX_BULK_TASKS) {
      throw new BadRequestError(
        `the filter matches more than ${MAX_BULK_TASKS} tasks; narrow it (e.g. with createdBefore) and call again`,
        [{ field: "filter", message: `matches more than ${MAX_BULK_TASKS} tasks` }],
      );
    }
    let changed = 0;
    let next = 0;
    const runner = async (): Promise<void> => {
      while (next < rows.length) {
        const chunk = rows.slice(next, (next += CHUNK));
        // Awaited first, then added: `changed += await …` would read `changed` before the wait and lose what the
        // other runners added meanwhile.
        const done = action === "retry" ? await this.retry(chunk) : await this.cancel(chunk);
        changed += done;
      }
    };
    await Promise.all(Array.from({ length: CHUNKS_AT_ONCE }, runner));
    return { matched: rows.length, changed };
  }

  private async retry(chunk: Parameters<TaskService["retryRow"]>[0][]): Promise<number> {
    const outcomes = await Promise.all(chunk.map((row) => this.tasks.retryRow(row)));
    const retried = outcomes.filter((outcome): outcome is TaskRow => outcome !== null && outcome !== "active");
    // Jobs added in one tick go to BullMQ as one addBulk per queue.
    await Promise.all(retried.map((task) => this.tasks.jobs.add(task)));
    return retried.length;
  }

  private async cancel(chunk: Array<{ tenantId: string; id: string }>): Promise<number> {
    const outcomes = await Promise.all(chunk.map((row) => this.tasks.cancelRow(row, "cancelled by a bulk request")));
    const cancelled = outcomes.filter((task): task is TaskRow => task !== null);
    await this.tasks.jobs.stop(cancelled);
    return cancelled.length;
  }
}
