import { EXAMPLE_PAYLOADS, TaskTypeInput } from "./task-types.js";
import { useEffect, useState } from "preact/hooks";
import type { ScheduleView } from "../../src/client/index.js";
import { ApiError } from "./api.js";
import { clock, shortId } from "./format.js";
import { useObservable } from "./observable.js";
import { href } from "./route.js";
import type { Session } from "./session.js";
import { can } from "./token.js";
import { Badge, Empty, ErrorLine, useAction, useNow } from "./ui.js";

const UNITS: Array<[number, string]> = [
  [86_400, "d"],
  [3600, "h"],
  [60, "min"],
];

/** `every` (ms) as the operator typed it: "every 1 s", "every 90 s", "every 5 min", "every 2 h". */
export function everyText(ms: number): string {
  const seconds = ms / 1000;
  for (const [size, unit] of UNITS) if (seconds >= size && seconds % size === 0) return `every ${seconds / size} ${unit}`;
  return `every ${seconds} s`;
}

/** "in 4 s", "in 3 min": how far off a time is ("due" once it has come). */
function until(at: number, now: number): string {
  const seconds = Math.round((at - now) / 1000);
  if (seconds <= 0) return "due";
  if (seconds < 60) return `in ${seconds} s`;
  if (seconds < 3600) return `in ${Math.floor(seconds / 60)} min`;
  if (seconds < 86_400) return `in ${Math.floor(seconds / 3600)} h`;
  return `in ${Math.floor(seconds / 86_400)} d`;
}

/**
 * The tenant's recurring tasks (`/api/v1/schedules`), live from the /tasks room `schedules`: each one's timing,
 * task, state and next due time, a link to the tasks it made; with `tasks:write` a form that creates one, and
 * Pause/Resume and Delete per row. Rows change when the node announces the change, not on the REST answer.
 */
export function SchedulesView({ session }: { session: Session }) {
  const store = session.schedules;
  useObservable(store, session.pools);
  const now = useNow();
  const mayWrite = can(session.identity, "tasks:write");
  // A cron schedule's next due time is not announced: read again once it has passed (every schedule projects its own).
  useEffect(() => store.refreshDue(session.api, now), [now]);
  const schedules = store.list();
  return (
    <section class="schedules">
      {mayWrite && <CreateSchedule session={session} />}
      {!store.loaded && <p class="muted">Loading schedules…</p>}
      {store.loaded && schedules.length === 0 && (
        <Empty>
          No schedules yet.{" "}
          {mayWrite ? (
            <>
              Create one above, or with <code>POST /api/v1/schedules</code>: it submits a task at each due time.
            </>
          ) : (
            <>
              A token with <code>tasks:write</code> can create one.
            </>
          )}
        </Empty>
      )}
      {schedules.length > 0 && (
        <table class="schedule-table">
          <thead>
            <tr>
              <th scope="col">schedule</th>
              <th scope="col">timing</th>
              <th scope="col">task</th>
              <th scope="col">state</th>
              <th scope="col">next run</th>
              <th scope="col">tasks</th>
              {mayWrite && (
                <th scope="col">
                  <span class="visually-hidden">actions</span>
                </th>
              )}
            </tr>
          </thead>
          <tbody>
            {schedules.map((schedule) => (
              <ScheduleRow
                key={schedule.id}
                schedule={schedule}
                next={store.nextRun(schedule, now)}
                now={now}
                session={session}
                mayWrite={mayWrite}
              />
            ))}
          </tbody>
        </table>
      )}
      {store.more && (
        <p class="muted">
          The newest schedules are shown; older ones are listed by <code>GET /api/v1/schedules</code>.
        </p>
      )}
    </section>
  );
}

function ScheduleRow({
  schedule,
  next,
  now,
  session,
  mayWrite,
}: {
  schedule: ScheduleView;
  next: number | undefined;
  now: number;
  session: Session;
  mayWrite: boolean;
}) {
  const { task } = schedule;
  const [confirming, setConfirming] = useState(false);
  const action = useAction();
  const { busy, error } = action;
  const path = `/api/v1/schedules/${encodeURIComponent(schedule.id)}`;
  const run = async (request: () => Promise<unknown>): Promise<void> => {
    await action.run(request);
    setConfirming(false);
  };
  return (
    <tr
      data-schedule-id={schedule.id}
      data-schedule-name={schedule.name}
      data-paused={String(schedule.paused)}
      data-kind={schedule.every === null ? "cron" : "every"}
    >
      <td>
        <strong>{schedule.name}</strong>
        <br />
        <span class="muted mono" title={schedule.id}>
          {shortId(schedule.id)}
        </span>
      </td>
      <td data-timing>
        {schedule.every !== null ? (
          everyText(schedule.every)
        ) : (
          <>
            <code>{schedule.cron}</code> <span class="muted">{schedule.timezone ?? "UTC"}</span>
          </>
        )}
      </td>
      <td>
        <span class="mono">{task.type}</span> <span class="muted">on</span> <span class="mono">{task.poolId}</span>
      </td>
      <td>
        <Badge status={schedule.paused ? "paused" : "active"} />
      </td>
      <td data-next-run={next === undefined ? "" : new Date(next).toISOString()}>
        {next === undefined ? (
          <span class="muted" title={schedule.paused ? "a paused schedule makes no task" : "the node could not say"}>
            —
          </span>
        ) : (
          <>
            <time dateTime={new Date(next).toISOString()}>{clock(new Date(next).toISOString())}</time>{" "}
            <span class="muted">{until(next, now)}</span>
          </>
        )}
      </td>
      <td>
        {/* The Tasks view with this schedule's tasks (GET /api/v1/tasks?scheduleId=): its filter is set, then the tab changes. */}
        <a
          href={href("tasks")}
          data-schedule-tasks={schedule.id}
          onClick={() => void session.taskQuery.setFilter({ scheduleId: schedule.id })}
        >
          tasks<span class="visually-hidden"> made by {schedule.name}</span>
        </a>
      </td>
      {mayWrite && (
        <td class="row-actions">
          {!confirming && (
            <>
              {schedule.paused ? (
                <button
                  type="button"
                  class="secondary"
                  data-action="resume-schedule"
                  disabled={busy}
                  onClick={() => void run(() => session.api.request("PATCH", path, { paused: false }))}
                >
                  Resume
                </button>
              ) : (
                <button
                  type="button"
                  class="secondary danger-text"
                  data-action="pause-schedule"
                  disabled={busy}
                  onClick={() => void run(() => session.api.request("PATCH", path, { paused: true }))}
                >
                  Pause
                </button>
              )}{" "}
              <button type="button" class="small" data-action="delete-schedule" disabled={busy} onClick={() => setConfirming(true)}>
                Delete
              </button>
            </>
          )}
          {confirming && (
            <span class="confirm" role="alert">
              Delete {schedule.name}? It makes no task after this.{" "}
              <button
                type="button"
                class="danger"
                data-action="confirm-delete-schedule"
                disabled={busy}
                onClick={() => void run(() => session.api.request("DELETE", path))}
              >
                Yes, delete
              </button>{" "}
              <button type="button" class="link" data-action="cancel-delete-schedule" onClick={() => setConfirming(false)}>
                No
              </button>
            </span>
          )}
          <ErrorLine error={error} />
        </td>
      )}
    </tr>
  );
}

/**
 * What each field takes (docs/protocol.md, "Schedules"), said after the node's 400 naming it: its message names
 * the field (`invalid body: cron`), the reason stays in the answer's `details`, which the console's Api keeps not.
 */
const FIELD_HINTS: Record<string, string> = {
  name: "1 to 128 characters, unique in the tenant",
  every: "1 s or more, at most about 24.8 days",
  cron: "5 fields: minute hour day-of-month month day-of-week, e.g. */5 * * * *",
  timezone: "an IANA name, e.g. Europe/Berlin or UTC",
  "task.type": "echo, sleep, fail, or a type a worker of the pool registered",
};

/** The server's message, and what the fields it names take. */
function explained(failure: unknown, fields: Set<string>): string {
  const hints = [...fields].filter((f) => FIELD_HINTS[f]).map((f) => `${f}: ${FIELD_HINTS[f]}`);
  const message = (failure as Error).message;
  return hints.length === 0 ? message : `${message} (${hints.join("; ")})`;
}

/**
 * The fields a refusal is about, to mark their inputs: a 400 names them (`invalid body: cron, task.type`); an
 * unknown type (400), a missing pool (404) and a taken name (409) say so in their own words.
 */
function namedFields(failure: unknown): Set<string> {
  if (!(failure instanceof ApiError)) return new Set();
  if (failure.status === 404) return new Set(["task.poolId"]);
  if (failure.status === 409 && failure.code === "CONFLICT") return new Set(["name"]);
  if (failure.status !== 400) return new Set();
  if (failure.message.startsWith("unknown task type")) return new Set(["task.type"]);
  const match = /^invalid body: (.+)$/.exec(failure.message);
  return new Set(match ? match[1]!.split(", ") : []);
}

/**
 * `POST /api/v1/schedules`: a name, the task each due time submits (type, pool, payload), and either an interval
 * in seconds (`every`, sent in ms) or a cron expression read in a time zone. The node checks it all; a refusal
 * names the field, shown under the form with the field marked, and nothing is created.
 */
function CreateSchedule({ session }: { session: Session }) {
  const [name, setName] = useState("");
  const [type, setType] = useState("echo");
  const [payload, setPayload] = useState(EXAMPLE_PAYLOADS.echo!);
  const [poolId, setPoolId] = useState("default");
  const [kind, setKind] = useState<"every" | "cron">("every");
  const [seconds, setSeconds] = useState("60");
  const [cron, setCron] = useState("*/5 * * * *");
  const [timezone, setTimezone] = useState("");
  const [error, setError] = useState<string>();
  const [invalid, setInvalid] = useState<Set<string>>(new Set());
  const [created, setCreated] = useState<ScheduleView>();
  const [busy, setBusy] = useState(false);
  const mark = (...fields: string[]) => (fields.some((f) => invalid.has(f)) ? true : undefined);
  const pools = can(session.identity, "pools:read")
    ? ["default", ...session.pools.list().map((p) => p.pool.id)].filter((id, i, all) => all.indexOf(id) === i)
    : undefined;
  return (
    <form
      class="card create-schedule"
      aria-label="Create a schedule"
      onSubmit={async (event) => {
        event.preventDefault();
        let parsed: unknown;
        try {
          parsed = payload.trim() === "" ? undefined : JSON.parse(payload);
        } catch {
          setInvalid(new Set(["task.payload"]));
          return setError("the payload is not JSON");
        }
        const interval = Number(seconds);
        if (kind === "every" && (seconds.trim() === "" || !Number.isFinite(interval))) {
          setInvalid(new Set(["every"]));
          return setError("every: a number of seconds");
        }
        const timing =
          kind === "every"
            ? { every: Math.round(interval * 1000) }
            : { cron: cron.trim(), ...(timezone.trim() ? { timezone: timezone.trim() } : {}) };
        setBusy(true);
        try {
          const body = {
            name: name.trim(),
            task: { type: type.trim(), poolId: poolId.trim() || "default", ...(parsed === undefined ? {} : { payload: parsed }) },
            ...timing,
          };
          const answer = await session.api.post<{ schedule: ScheduleView }>("/api/v1/schedules", body);
          setCreated(answer.schedule);
          setName("");
          setError(undefined);
          setInvalid(new Set());
        } catch (failure) {
          const fields = namedFields(failure);
          setCreated(undefined);
          setInvalid(fields);
          setError(explained(failure, fields));
        } finally {
          setBusy(false);
        }
      }}
    >
      <h2>Create a schedule</h2>
      <label>
        name
        <input
          name="name"
          required
          maxLength={128}
          value={name}
          aria-invalid={mark("name")}
          onInput={(e) => setName(e.currentTarget.value)}
        />
      </label>
      <label>
        task type
        <TaskTypeInput
          listId="schedule-task-types"
          class="mono narrow"
          value={type}
          invalid={mark("task.type", "task")}
          onType={setType}
          onExample={setPayload}
        />
      </label>
      <label>
        pool
        {pools ? (
          <select name="poolId" value={poolId} aria-invalid={mark("task.poolId")} onChange={(e) => setPoolId(e.currentTarget.value)}>
            {pools.map((id) => (
              <option key={id} value={id}>
                {session.pools.byId.get(id)?.pool.name ?? id}
              </option>
            ))}
          </select>
        ) : (
          <input
            name="poolId"
            class="mono narrow"
            value={poolId}
            aria-invalid={mark("task.poolId")}
            onInput={(e) => setPoolId(e.currentTarget.value)}
          />
        )}
      </label>
      <label class="grow">
        payload (JSON)
        <textarea
          name="payload"
          class="mono"
          rows={2}
          spellcheck={false}
          value={payload}
          aria-invalid={mark("task.payload")}
          onInput={(e) => setPayload(e.currentTarget.value)}
        />
      </label>
      <fieldset class="timing">
        <legend>runs</legend>
        <label class="choice">
          <input type="radio" name="kind" value="every" checked={kind === "every"} onChange={() => setKind("every")} /> every
        </label>
        <label class="choice">
          <input type="radio" name="kind" value="cron" checked={kind === "cron"} onChange={() => setKind("cron")} /> cron
        </label>
        {kind === "every" ? (
          <label>
            seconds
            <input
              name="everySeconds"
              type="number"
              min={1}
              step="any"
              class="short"
              value={seconds}
              aria-invalid={mark("every")}
              onInput={(e) => setSeconds(e.currentTarget.value)}
            />
          </label>
        ) : (
          <>
            <label>
              cron (5 fields)
              <input
                name="cron"
                class="mono narrow"
                spellcheck={false}
                value={cron}
                aria-invalid={mark("cron", "every")}
                onInput={(e) => setCron(e.currentTarget.value)}
              />
            </label>
            <label>
              time zone
              <input
                name="timezone"
                class="narrow"
                placeholder="UTC"
                value={timezone}
                aria-invalid={mark("timezone")}
                onInput={(e) => setTimezone(e.currentTarget.value)}
              />
            </label>
          </>
        )}
      </fieldset>
      <button type="submit" data-action="create-schedule" disabled={busy || !name.trim() || !type.trim()}>
        Create schedule
      </button>
      {created && (
        <span class="ok-line" role="status" data-created-schedule={created.id}>
          created {created.name}
        </span>
      )}
      <ErrorLine error={error} />
    </form>
  );
}
