import { z } from "zod";
import type { Principal } from "../../auth/principal.js";
import type { PrismaClient } from "../../db/client.js";
import { BadRequestError, ConflictError, NotFoundError } from "../../errors.js";
import type { EventPublisher } from "../../events/publisher.js";
import type { Logger } from "../../observability/logger.js";
import { roomNames } from "../../protocol/rooms.js";
import { isTerminal } from "../../protocol/tasks.js";
import { afterPageKey, decodePageCursor, PAGE_ORDER, PageQuerySchema, toPage } from "../pagination.js";
import type { TaskRow, TaskService } from "../tasks/service.js";
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

function serializeWorkflow(workflow: WorkflowRow) {
  return {
    id: workflow.id,
    name: workflow.name,
    status: workflow.status,
    createdAt: workflow.createdAt.toISOString(),
    updatedAt: workflow.updatedAt.toISOString(),
    finishedAt: workflow.finishedAt?.toISOString() ?? null,
  };
}
function serializeStep(step: StepRow) {
  return { key: step.key, type: step.type, payload: step.payload, dependsOn: step.dependsOn, status: step.status, taskId: step.taskId };
}

/**
 * Workflows: a DAG of steps, each run as a task on the tenant's default pool once every step it depends on
 * has completed. Orchestration is our own (not BullMQ flows): a step is claimed with a conditional update
 * (pending → queued) so that two dependencies finishing at once on two nodes start it only once.
 */
export class WorkflowService {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly tasks: TaskService,
    private readonly events: EventPublisher,
    private readonly logger: Logger,
  ) {
    tasks.onTaskFinished((task) => this.onTaskFinished(task));
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
    const workflow = await this.prisma.workflow.create({
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
    await this.publish(workflow, "workflow.started", { steps: workflow.steps.map(serializeStep) });
    await this.startReadySteps(workflow.tenantId, workflow.id);
    return this.view(principal.tenantId, workflow.id);
  }

  async get(principal: Principal, workflowId: string) {
    return this.view(principal.tenantId, workflowId);
  }

  async list(principal: Principal, query: unknown) {
    const { cursor, limit } = parseInput(PageQuerySchema, query, "query");
    const rows = await this.prisma.workflow.findMany({
      where: { tenantId: principal.tenantId, ...afterPageKey(cursor ? decodePageCursor(cursor) : undefined) },
      orderBy: PAGE_ORDER,
      take: limit + 1,
    });
    return toPage(rows, limit, serializeWorkflow);
  }

  async cancel(principal: Principal, workflowId: string) {
    const workflow = await this.prisma.workflow.findFirst({ where: { id: workflowId, tenantId: principal.tenantId } });
    if (!workflow) throw new NotFoundError("workflow");
    const finished = await this.finish(workflow.tenantId, workflowId, "cancelled");
    if (!finished) throw new ConflictError(`workflow is already ${(await this.prisma.workflow.findUnique({ where: { id: workflowId } }))?.status}`);
    await this.stopRemainingSteps(workflow.tenantId, workflowId, "workflow cancelled");
    await this.publish(finished, "workflow.cancelled", {});
    return this.view(principal.tenantId, workflowId);
  }

  private async view(tenantId: string, workflowId: string) {
    const workflow = await this.prisma.workflow.findFirst({
      where: { id: workflowId, tenantId },
      include: { steps: { orderBy: { position: "asc" } } },
    });
    if (!workflow) throw new NotFoundError("workflow");
    const taskIds = workflow.steps.map((s) => s.taskId).filter((id): id is string => id !== null);
    const tasks = await this.prisma.task.findMany({ where: { id: { in: taskIds }, tenantId }, select: { id: true, status: true, attempts: true, result: true, error: true } });
    const byId = new Map(tasks.map((t) => [t.id, t]));
    return {
      ...serializeWorkflow(workflow),
      steps: workflow.steps.map((step) => {
        const task = step.taskId ? byId.get(step.taskId) : undefined;
        return { ...serializeStep(step), task: task ? { id: task.id, status: task.status, attempts: task.attempts, result: task.result, error: task.error } : null };
      }),
    };
  }

  /** Starts every pending step whose dependencies have all completed; each is claimed exactly once. */
  private async startReadySteps(tenantId: string, workflowId: string): Promise<void> {
    const steps = await this.prisma.workflowStep.findMany({ where: { workflowId }, orderBy: { position: "asc" } });
    const completed = new Set(steps.filter((s) => s.status === "completed").map((s) => s.key));
    for (const step of steps) {
      if (step.status !== "pending" || !step.dependsOn.every((dep) => completed.has(dep))) continue;
      const claimed = await this.prisma.workflowStep.updateMany({
        where: { workflowId, key: step.key, status: "pending", workflow: { status: "running" } },
        data: { status: "queued" },
      });
      if (claimed.count === 0) continue;
      const task = await this.tasks.submitInternal(tenantId, {
        type: step.type,
        payload: step.payload as z.infer<typeof StepSchema>["payload"],
        poolId: DEFAULT_POOL_ID,
        workflowId,
        stepKey: step.key,
      });
      await this.prisma.workflowStep.updateMany({ where: { workflowId, key: step.key, status: "queued" }, data: { taskId: task.id, status: "running" } });
    }
  }

  private async onTaskFinished(task: TaskRow): Promise<void> {
    if (!task.workflowId || !task.stepKey) return;
    const { workflowId, stepKey, tenantId } = task;
    await this.prisma.workflowStep.updateMany({
      where: { workflowId, key: stepKey, status: { in: ["queued", "running"] } },
      data: { status: task.status, taskId: task.id },
    });
    const workflow = await this.prisma.workflow.findUnique({ where: { id: workflowId } });
    if (!workflow || workflow.status !== "running") return;
    if (task.status === "completed") {
      await this.publish(workflow, "workflow.step_completed", { step: stepKey, taskId: task.id, result: task.result ?? null });
      const open = await this.prisma.workflowStep.count({ where: { workflowId, status: { not: "completed" } } });
      if (open === 0) {
        const finished = await this.finish(tenantId, workflowId, "completed");
        if (finished) await this.publish(finished, "workflow.completed", {});
      } else {
        await this.startReadySteps(tenantId, workflowId);
      }
      return;
    }
    // A failed (or individually cancelled) step fails the workflow; what has not started never will.
    const finished = await this.finish(tenantId, workflowId, "failed");
    if (!finished) return;
    await this.stopRemainingSteps(tenantId, workflowId, `step ${stepKey} ${task.status}`);
    await this.publish(finished, "workflow.failed", { step: stepKey, taskId: task.id, error: task.error ?? null });
  }

  /** Moves a running workflow to a final state; null when it was not running (someone else finished it). */
  private async finish(tenantId: string, workflowId: string, status: "completed" | "failed" | "cancelled"): Promise<WorkflowRow | null> {
    const updated = await this.prisma.workflow.updateMany({
      where: { id: workflowId, tenantId, status: "running" },
      data: { status, finishedAt: new Date() },
    });
    return updated.count === 1 ? this.prisma.workflow.findUnique({ where: { id: workflowId } }) : null;
  }

  private async stopRemainingSteps(tenantId: string, workflowId: string, reason: string): Promise<void> {
    await this.prisma.workflowStep.updateMany({ where: { workflowId, status: { in: ["pending", "queued"] } }, data: { status: "cancelled" } });
    const running = await this.prisma.workflowStep.findMany({ where: { workflowId, status: "running", taskId: { not: null } } });
    for (const step of running) {
      const task = await this.prisma.task.findFirst({ where: { id: step.taskId!, tenantId } });
      if (task && !isTerminal(task.status)) {
        await this.tasks.cancelRow(task, reason).catch((error: unknown) => this.logger.warn({ err: error, taskId: task.id }, "could not cancel step"));
      }
    }
  }

  private async publish(workflow: WorkflowRow, type: string, extra: Record<string, unknown>): Promise<void> {
    await this.events.publish({
      tenantId: workflow.tenantId,
      namespace: "workflows",
      rooms: [roomNames.workflows(), roomNames.workflow(workflow.id)],
      type,
      data: { workflow: serializeWorkflow(workflow), ...extra },
    });
  }
}
