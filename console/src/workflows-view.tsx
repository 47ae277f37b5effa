import { useEffect, useState } from "preact/hooks";
import type { WorkflowStepStatus } from "../../src/client/index.js";
import type { TaskStatus } from "../../src/protocol/tasks.js";
import { age, brief, clock } from "./format.js";
import { useObservable } from "./observable.js";
import type { Session } from "./session.js";
import type { TaskStore } from "./tasks-store.js";
import { can } from "./token.js";
import { Badge, Empty, ErrorLine, useNow } from "./ui.js";
import { WorkflowDag, type DagStep } from "./workflow-dag.js";
import type { StepState, WorkflowEntry } from "./workflows-store.js";

/** A running step's task says more than the workflow's events do (they only announce finished steps). */
const STEP_FROM_TASK: Record<TaskStatus, WorkflowStepStatus> = {
  created: "queued",
  queued: "queued",
  assigned: "running",
  started: "running",
  retrying: "running",
  completed: "completed",
  failed: "failed",
  cancelled: "cancelled",
};

export function stepView(workflowId: string, step: StepState, tasks: TaskStore): DagStep {
  const finished = step.status === "completed" || step.status === "failed" || step.status === "cancelled";
  const task = finished ? undefined : tasks.forStep(workflowId, step.key);
  return {
    key: step.key,
    type: step.type,
    dependsOn: step.dependsOn,
    status: task ? STEP_FROM_TASK[task.task.status] : step.status,
    // The task's own word when it says more than the step's status: "started 40%", "retrying".
    detail:
      task && (task.task.status !== STEP_FROM_TASK[task.task.status] || task.progress !== null)
        ? `${task.task.status}${task.progress === null ? "" : ` ${task.progress}%`}`
        : undefined,
    taskId: task?.task.id ?? step.taskId,
  };
}

export function WorkflowsView({ session, selectedId }: { session: Session; selectedId?: string | undefined }) {
  useObservable(session.workflows, session.tasks);
  const now = useNow();
  const workflows = session.workflows.list();
  const [selected, setSelected] = useState<string | undefined>(selectedId);
  // A link to a workflow (a task's detail links its step's workflow) selects it.
  useEffect(() => setSelected(selectedId ?? selected), [selectedId]);
  const current = workflows.find((w) => w.workflow.id === selected) ?? workflows[0];
  if (workflows.length === 0) return <Empty>No workflows yet.</Empty>;
  return (
    <section class="workflows">
      <ul class="workflow-list">
        {workflows.map((entry) => {
          const done = entry.steps.filter((s) => s.status === "completed").length;
          return (
            <li
              key={entry.workflow.id}
              data-workflow-id={entry.workflow.id}
              data-status={entry.workflow.status}
              class={entry === current ? "selected" : undefined}
            >
              <button type="button" class="workflow-pick" onClick={() => setSelected(entry.workflow.id)}>
                <span class="workflow-name">{entry.workflow.name}</span>
                <Badge status={entry.workflow.status} />
                <span class="muted">
                  {done}/{entry.steps.length} steps · {age(entry.workflow.createdAt, now)}
                </span>
              </button>
            </li>
          );
        })}
      </ul>
      {current && <WorkflowDetail entry={current} session={session} />}
    </section>
  );
}

function WorkflowDetail({ entry, session }: { entry: WorkflowEntry; session: Session }) {
  const { workflow } = entry;
  const steps = entry.steps.map((s) => stepView(workflow.id, s, session.tasks));
  const [error, setError] = useState<string>();
  const mayCancel = can(session.identity, "workflows:write") && workflow.status === "running";
  return (
    <article class="card workflow-detail" data-selected-workflow={workflow.id}>
      <header class="card-head">
        <div>
          <h2>
            {workflow.name} <Badge status={workflow.status} />
          </h2>
          <span class="muted mono">{workflow.id}</span>
        </div>
        {mayCancel && (
          <button
            type="button"
            class="small"
            onClick={() =>
              session.api.post(`/api/v1/workflows/${encodeURIComponent(workflow.id)}/cancel`, {}).then(
                () => setError(undefined),
                (failure: Error) => setError(failure.message),
              )
            }
          >
            Cancel workflow
          </button>
        )}
      </header>
      <ErrorLine error={error} />
      <div class="dag-scroll">
        <WorkflowDag steps={steps} />
      </div>
      <div class="workflow-columns">
        <table class="steps">
          <thead>
            <tr>
              <th>step</th>
              <th>after</th>
              <th>status</th>
              <th>result / error</th>
            </tr>
          </thead>
          <tbody>
            {entry.steps.map((step, i) => (
              <tr key={step.key} data-step-row={step.key}>
                <td class="mono">{step.key}</td>
                <td class="mono muted">{step.dependsOn.join(", ") || "—"}</td>
                <td>
                  <Badge status={steps[i]!.status} />
                </td>
                <td class="outcome">
                  {step.error ? (
                    <span class="task-error">
                      {step.error.code}: {brief(step.error.message, 60)}
                    </span>
                  ) : step.status === "completed" ? (
                    <code>{brief(step.result, 60)}</code>
                  ) : (
                    <span class="muted">—</span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <ol class="timeline">
          {entry.log.length === 0 && <li class="muted">Events of this workflow appear here as they happen.</li>}
          {entry.log.map((line) => (
            <li key={line.cursor}>
              <span class="mono muted">{clock(line.ts)}</span> {line.type}
              {line.step && <strong> {line.step}</strong>}
              <span class="mono muted" title={`cursor ${line.cursor}`}>
                {" "}
                #{Number(line.cursor.split("-").pop())}
              </span>
            </li>
          ))}
        </ol>
      </div>
    </article>
  );
}
