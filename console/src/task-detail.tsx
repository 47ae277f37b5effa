import { useEffect, useRef, useState } from "preact/hooks";
import type { Envelope, TaskView } from "../../src/client/index.js";
import { brief, clock } from "./format.js";
import { useObservable } from "./observable.js";
import { href } from "./route.js";
import type { Session } from "./session.js";
import { isTerminal } from "./tasks-store.js";
import { can } from "./token.js";
import { Badge, ErrorLine } from "./ui.js";

interface History {
  items: Envelope[];
  hasMore: boolean;
}

/** How long between two times, in words ("1.2 s"); "—" while one is missing. */
function between(from: string | null, to: string | null): string {
  if (!from || !to) return "—";
  const ms = Date.parse(to) - Date.parse(from);
  if (!Number.isFinite(ms) || ms < 0) return "—";
  return ms < 1000 ? `${ms} ms` : ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${(ms / 60_000).toFixed(1)} min`;
}

function stamp(iso: string | null): string {
  return iso ? `${new Date(iso).toLocaleString([], { hour12: false })}` : "—";
}

function json(value: unknown): string {
  return value === undefined ? "" : JSON.stringify(value, null, 2);
}

/**
 * One task in full: `GET /api/v1/tasks/:id` (payload and result included) and its event timeline, the stored
 * events of its room `task:<id>` (`GET /api/v1/events`). Both are read again whenever the live store says the task
 * changed, so a retry is seen going queued → started → completed here as it happens.
 */
export function TaskDetail({ session, taskId }: { session: Session; taskId: string }) {
  useObservable(session.tasks);
  const live = session.tasks.byId.get(taskId);
  const [task, setTask] = useState<TaskView>();
  const [timeline, setTimeline] = useState<History>();
  const [error, setError] = useState<string>();
  const [actionError, setActionError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const version = live?.task.updatedAt;
  // Opened from a row far down the list: the detail (above the list) is brought into view and focused, so that
  // keyboard and screen-reader users land on it too.
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), [taskId]);

  useEffect(() => {
    let alive = true;
    const room = encodeURIComponent(`task:${taskId}`);
    Promise.all([
      session.api.get<{ task: TaskView }>(`/api/v1/tasks/${encodeURIComponent(taskId)}`),
      session.api.get<History>(`/api/v1/events?namespace=tasks&room=${room}&after=0&limit=1000`),
    ]).then(
      ([read, history]) => {
        if (!alive) return;
        setTask(read.task);
        setTimeline(history);
        setError(undefined);
      },
      (failure: Error) => alive && setError(failure.message),
    );
    return () => {
      alive = false;
    };
  }, [taskId, version]);

  // The live state wins over the read when it is newer (the read may be on its way).
  const shown =
    task && live && live.task.updatedAt > task.updatedAt
      ? { ...task, ...live.task, payload: task.payload, result: live.task.result ?? task.result }
      : task;
  const mayWrite = can(session.identity, "tasks:write");
  const act = async (action: "retry" | "cancel"): Promise<void> => {
    setBusy(true);
    try {
      await session.api.post(`/api/v1/tasks/${encodeURIComponent(taskId)}/${action}`, {});
      setActionError(undefined);
    } catch (failure) {
      setActionError((failure as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <aside class="card task-detail" data-task-detail={taskId} data-status={shown?.status ?? ""} aria-label={`Task ${taskId}`}>
      <header class="card-head">
        <div>
          <h2 ref={heading} tabIndex={-1}>
            Task <span class="mono">{taskId}</span> {shown && <Badge status={shown.status} />}
          </h2>
          {shown && (
            <span class="muted">
              <span class="mono">{shown.type}</span> on pool <span class="mono">{shown.poolId}</span>
            </span>
          )}
        </div>
        <div class="actions">
          {mayWrite && shown && !isTerminal(shown.status) && (
            <button type="button" class="danger" data-action="cancel" disabled={busy} onClick={() => void act("cancel")}>
              Cancel
            </button>
          )}
          {mayWrite && shown && (shown.status === "failed" || shown.status === "cancelled") && (
            <button type="button" data-action="retry" disabled={busy} onClick={() => void act("retry")}>
              Retry
            </button>
          )}
          <a class="button-link" href={href("tasks")} data-action="close-detail">
            Close
          </a>
        </div>
      </header>
      <ErrorLine error={actionError} />
      {error && (
        <p class="error-state" role="alert">
          Could not read this task: {error}
        </p>
      )}
      {!shown && !error && <p class="muted">Loading…</p>}
      {shown && (
        <>
          <dl class="facts">
            <dt>attempts</dt>
            <dd data-detail="attempts">
              {shown.attempts} of {shown.maxAttempts}
            </dd>
            <dt>retries by hand</dt>
            <dd data-detail="retries">{shown.retries}</dd>
            <dt>worker</dt>
            <dd class="mono">{shown.workerId ?? "—"}</dd>
            <dt>priority</dt>
            <dd>{shown.priority}</dd>
            <dt>timeout</dt>
            <dd>{shown.timeoutMs === null ? "none" : `${shown.timeoutMs} ms`}</dd>
            <dt>created</dt>
            <dd>{stamp(shown.createdAt)}</dd>
            <dt>queued</dt>
            <dd>{stamp(shown.queuedAt)}</dd>
            <dt>started</dt>
            <dd>{stamp(shown.startedAt)}</dd>
            <dt>finished</dt>
            <dd>{stamp(shown.finishedAt)}</dd>
            <dt>waited</dt>
            <dd>{between(shown.queuedAt ?? shown.createdAt, shown.startedAt)}</dd>
            <dt>ran</dt>
            <dd>{between(shown.startedAt, shown.finishedAt)}</dd>
            {shown.workflowId && (
              <>
                <dt>workflow step</dt>
                <dd>
                  <a href={href("workflows", shown.workflowId)} data-workflow-link={shown.workflowId}>
                    {shown.stepKey} of workflow {shown.workflowId.slice(0, 8)}
                  </a>
                </dd>
              </>
            )}
          </dl>
          {shown.error && (
            <section class="detail-block">
              <h3>
                Error <code>{shown.error.code}</code>{" "}
                {shown.error.retryable ? <span class="muted">(retryable)</span> : <span class="muted">(not retryable)</span>}
              </h3>
              <pre class="task-error stack" data-detail="error">
                {shown.error.message}
              </pre>
              {shown.error.stack && (
                <details open>
                  <summary>Stack</summary>
                  <pre class="task-error stack" data-detail="stack">
                    {shown.error.stack}
                  </pre>
                </details>
              )}
            </section>
          )}
          {shown.status === "completed" && (
            <section class="detail-block">
              <h3>Result</h3>
              <pre data-detail="result">{json(shown.result)}</pre>
            </section>
          )}
          <section class="detail-block">
            <h3>Payload</h3>
            <pre data-detail="payload">{shown.payload === null || shown.payload === undefined ? "none" : json(shown.payload)}</pre>
          </section>
        </>
      )}
      <section class="detail-block">
        <h3>Timeline</h3>
        {timeline && timeline.items.length === 0 && <p class="muted">No stored events (retention may have removed them).</p>}
        <ol class="timeline" data-detail="timeline">
          {timeline?.items.map((event) => (
            <li key={event.cursor} data-event-type={event.type}>
              <span class="mono muted">{clock(event.ts)}</span> <strong>{event.type}</strong>{" "}
              <span class="mono muted">{brief(eventDetail(event), 100)}</span>
            </li>
          ))}
        </ol>
        {timeline?.hasMore && <p class="muted">Only the first 1,000 events are shown.</p>}
      </section>
    </aside>
  );
}

/** The part of an event worth a line: its error, its progress, its worker. */
function eventDetail(event: Envelope): string {
  const data = event.data as {
    task?: { error?: { code: string; message: string } | null; workerId?: string | null; attempts?: number };
    progress?: number;
    detail?: string | null;
  } | null;
  if (!data) return "";
  if (typeof data.progress === "number") return `${data.progress}%${data.detail ? ` ${data.detail}` : ""}`;
  const task = data.task;
  if (!task) return "";
  if (task.error) return `${task.error.code}: ${task.error.message}`;
  // A claim stores task.assigned before the attempt is counted: only task.started names the attempt.
  if (task.workerId)
    return event.type === "task.started" ? `worker ${task.workerId} · attempt ${task.attempts ?? "?"}` : `worker ${task.workerId}`;
  return "";
}
