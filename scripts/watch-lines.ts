/**
 * How the terminal watcher (scripts/watch.ts) shows an event: one line of local time, type, room, cursor and a
 * short summary of `data`. Built-in events get a summary written for them; any other event (a backend's own,
 * or a built-in one added to the catalogue later) shows its `data` as truncated JSON.
 */
import type { Envelope, EventData, EventName } from "../src/protocol/events.js";
import type { TaskEventView, WorkflowView } from "../src/protocol/views.js";

const SUMMARY_WIDTH = 120;

/** ANSI colours, or nothing: the watcher's output is also read by scripts and tests. */
export interface Palette {
  dim: (text: string) => string;
  good: (text: string) => string;
  bad: (text: string) => string;
  warn: (text: string) => string;
  info: (text: string) => string;
}

const plain: Palette = { dim: (t) => t, good: (t) => t, bad: (t) => t, warn: (t) => t, info: (t) => t };
const ansi = (code: number) => (text: string) => `\u001b[${code}m${text}\u001b[0m`;
const coloured: Palette = { dim: ansi(2), good: ansi(32), bad: ansi(31), warn: ansi(33), info: ansi(36) };

/** Colours only on a terminal, and never with NO_COLOR set to anything but "" (https://no-color.org). */
export function palette(isTTY: boolean, env: NodeJS.ProcessEnv): Palette {
  return isTTY && !env.NO_COLOR ? coloured : plain;
}

export function truncate(text: string, width = SUMMARY_WIDTH): string {
  return text.length <= width ? text : `${text.slice(0, width - 1)}…`;
}

/** Ids are UUIDs: their first 8 characters tell tasks apart on one screen. */
function shortId(id: string): string {
  return id.length > 9 ? `${id.slice(0, 8)}…` : id;
}

function json(value: unknown, width = 40): string {
  return truncate(JSON.stringify(value) ?? "undefined", width);
}

function task(view: TaskEventView): string {
  const parts = [`task ${shortId(view.id)} ${view.type} ${view.status} attempts=${view.attempts}`];
  if (view.workerId) parts.push(`worker=${view.workerId}`);
  if (view.status === "completed") parts.push(`result=${json(view.result)}`);
  if (view.error) parts.push(`error=${view.error.code}: ${truncate(view.error.message, 60)}`);
  return parts.join(" ");
}

function workflow(view: WorkflowView, more = ""): string {
  return `workflow ${shortId(view.id)} ${view.name} ${view.status}${more}`;
}

type Summaries = { [K in EventName]?: (data: EventData<K>) => string };

const SUMMARIES: Summaries = {
  "pool.created": ({ pool }) => `pool ${pool.name} (${shortId(pool.id)}) ${pool.status} desired=${pool.desiredWorkers}`,
  "pool.updated": ({ pool, changed }) => `pool ${pool.name} (${shortId(pool.id)}) changed ${changed.join(",")}`,
  "pool.scaling": ({ poolId, from, to }) => `pool ${shortId(poolId)} desired ${from} → ${to}`,
  "pool.status_changed": ({ poolId, workers, queueDepth }) => {
    const counts = Object.entries(workers)
      .filter(([, n]) => n > 0)
      .map(([status, n]) => `${status}=${n}`);
    return `pool ${shortId(poolId)} ${counts.join(" ") || "no workers"} queue=${queueDepth ?? "?"}`;
  },
  "worker.status_changed": ({ worker, previous }) =>
    `worker ${worker.id} ${worker.status}${previous ? ` (was ${previous})` : ""}${worker.detail ? ` ${truncate(worker.detail, 60)}` : ""}`,
  "task.created": (data) => task(data.task),
  "task.queued": (data) => `${task(data.task)}${data.requeued ? ` requeued: ${data.reason ?? ""}` : ""}`,
  "task.assigned": (data) => task(data.task),
  "task.started": (data) => task(data.task),
  "task.progress": ({ taskId, progress, detail }) => `task ${shortId(taskId)} ${progress}%${detail ? ` ${truncate(detail, 80)}` : ""}`,
  "task.retrying": (data) => `${task(data.task)} retry in ${data.nextAttemptInMs}ms`,
  "task.retried": (data) => `${task(data.task)} retried by hand (${data.task.retries}×)`,
  "task.completed": (data) => task(data.task),
  "task.failed": (data) => task(data.task),
  "task.cancelled": (data) => task(data.task),
  "workflow.started": (data) => workflow(data.workflow, ` steps=${data.steps.length}`),
  "workflow.step_completed": (data) => workflow(data.workflow, ` step ${data.step} done (task ${shortId(data.taskId)})`),
  "workflow.completed": (data) => workflow(data.workflow),
  "workflow.failed": (data) => workflow(data.workflow, ` step ${data.step}${data.error ? ` error=${data.error.code}` : ""}`),
  "workflow.cancelled": (data) => workflow(data.workflow),
};

/** A short, readable account of an event's `data`. */
export function summarize(event: Envelope): string {
  const summary = Object.hasOwn(SUMMARIES, event.type) ? SUMMARIES[event.type as EventName] : undefined;
  if (summary) {
    try {
      // The table is keyed by the event's own type, so its data has the shape this entry expects.
      return truncate((summary as (data: unknown) => string)(event.data));
    } catch {
      // A payload that does not have its catalogue shape is shown as it is rather than hidden.
    }
  }
  return truncate(JSON.stringify(event.data) ?? "null");
}

function colourOfType(type: string, colours: Palette): (text: string) => string {
  if (/\.(completed|step_completed)$/.test(type)) return colours.good;
  if (/\.(failed|cancelled)$/.test(type)) return colours.bad;
  if (/\.(retrying|scaling)$/.test(type)) return colours.warn;
  return colours.info;
}

function localTime(iso: string): string {
  const date = new Date(iso);
  const at = Number.isNaN(date.getTime()) ? new Date() : date;
  const pad = (n: number, width = 2): string => String(n).padStart(width, "0");
  return `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}.${pad(at.getMilliseconds(), 3)}`;
}

/** `14:03:07.412 task.completed          tasks  5c3a67c0f4-000000000007  task 3f2a1b2c… echo completed attempts=1 …` */
export function formatEvent(event: Envelope, colours: Palette): string {
  const type = colourOfType(event.type, colours)(event.type.padEnd(23));
  return `${colours.dim(localTime(event.ts))} ${type} ${event.room} ${colours.dim(event.cursor)}  ${summarize(event)}`;
}
