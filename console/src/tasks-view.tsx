import { useEffect, useState } from "preact/hooks";
import type { TaskView } from "../../src/client/index.js";
import type { TaskStatus } from "../../src/protocol/tasks.js";
import { age, brief, shortId } from "./format.js";
import { useObservable } from "./observable.js";
import type { Session } from "./session.js";
import { isTerminal, TASK_STATUS_LIST, type TaskEntry } from "./tasks-store.js";
import { can } from "./token.js";
import { Badge, Empty, ErrorLine, ProgressBar, useNow } from "./ui.js";

const SHOWN = 200;

export function TasksView({ session }: { session: Session }) {
  useObservable(session.tasks, session.pools);
  const now = useNow();
  const [poolId, setPoolId] = useState<string>();
  const [status, setStatus] = useState<TaskStatus>();
  const [error, setError] = useState<string>();
  const mayWrite = can(session.identity, "tasks:write");

  // A filter also asks the node: tasks older than the first snapshot may match it.
  useEffect(() => {
    if (poolId === undefined && status === undefined) return;
    const query = new URLSearchParams();
    if (poolId !== undefined) query.set("poolId", poolId);
    if (status !== undefined) query.set("status", status);
    session.loadTasks(query).then(
      () => setError(undefined),
      (failure: Error) => setError(failure.message),
    );
  }, [poolId, status]);

  const poolIds = knownPools(session);
  const tasks = session.tasks.list({ poolId, status });
  return (
    <section class="tasks">
      {mayWrite && <SubmitTask session={session} poolIds={poolIds} />}
      <div class="toolbar">
        <label>
          pool{" "}
          <select name="pool" value={poolId ?? ""} onChange={(e) => setPoolId(e.currentTarget.value || undefined)}>
            <option value="">all</option>
            {poolIds.map((id) => (
              <option key={id} value={id}>
                {session.pools.byId.get(id)?.pool.name ?? id}
              </option>
            ))}
          </select>
        </label>
        <label>
          status{" "}
          <select name="status" value={status ?? ""} onChange={(e) => setStatus((e.currentTarget.value || undefined) as TaskStatus | undefined)}>
            <option value="">all</option>
            {TASK_STATUS_LIST.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <span class="muted">
          {tasks.length > SHOWN ? `newest ${SHOWN} of ${tasks.length}` : `${tasks.length} task${tasks.length === 1 ? "" : "s"}`}
        </span>
        <ErrorLine error={error} />
      </div>
      {tasks.length === 0 ? (
        <Empty>No tasks{poolId || status ? " match these filters" : " yet"}.</Empty>
      ) : (
        <table class="task-table">
          <thead>
            <tr>
              <th>task</th>
              <th>type</th>
              <th>pool</th>
              <th>status</th>
              <th>progress</th>
              <th>attempts</th>
              <th>result / error</th>
              <th>worker</th>
              <th>age</th>
              {mayWrite && <th />}
            </tr>
          </thead>
          <tbody>
            {tasks.slice(0, SHOWN).map((entry) => (
              <TaskRow key={entry.task.id} entry={entry} now={now} onAction={mayWrite ? (action) => act(session, entry.task.id, action) : undefined} />
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function knownPools(session: Session): string[] {
  const ids = new Set<string>(session.pools.byId.keys());
  for (const entry of session.tasks.byId.values()) ids.add(entry.task.poolId);
  ids.add("default");
  return [...ids].sort((a, b) => (a === "default" ? -1 : b === "default" ? 1 : a.localeCompare(b)));
}

type TaskAction = "cancel" | "retry";

/** `POST /api/v1/tasks/:id/cancel` or `/retry`; the row changes when the task's events arrive. */
async function act(session: Session, taskId: string, action: TaskAction): Promise<void> {
  await session.api.post(`/api/v1/tasks/${encodeURIComponent(taskId)}/${action}`, {});
}

function TaskRow({ entry, now, onAction }: { entry: TaskEntry; now: number; onAction: ((action: TaskAction) => Promise<void>) | undefined }) {
  const { task } = entry;
  const [error, setError] = useState<string>();
  const button = (action: TaskAction, label: string) => (
    <button
      type="button"
      class="small"
      data-action={action}
      onClick={() =>
        onAction!(action).then(
          () => setError(undefined),
          (failure: Error) => setError(failure.message),
        )
      }
    >
      {label}
    </button>
  );
  return (
    <tr data-task-id={task.id} data-status={task.status}>
      <td class="mono" title={task.id}>
        {shortId(task.id)}
        {task.workflowId && <span class="muted" title={`workflow ${task.workflowId}`}> · {task.stepKey}</span>}
      </td>
      <td class="mono">{task.type}</td>
      <td class="mono">{task.poolId}</td>
      <td>
        <Badge status={task.status} />
      </td>
      <td>
        <ProgressBar value={entry.progress} detail={entry.progressDetail} />
      </td>
      <td class="num">
        {task.attempts} / {task.maxAttempts}
      </td>
      <td class="outcome">
        <Outcome task={task} />
        <ErrorLine error={error} />
      </td>
      <td class="mono muted">{task.workerId ?? "—"}</td>
      <td class="muted">{age(task.createdAt, now)}</td>
      {onAction && (
        <td>
          {!isTerminal(task.status) && button("cancel", "Cancel")}
          {(task.status === "failed" || task.status === "cancelled") && button("retry", "Retry")}
        </td>
      )}
    </tr>
  );
}

function Outcome({ task }: { task: TaskView }) {
  if (task.error) {
    return (
      <span class="task-error" title={task.error.message}>
        {task.error.code}: {brief(task.error.message, 80)}
      </span>
    );
  }
  if (task.status === "completed") {
    return (
      <code class="task-result" title={brief(task.result, 2000)}>
        {brief(task.result, 80)}
      </code>
    );
  }
  return <span class="muted">—</span>;
}

const TYPES = ["echo", "sleep", "fail"];
const EXAMPLE_PAYLOADS: Record<string, string> = { echo: '{"hello":"world"}', sleep: '{"ms":3000}', fail: '{"message":"boom","retryable":false}' };

/** Submit a task: the same request as `POST /api/v1/tasks`, with an Idempotency-Key so a double click makes one task. */
function SubmitTask({ session, poolIds }: { session: Session; poolIds: string[] }) {
  const [type, setType] = useState("sleep");
  const [payload, setPayload] = useState(EXAMPLE_PAYLOADS.sleep!);
  const [poolId, setPoolId] = useState("default");
  const [maxAttempts, setMaxAttempts] = useState("1");
  const [error, setError] = useState<string>();
  const [last, setLast] = useState<string>();
  const [key, setKey] = useState(() => crypto.randomUUID());
  const [busy, setBusy] = useState(false);
  return (
    <form
      class="card submit-task"
      onSubmit={async (event) => {
        event.preventDefault();
        let parsed: unknown;
        try {
          parsed = payload.trim() === "" ? undefined : JSON.parse(payload);
        } catch {
          return setError("the payload is not JSON");
        }
        setBusy(true);
        try {
          const body = { type: type.trim(), payload: parsed, poolId, maxAttempts: Number(maxAttempts) };
          const { task } = await session.api.post<{ task: TaskView }>("/api/v1/tasks", body, { "idempotency-key": key });
          setLast(task.id);
          setError(undefined);
          setKey(crypto.randomUUID());
        } catch (failure) {
          setError((failure as Error).message);
        } finally {
          setBusy(false);
        }
      }}
    >
      <h2>Submit a task</h2>
      <label>
        type
        <input
          name="type"
          list="task-types"
          value={type}
          onInput={(e) => {
            const next = e.currentTarget.value;
            setType(next);
            if (EXAMPLE_PAYLOADS[next]) setPayload(EXAMPLE_PAYLOADS[next]);
          }}
        />
        <datalist id="task-types">
          {TYPES.map((t) => (
            <option key={t} value={t} />
          ))}
        </datalist>
      </label>
      <label class="grow">
        payload (JSON)
        <input name="payload" class="mono" value={payload} onInput={(e) => setPayload(e.currentTarget.value)} />
      </label>
      <label>
        pool
        <select name="poolId" value={poolId} onChange={(e) => setPoolId(e.currentTarget.value)}>
          {poolIds.map((id) => (
            <option key={id} value={id}>
              {id}
            </option>
          ))}
        </select>
      </label>
      <label>
        attempts
        <input name="maxAttempts" type="number" min={1} max={25} value={maxAttempts} onInput={(e) => setMaxAttempts(e.currentTarget.value)} />
      </label>
      <button type="submit" disabled={busy || !type.trim()}>
        Submit
      </button>
      {last && (
        <span class="muted" data-submitted-task={last}>
          submitted {shortId(last)}
        </span>
      )}
      <ErrorLine error={error} />
    </form>
  );
}
