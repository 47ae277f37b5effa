import { z } from "zod";
import type { Principal } from "../../auth/principal.js";
import type { Db, PrismaClient } from "../../db/client.js";
import { BadRequestError, ConflictError, NotFoundError } from "../../errors.js";
import type { EventDraft, EventPublisher, Outbox } from "../../events/publisher.js";
import type { EventData, EventsOf } from "../../protocol/events.js";
import type { WorkflowStatus, WorkflowStepStatus, WorkflowStepView, WorkflowView, WorkflowWithStepsView } from "../../protocol/views.js";
import type { Logger } from "../../observability/logger.js";
import { roomNames } from "../../protocol/rooms.js";
import { randomUUID } from "node:crypto";
import { isTerminal, type TaskError, type TaskStatus } from "../../protocol/tasks.js";
import { afterPageKey, decodePageCursor, PAGE_ORDER, PageQuerySchema, toPage } from "../pagination.js";
import type { TaskService } from "../tasks/service.js";
import type { TaskRow } from "../tasks/view.js";
import { DEFAULT_POOL_ID } from "../tenants.js";
import { parseInput } from "../validation.js";
import { validateDag } from "./dag.js";

const StepSchema = z.strictObject({
  key: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 letters, digits, '_' or '-'"),
  type: z.string().min(1).max(100),
  payload: z.json().optional(),
  dependsOn: z.array(z.string().max(64)).max(100).default([]),
});
export const CreateWorkflowSchema = z.strictObject({
  name: z.string().trim().min(1).max(200),
  steps: z.array(StepSchema).min(1).max(200),
});

interface WorkflowRow {
  id: string;
  tenantId: string;
  name: string;
  status: string;
  createdAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
}
interface StepRow {
  key: string;
  position: number;
  type: string;
  payload: unknown;
  dependsOn: string[];
  status: string;
  taskId: string | null;
}

function serializeWorkflow(workflow: WorkflowRow): WorkflowView {
  return {
    id: workflow.id,
    name: workflow.name,
    status: workflow.status as WorkflowStatus,
    createdAt: workflow.createdAt.toISOString(),
    updatedAt: workflow.updatedAt.toISOString(),
    finishedAt: workflow.finishedAt?.toISOString() ?? null,
  };
}
function serializeStep(step: StepRow): WorkflowStepView {
  return {
    key: step.key,
    type: step.type,
    payload: step.payload,
    dependsOn: step.dependsOn,
    status: step.status as WorkflowStepStatus,
    taskId: step.taskId,
  };
}

/** What a workflow transaction leaves to do once it has committed: jobs to add, and jobs to stop. */
interface AfterCommit {
  started: TaskRow[];
  cancelled: TaskRow[];
}

/**
 * Workflows: a DAG of steps, each run as a task on the tenant's default pool once every step it depends on
 * has completed. Orchestration is our own (not BullMQ flows). Every move is `advance()`: one transaction that
 * locks the workflow row, brings the steps up to date with their tasks, publishes what changed, and either
 * finishes the workflow or starts the steps that became ready (claiming the step and creating its task in the
 * same transaction). It is idempotent, so the task-finished listener calls it, and so does the reconciler for
 * any workflow a crash left behind.
 */
export class WorkflowService {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly tasks: TaskService,
    private readonly events: EventPublisher,
    private readonly logger: Logger,
  ) {
    tasks.onTaskFinished((task) => (task.workflowId ? this.advance(task.tenantId, task.workflowId) : Promise.resolve()));
  }

  async create(principal: Principal, body: unknown) {
    const input = parseInput(CreateWorkflowSchema, body);
    const problems = validateDag(input.steps);
    if (problems.length > 0) throw new BadRequestError(`invalid workflow: ${problems.map((p) => p.field).join(", ")}`, problems);
    for (const [i, step] of input.steps.entries()) {
      try {
        await this.tasks.validateTarget(principal.tenantId, DEFAULT_POOL_ID, step.type);
      } catch (error) {
        if (error instanceof BadRequestError) {
          throw new BadRequestError(`invalid workflow: steps.${i}.type`, [{ field: `steps.${i}.type`, message: error.message }]);
        }
        throw error;
      }
    }
    const { workflow, after } = await this.events.transaction(async (tx, outbox) => {
      const workflow = await tx.workflow.create({
        data: {
          tenantId: principal.tenantId,
          name: input.name,
          status: "running",
          steps: {
            create: input.steps.map((step, position) => ({
              key: step.key,
              position,
              type: step.type,
              payload: (step.payload ?? {}) as object,
              dependsOn: step.dependsOn,
            })),
          },
        },
        include: { steps: { orderBy: { position: "asc" } } },
      });
      outbox.add(workflowEvent(workflow, "workflow.started", { steps: workflow.steps.map(serializeStep) }));
      const after: AfterCommit = { started: [], cancelled: [] };
      await this.startReadySteps(tx, outbox, workflow, workflow.steps, after);
      return { workflow, after };
    });
    await this.afterCommit(after);
    return this.view(principal.tenantId, workflow.id);
  }

  async get(principal: Principal, workflowId: string) {
    return this.view(principal.tenantId, workflowId);
  }

  /** A page, bounded in rows and in bytes (MAX_RESPONSE_BYTES), like every list. */
  async list(principal: Principal, query: unknown, maxBytes: number) {
    const { cursor, limit } = parseInput(PageQuerySchema, query, "query");
    const rows = await this.prisma.workflow.findMany({
      where: { tenantId: principal.tenantId, ...afterPageKey(cursor ? decodePageCursor(cursor) : undefined) },
      orderBy: PAGE_ORDER,
      take: limit + 1,
    });
    return toPage(rows, limit, serializeWorkflow, maxBytes);
  }

  async cancel(principal: Principal, workflowId: string) {
    const result = await this.events.transaction(async (tx, outbox) => {
      const workflow = await lockWorkflow(tx, principal.tenantId, workflowId);
      if (!workflow) throw new NotFoundError("workflow");
      if (workflow.status !== "running") return { conflict: workflow.status };
      const after: AfterCommit = { started: [], cancelled: [] };
      const finished = await this.finish(tx, workflow, "cancelled");
      await this.stopRemainingSteps(tx, outbox, workflow, "workflow cancelled", after);
      outbox.add(workflowEvent(finished, "workflow.cancelled", {}));
      return { after };
    });
    if ("conflict" in result) throw new ConflictError(`workflow is already ${result.conflict}`);
    await this.afterCommit(result.after);
    return this.view(principal.tenantId, workflowId);
  }

  private async view(tenantId: string, workflowId: string): Promise<WorkflowWithStepsView> {
    const workflow = await this.prisma.workflow.findFirst({
      where: { id: workflowId, tenantId },
      include: { steps: { orderBy: { position: "asc" } } },
    });
    if (!workflow) throw new NotFoundError("workflow");
    const taskIds = workflow.steps.map((s) => s.taskId).filter((id): id is string => id !== null);
    const tasks = await this.prisma.task.findMany({
      where: { id: { in: taskIds }, tenantId },
      select: { id: true, status: true, attempts: true, result: true, error: true },
    });
    const byId = new Map(tasks.map((t) => [t.id, t]));
    return {
      ...serializeWorkflow(workflow),
      steps: workflow.steps.map((step) => {
        const task = step.taskId ? byId.get(step.taskId) : undefined;
        return {
          ...serializeStep(step),
          task: task
            ? {
                id: task.id,
                status: task.status as TaskStatus,
                attempts: task.attempts,
                result: task.result,
                error: task.error as TaskError | null,
              }
            : null,
        };
      }),
    };
  }

  /**
   * Brings a running workflow up to date with its steps' tasks, in one transaction under the workflow's row
   * lock (so two nodes advancing at once take turns, and each change is published once).
   */
  async advance(tenantId: string, workflowId: string): Promise<void> {
    const after = await this.events.transaction(async (tx, outbox) => {
      const after: AfterCommit = { started: [], cancelled: [] };
      const workflow = await lockWorkflow(tx, tenantId, workflowId);
      if (!workflow || workflow.status !== "running") return after;
      const steps = await tx.workflowStep.findMany({ where: { workflowId }, orderBy: { position: "asc" } });
      const taskIds = steps.map((s) => s.taskId).filter((id): id is string => id !== null);
      const tasks = new Map((await tx.task.findMany({ where: { id: { in: taskIds }, tenantId } })).map((t) => [t.id, t]));
      let failedStep: { step: StepRow; task: TaskRow } | undefined;
      for (const step of steps) {
        const task = step.taskId ? tasks.get(step.taskId) : undefined;
        if (step.status !== "running" || !task || !isTerminal(task.status)) continue;
        await tx.workflowStep.update({ where: { workflowId_key: { workflowId, key: step.key } }, data: { status: task.status } });
        step.status = task.status;
        if (task.status === "completed") {
          outbox.add(workflowEvent(workflow, "workflow.step_completed", { step: step.key, taskId: task.id, result: task.result ?? null }));
        } else {
          failedStep ??= { step, task };
        }
      }
      if (failedStep) {
        // A failed (or individually cancelled) step fails the workflow; what has not started never will.
        const finished = await this.finish(tx, workflow, "failed");
        await this.stopRemainingSteps(tx, outbox, workflow, `step ${failedStep.step.key} ${failedStep.task.status}`, after);
        outbox.add(
          workflowEvent(finished, "workflow.failed", {
            step: failedStep.step.key,
            taskId: failedStep.task.id,
            error: (failedStep.task.error ?? null) as TaskError | null,
          }),
        );
      } else if (steps.every((s) => s.status === "completed")) {
        outbox.add(workflowEvent(await this.finish(tx, workflow, "completed"), "workflow.completed", {}));
      } else {
        await this.startReadySteps(tx, outbox, workflow, steps, after);
      }
      return after;
    });
    await this.afterCommit(after);
  }

  /** Starts every pending step whose dependencies have all completed: the step and its task commit together. */
  private async startReadySteps(tx: Db, outbox: Outbox, workflow: WorkflowRow, steps: StepRow[], after: AfterCommit): Promise<void> {
    const completed = new Set(steps.filter((s) => s.status === "completed").map((s) => s.key));
    for (const step of steps) {
      if (step.status !== "pending" || !step.dependsOn.every((dep) => completed.has(dep))) continue;
      const taskId = randomUUID();
      const { task, outboxIds } = await this.tasks.createIn(
        tx,
        workflow.tenantId,
        {
          type: step.type,
          payload: step.payload as z.infer<typeof StepSchema>["payload"],
          poolId: DEFAULT_POOL_ID,
          priority: 50,
          maxAttempts: 1,
          timeoutMs: undefined,
        },
        { idempotencyKey: null, requestHash: null, workflowId: workflow.id, stepKey: step.key, id: taskId },
      );
      if (!task) continue;
      await tx.workflowStep.update({
        where: { workflowId_key: { workflowId: workflow.id, key: step.key } },
        data: { status: "running", taskId },
      });
      step.status = "running";
      outbox.staged(outboxIds);
      after.started.push(task);
    }
  }

  /** Moves the workflow (locked by the caller, and running) to a final state. */
  private async finish(tx: Db, workflow: WorkflowRow, status: "completed" | "failed" | "cancelled"): Promise<WorkflowRow> {
    return tx.workflow.update({ where: { id: workflow.id }, data: { status, finishedAt: new Date() } });
  }

  private async stopRemainingSteps(tx: Db, outbox: Outbox, workflow: WorkflowRow, reason: string, after: AfterCommit): Promise<void> {
    await tx.workflowStep.updateMany({
      where: { workflowId: workflow.id, status: { in: ["pending", "queued"] } },
      data: { status: "cancelled" },
    });
    const running = await tx.workflowStep.findMany({ where: { workflowId: workflow.id, status: "running", taskId: { not: null } } });
    for (const step of running) {
      const task = await tx.task.findFirst({ where: { id: step.taskId!, tenantId: workflow.tenantId } });
      if (!task || isTerminal(task.status)) continue;
      const { task: cancelled, outboxIds } = await this.tasks.cancelIn(tx, task, reason);
      if (!cancelled) continue;
      await tx.workflowStep.update({
        where: { workflowId_key: { workflowId: workflow.id, key: step.key } },
        data: { status: "cancelled" },
      });
      outbox.staged(outboxIds);
      after.cancelled.push(cancelled);
    }
  }

  /** Counts the steps' task changes; jobs for the steps that started, and stopping those of the tasks that were cancelled. */
  private async afterCommit(after: AfterCommit): Promise<void> {
    for (const task of after.started) this.tasks.recordCommitted(task, "inserted");
    for (const task of after.cancelled) this.tasks.recordCommitted(task, "cancelled");
    for (const task of after.started) await this.tasks.jobs.add(task);
    await this.tasks.jobs
      .stop(after.cancelled)
      .catch((error: unknown) => this.logger.warn({ err: error }, "could not stop cancelled steps' jobs"));
  }
}

/** Reads and row-locks a workflow of the tenant for the rest of the transaction. */
async function lockWorkflow(tx: Db, tenantId: string, workflowId: string): Promise<WorkflowRow | null> {
  const rows = await tx.$queryRawUnsafe<WorkflowRow[]>(
    `SELECT * FROM "Workflow" WHERE "id" = $1 AND "tenantId" = $2 FOR UPDATE`,
    workflowId,
    tenantId,
  );
  return rows[0] ?? null;
}

type WorkflowEventName = EventsOf<"workflows">;

function workflowEvent<K extends WorkflowEventName>(workflow: WorkflowRow, type: K, extra: Omit<EventData<K>, "workflow">): EventDraft<K> {
  return {
    tenantId: workflow.tenantId,
    type,
    rooms: { workflows: [roomNames.workflows(), roomNames.workflow(workflow.id)] } as EventDraft<K>["rooms"],
    data: { workflow: serializeWorkflow(workflow), ...extra },
  };
}
