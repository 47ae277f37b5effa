import { EXAMPLE_PAYLOADS, TaskTypeInput } from "./task-types.js";
import { useEffect, useState } from "preact/hooks";
import type { TaskView } from "../../src/client/index.js";
import type { TaskStatus } from "../../src/protocol/tasks.js";
import { ApiError } from "./api.js";
import { age, brief, shortId } from "./format.js";
import { useObservable } from "./observable.js";
import { href } from "./route.js";
import type { Session } from "./session.js";
import { TaskDetail } from "./task-detail.js";
import type { TaskFilter } from "./task-query.js";
import { isTerminal, TASK_STATUS_LIST, type TaskEntry } from "./tasks-store.js";
import { can } from "./token.js";
import { Badge, Empty, ErrorLine, ProgressBar, useNow } from "./ui.js";

/** Rows shown at most (the first page plus the tasks that arrived since it was read). */
const SHOWN = 200;
/** Text filters are asked for once typing pauses this long (or at once with Enter). */
const TYPING_MS = 120;

interface BulkAnswer {
  matched: number;
  changed: number;
}

export function TasksView({ session, openTaskId }: { session: Session; openTaskId: string | undefined }) {
  const query = session.taskQuery;
  useObservable(session.tasks, session.pools, query);
  const now = useNow();
  const mayWrite = can(session.identity, "tasks:write");

  // Every visit reads the page again (it may be stale); the filter and page are the ones the operator left.
  useEffect(() => query.watch(), []);

  const poolIds = knownPools(session);
  const rows = query.rows();
  const filtered = Object.values(query.filter).some((v) => v !== undefined);
  return (
    <section class="tasks">
      {openTaskId && <TaskDetail key={openTaskId} session={session} taskId={openTaskId} />}
      {mayWrite && <SubmitTask session={session} poolIds={poolIds} />}
      <TaskFilters session={session} poolIds={poolIds} />
      <StatusCounts session={session} />
      {mayWrite && <BulkActions session={session} />}
      {query.error && (
        <div class="error-state" role="alert">
          Could not read the tasks: {query.error}{" "}
          <button type="button" class="link" onClick={() => void query.load()}>
            Try again
          </button>
        </div>
      )}
      {!query.loaded && !query.error && <p class="muted">Loading tasks…</p>}
      {query.loaded && rows.length === 0 ? (
        <Empty>{filtered ? "No tasks match these filters." : "No tasks yet: submit one above, or through the API."}</Empty>
      ) : (
        rows.length > 0 && (
          <table class="task-table" data-page={query.pageNumber}>
            <thead>
              <tr>
                <th scope="col">task</th>
                <th scope="col">type</th>
                <th scope="col">pool</th>
                <th scope="col">status</th>
                <th scope="col">progress</th>
                <th scope="col">attempts</th>
                <th scope="col">result / error</th>
                <th scope="col">worker</th>
                <th scope="col">age</th>
                {mayWrite && (
                  <th scope="col">
                    <span class="visually-hidden">actions</span>
                  </th>
                )}
              </tr>
            </thead>
            <tbody>
              {rows.slice(0, SHOWN).map((entry) => (
                <TaskRow
                  key={entry.task.id}
                  entry={entry}
                  poolName={session.pools.byId.get(entry.task.poolId)?.pool.name}
                  now={now}
                  open={entry.task.id === openTaskId}
                  onAction={mayWrite ? (action) => act(session, entry.task.id, action) : undefined}
                />
              ))}
            </tbody>
          </table>
        )
      )}
      <nav class="pager" aria-label="Pages of tasks">
        <button
          type="button"
          class="secondary"
          data-page-action="previous"
          disabled={query.pageNumber === 1 || query.loading}
          onClick={() => void query.back()}
        >
          ← Newer
        </button>
        <span class="muted" data-page-number={query.pageNumber}>
          page {query.pageNumber}
          {query.loading ? " · loading…" : ""}
        </span>
        <button
          type="button"
          class="secondary"
          data-page-action="next"
          disabled={query.nextCursor === null || query.loading}
          onClick={() => void query.next()}
        >
          Older →
        </button>
      </nav>
    </section>
  );
}

/** Local time from a datetime-local input as ISO-8601, or undefined when empty or not a time. */
function isoFromLocal(value: string): string | undefined {
  if (!value) return undefined;
  const time = new Date(value);
  return Number.isNaN(time.getTime()) ? undefined : time.toISOString();
}

function localFromIso(iso: string | undefined): string {
  if (!iso) return "";
  const time = new Date(iso);
  const local = new Date(time.getTime() - time.getTimezoneOffset() * 60_000);
  return local.toISOString().slice(0, 16);
}

/** Filters answered by the node: status, type, pool, creation time, id prefix. Text waits until typing pauses. */
function TaskFilters({ session, poolIds }: { session: Session; poolIds: string[] }) {
  const query = session.taskQuery;
  const [type, setType] = useState(query.filter.type ?? "");
  const [q, setQ] = useState(query.filter.q ?? "");
  const apply = (change: Partial<TaskFilter>): void => {
    const next: TaskFilter = { ...query.filter, ...change };
    for (const key of Object.keys(next) as Array<keyof TaskFilter>) if (next[key] === undefined || next[key] === "") delete next[key];
    void query.setFilter(next);
  };
  useEffect(() => {
    const typed = { type: type.trim() || undefined, q: q.trim() || undefined };
    if (typed.type === query.filter.type && typed.q === query.filter.q) return;
    const timer = setTimeout(() => apply(typed), TYPING_MS);
    return () => clearTimeout(timer);
  }, [type, q]);
  const f = query.filter;
  return (
    <form
      class="toolbar card filters"
      aria-label="Task filters"
      onSubmit={(e) => {
        e.preventDefault();
        apply({ type: type.trim() || undefined, q: q.trim() || undefined });
      }}
    >
      <label>
        status{" "}
        <select
          name="status"
          value={f.status ?? ""}
          onChange={(e) => apply({ status: (e.currentTarget.value || undefined) as TaskStatus | undefined })}
        >
          <option value="">all</option>
          {TASK_STATUS_LIST.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </label>
      <label>
        type{" "}
        <input
          name="type"
          class="mono narrow"
          list="task-types"
          value={type}
          onInput={(e) => setType(e.currentTarget.value)}
          placeholder="any"
        />
      </label>
      <label>
        pool{" "}
        <select name="pool" value={f.poolId ?? ""} onChange={(e) => apply({ poolId: e.currentTarget.value || undefined })}>
          <option value="">all</option>
          {poolIds.map((id) => (
            <option key={id} value={id}>
              {session.pools.byId.get(id)?.pool.name ?? id}
            </option>
          ))}
        </select>
      </label>
      <label>
        created after{" "}
        <input
          name="createdAfter"
          type="datetime-local"
          value={localFromIso(f.createdAfter)}
          onChange={(e) => apply({ createdAfter: isoFromLocal(e.currentTarget.value) })}
        />
      </label>
      <label>
        before{" "}
        <input
          name="createdBefore"
          type="datetime-local"
          value={localFromIso(f.createdBefore)}
          onChange={(e) => apply({ createdBefore: isoFromLocal(e.currentTarget.value) })}
        />
      </label>
      <label>
        id <input name="q" class="mono narrow" value={q} onInput={(e) => setQ(e.currentTarget.value)} placeholder="starts with…" />
      </label>
      {f.scheduleId !== undefined && (
        <span class="chip" data-filter="scheduleId">
          schedule {session.schedules.byId.get(f.scheduleId)?.name ?? shortId(f.scheduleId)}{" "}
          <button type="button" class="link" aria-label="stop filtering by schedule" onClick={() => apply({ scheduleId: undefined })}>
            ×
          </button>
        </span>
      )}
      {Object.keys(f).length > 0 && (
        <button
          type="button"
          class="link"
          onClick={() => {
            setType("");
            setQ("");
            void query.setFilter({});
          }}
        >
          Clear filters
        </button>
      )}
    </form>
  );
}

/** Exact counts per status (for the pool and type filtered on), read from the node; a count is a filter. */
function StatusCounts({ session }: { session: Session }) {
  const query = session.taskQuery;
  const counts = query.counts;
  if (!counts) return null;
  return (
    <div class="counts" role="group" aria-label="Tasks per status">
      <button
        type="button"
        class={query.filter.status === undefined ? "count active" : "count"}
        data-count="all"
        data-value={counts.total}
        aria-pressed={query.filter.status === undefined}
        onClick={() => void query.setFilter({ ...query.filter, status: undefined })}
      >
        all <strong>{counts.total.toLocaleString()}</strong>
      </button>
      {TASK_STATUS_LIST.map((status) => {
        const n = counts.counts[status] ?? 0;
        return (
          <button
            type="button"
            key={status}
            class={query.filter.status === status ? `count count-${status} active` : `count count-${status}`}
            data-count={status}
            data-value={n}
            aria-pressed={query.filter.status === status}
            onClick={() => void query.setFilter({ ...query.filter, status })}
          >
            {status} <strong>{n.toLocaleString()}</strong>
          </button>
        );
      })}
    </div>
  );
}

/** `POST /api/v1/tasks/bulk`: retry or cancel every task the filter matches (the node takes at most 10,000 a call). */
function BulkActions({ session }: { session: Session }) {
  const query = session.taskQuery;
  const [pending, setPending] = useState<"retry" | "cancel">();
  const [answer, setAnswer] = useState<BulkAnswer & { action: string }>();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const filter = query.filter;
  const status = filter.status;
  // What the node would change: retry takes failed and cancelled tasks, cancel the unfinished ones.
  const canRetry = status === undefined || status === "failed" || status === "cancelled";
  const canCancel = status === undefined || !isTerminal(status);
  const estimate = status !== undefined ? query.counts?.counts[status] : undefined;
  // Nothing to act on: the counts (exact for this filter) say there is no task.
  const none = (status === undefined ? query.counts?.total : estimate) === 0;
  const run = async (action: "retry" | "cancel"): Promise<void> => {
    setBusy(true);
    try {
      const result = await session.api.post<BulkAnswer>("/api/v1/tasks/bulk", { action, filter });
      setAnswer({ ...result, action });
      setError(undefined);
      void query.load();
    } catch (failure) {
      setError(
        failure instanceof ApiError && failure.status === 404
          ? "this node has no bulk actions yet (POST /api/v1/tasks/bulk)"
          : (failure as Error).message,
      );
      setAnswer(undefined);
    } finally {
      setBusy(false);
      setPending(undefined);
    }
  };
  return (
    <div class="bulk toolbar" role="group" aria-label="Bulk actions on the filtered tasks">
      <span class="muted">Every task matching the filters:</span>
      {!pending && (
        <>
          <button
            type="button"
            class="secondary"
            data-bulk="retry"
            disabled={busy || none || !canRetry}
            onClick={() => setPending("retry")}
          >
            Retry all matching
          </button>
          <button
            type="button"
            class="secondary danger-text"
            data-bulk="cancel"
            disabled={busy || none || !canCancel}
            onClick={() => setPending("cancel")}
          >
            Cancel all matching
          </button>
        </>
      )}
      {pending && (
        <span class="confirm" role="alert">
          {pending === "retry" ? "Retry" : "Cancel"}{" "}
          {estimate === undefined ? "every matching task" : `${estimate.toLocaleString()} task${estimate === 1 ? "" : "s"}`} (at most
          10,000)?{" "}
          <button type="button" data-bulk-confirm={pending} disabled={busy} onClick={() => void run(pending)}>
            Yes, {pending}
          </button>{" "}
          <button type="button" class="link" onClick={() => setPending(undefined)}>
            No
          </button>
        </span>
      )}
      {answer && (
        <span class="ok-line" role="status" data-bulk-result={answer.action} data-matched={answer.matched} data-changed={answer.changed}>
          {answer.action}: {answer.changed.toLocaleString()} of {answer.matched.toLocaleString()} matching changed
        </span>
      )}
      <ErrorLine error={error} />
    </div>
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

function TaskRow({
  entry,
  poolName,
  now,
  open,
  onAction,
}: {
  entry: TaskEntry;
  /** The pool's name when the console knows the pool (its id otherwise, e.g. without pools:read). */
  poolName: string | undefined;
  now: number;
  open: boolean;
  onAction: ((action: TaskAction) => Promise<void>) | undefined;
}) {
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
    <tr data-task-id={task.id} data-status={task.status} class={open ? "open" : undefined}>
      <td class="mono" title={task.id}>
        <a href={href("tasks", task.id)} data-open-task={task.id} aria-label={`task ${task.id}`}>
          {shortId(task.id)}
        </a>
        {task.workflowId && (
          <span class="muted" title={`workflow ${task.workflowId}`}>
            {" "}
            · {task.stepKey}
          </span>
        )}
      </td>
      <td class="mono">{task.type}</td>
      <td class="mono" title={`pool ${task.poolId}`}>
        {poolName ?? task.poolId}
      </td>
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
        <TaskTypeInput listId="task-types" value={type} onType={setType} onExample={setPayload} />
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
        <input
          name="maxAttempts"
          type="number"
          min={1}
          max={25}
          value={maxAttempts}
          onInput={(e) => setMaxAttempts(e.currentTarget.value)}
        />
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
