import { isEvent, type RoomEvent, type WorkflowStepStatus, type WorkflowView, type WorkflowWithStepsView } from "../../src/client/index.js";
import type { TaskError } from "../../src/protocol/tasks.js";
import { Observable } from "./observable.js";

export interface StepState {
  key: string;
  type: string;
  dependsOn: string[];
  status: WorkflowStepStatus;
  taskId: string | null;
  result: unknown;
  error: TaskError | null;
}

export interface WorkflowEntry {
  workflow: WorkflowView;
  steps: StepState[];
  /** The workflow's events as they came, for its timeline. */
  log: Array<{ cursor: string; type: string; ts: string; step: string | undefined }>;
}

const KEEP = 200;

/** The tenant's workflows, as the `workflows` room tells them, on top of `GET /api/v1/workflows/:id`. */
export class WorkflowStore extends Observable {
  readonly byId = new Map<string, WorkflowEntry>();

  reset(workflows: WorkflowWithStepsView[]): void {
    this.byId.clear();
    for (const { steps, ...workflow } of workflows) {
      this.byId.set(workflow.id, {
        workflow,
        steps: steps.map((s) => ({
          key: s.key,
          type: s.type,
          dependsOn: s.dependsOn,
          status: s.status,
          taskId: s.taskId,
          result: s.task?.result ?? null,
          error: s.task?.error ?? null,
        })),
        log: [],
      });
    }
    this.changed();
  }

  apply(event: RoomEvent<"workflows">): void {
    let entry: WorkflowEntry | undefined;
    if (isEvent(event, "workflow.started")) {
      entry = { workflow: event.data.workflow, steps: event.data.steps.map((s) => ({ ...s, result: null, error: null })), log: [] };
      this.byId.set(entry.workflow.id, entry);
    } else if (isEvent(event, "workflow.step_completed")) {
      entry = this.update(event.data.workflow);
      const step = entry?.steps.find((s) => s.key === event.data.step);
      if (step) Object.assign(step, { status: "completed", taskId: event.data.taskId, result: event.data.result });
    } else if (isEvent(event, "workflow.failed")) {
      entry = this.update(event.data.workflow);
      const step = entry?.steps.find((s) => s.key === event.data.step);
      if (step) Object.assign(step, { status: "failed", taskId: event.data.taskId, error: event.data.error });
      this.stopRemaining(entry);
    } else if (isEvent(event, "workflow.completed") || isEvent(event, "workflow.cancelled")) {
      entry = this.update(event.data.workflow);
      this.stopRemaining(entry);
    }
    if (!entry) return;
    const step = (event.data as { step?: unknown }).step;
    entry.log.push({ cursor: event.cursor, type: event.type, ts: event.ts, step: typeof step === "string" ? step : undefined });
    if (this.byId.size > KEEP) this.byId.delete(this.list()[this.byId.size - 1]!.workflow.id);
    this.changed();
  }

  /** Newest first. */
  list(): WorkflowEntry[] {
    return [...this.byId.values()].sort(
      (a, b) => b.workflow.createdAt.localeCompare(a.workflow.createdAt) || b.workflow.id.localeCompare(a.workflow.id),
    );
  }

  private update(workflow: WorkflowView): WorkflowEntry | undefined {
    const entry = this.byId.get(workflow.id);
    if (entry) entry.workflow = workflow;
    return entry;
  }

  /** A finished workflow starts nothing more: the server cancels its pending steps. */
  private stopRemaining(entry: WorkflowEntry | undefined): void {
    if (!entry || entry.workflow.status === "running") return;
    for (const step of entry.steps) if (step.status === "pending" || step.status === "queued") step.status = "cancelled";
  }
}
