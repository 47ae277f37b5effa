/**
 * What must hold after any fault, checked against the database itself (not the API of the nodes under test):
 *
 * - not lost: every task id that got a 202 exists;
 * - not stranded: every task of the tenant (all rows, not only the accepted ones) is terminal;
 * - its log is whole: its room `task:<id>` in /tasks holds task.created, exactly one terminal event, and that
 *   event matches the stored status;
 * - a client that followed a room has every event the room's log holds, each once (compareWithLog).
 */
import type { Envelope } from "../../src/protocol/events.js";
import { decodeCursor } from "../../src/protocol/cursor.js";
import type { DbInspector, EventRowLite } from "./private-services.js";

export const TERMINAL_STATUSES = ["completed", "failed", "cancelled"] as const;
const TERMINAL = new Set<string>(TERMINAL_STATUSES);
const TERMINAL_EVENT = new Set(TERMINAL_STATUSES.map((s) => `task.${s}`));

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** At most `n` items, and how many more there were: failure messages stay readable. */
function sample<T>(items: T[], n = 5, show: (item: T) => string = (item) => String(item)): string {
  const shown = items.slice(0, n).map(show).join(", ");
  return items.length > n ? `${shown}, … (+${items.length - n})` : shown;
}

export interface SettleResult {
  settled: boolean;
  waitedMs: number;
  /** Why the wait ended without every task terminal. */
  reason?: string;
  statusCounts: Record<string, number>;
}

/**
 * Polls the database until no task of the tenant is left in a non-terminal status. Gives up at `timeoutMs`, or
 * earlier when nothing moved (task statuses and the tenant's event count unchanged) for `stallMs`: then the
 * remaining tasks are stranded, and waiting out the whole timeout would only make a failing run slower. Never
 * throws: the invariant check that follows says what is wrong. Queries that fail (the database is down) count
 * as "no news".
 */
export async function waitForSettled(
  db: DbInspector,
  tenantId: string,
  options: { timeoutMs: number; stallMs: number; pollMs?: number },
): Promise<SettleResult> {
  const started = Date.now();
  let statusCounts: Record<string, number> = {};
  let signature = "";
  let lastChange = Date.now();
  let lastError: string | undefined;
  for (;;) {
    try {
      statusCounts = await db.statusCounts(tenantId);
      const events = await db.eventCounts(tenantId);
      lastError = undefined;
      const open = Object.entries(statusCounts).filter(([status]) => !TERMINAL.has(status));
      if (open.length === 0 && Object.keys(statusCounts).length > 0) return { settled: true, waitedMs: Date.now() - started, statusCounts };
      const next = JSON.stringify([statusCounts, events.rows]);
      if (next !== signature) {
        signature = next;
        lastChange = Date.now();
      }
    } catch (error) {
      lastError = (error as Error).message;
    }
    const now = Date.now();
    if (now - started >= options.timeoutMs) {
      return {
        settled: false,
        waitedMs: now - started,
        statusCounts,
        reason: `timed out after ${options.timeoutMs} ms${lastError ? ` (last query error: ${lastError})` : ""}`,
      };
    }
    if (now - lastChange >= options.stallMs) {
      return {
        settled: false,
        waitedMs: now - started,
        statusCounts,
        reason: `no progress for ${options.stallMs} ms${lastError ? ` (last query error: ${lastError})` : ""}`,
      };
    }
    await sleep(options.pollMs ?? 500);
  }
}

export interface InvariantReport {
  label: string;
  /** Task ids that got a 202. */
  accepted: number;
  /** Task rows of the tenant (retries with the same Idempotency-Key must not add rows). */
  tasks: number;
  /** Distinct events of the tenant, and stored rows (an event is stored once per room it belongs to). */
  eventsWritten: number;
  eventRows: number;
  statusCounts: Record<string, number>;
  /** Accepted ids with no row. */
  lost: string[];
  /** Rows not in a terminal status. */
  stranded: Array<{ id: string; status: string }>;
  /** Rows whose room log has no task.created. */
  withoutCreated: string[];
  /** Terminal rows whose room log has no terminal event. */
  withoutTerminalEvent: Array<{ id: string; status: string }>;
  /** Rows whose room log has more than one terminal event. */
  multipleTerminal: Array<{ id: string; types: string[] }>;
  /** Rows whose last terminal event disagrees with the stored status. */
  mismatched: Array<{ id: string; status: string; event: string }>;
  /** Rows whose room log has a gap in its sequence numbers. */
  gapped: string[];
  problems: string[];
  summary: string;
}

/**
 * Checks every task of the tenant against its own room log; prints a one-line summary. With `graceMs`, a check
 * that finds problems is repeated every second for that long first: events a crashed node staged may still be
 * on their way into the log (relayed after OUTBOX_RELAY_AFTER_MS), and a passing core must not fail on timing.
 */
export async function checkTaskInvariants(
  db: DbInspector,
  tenantId: string,
  acceptedIds: Iterable<string>,
  label: string,
  options: { graceMs?: number } = {},
): Promise<InvariantReport> {
  const accepted = [...acceptedIds];
  const deadline = Date.now() + (options.graceMs ?? 0);
  let report = await taskInvariants(db, tenantId, accepted, label);
  while (report.problems.length > 0 && Date.now() < deadline) {
    await sleep(1000);
    report = await taskInvariants(db, tenantId, accepted, label);
  }
  console.log(`      ${report.summary}`);
  return report;
}

async function taskInvariants(db: DbInspector, tenantId: string, acceptedIds: string[], label: string): Promise<InvariantReport> {
  const accepted = new Set(acceptedIds);
  const [tasks, events, counts] = await Promise.all([db.tasks(tenantId), db.taskRoomEvents(tenantId), db.eventCounts(tenantId)]);
  const byRoom = new Map<string, EventRowLite[]>();
  for (const event of events) {
    let list = byRoom.get(event.room);
    if (!list) byRoom.set(event.room, (list = []));
    list.push(event);
  }
  const ids = new Set(tasks.map((t) => t.id));
  const statusCounts: Record<string, number> = {};
  const report: InvariantReport = {
    label,
    accepted: accepted.size,
    tasks: tasks.length,
    eventsWritten: counts.events,
    eventRows: counts.rows,
    statusCounts,
    lost: [...accepted].filter((id) => !ids.has(id)),
    stranded: [],
    withoutCreated: [],
    withoutTerminalEvent: [],
    multipleTerminal: [],
    mismatched: [],
    gapped: [],
    problems: [],
    summary: "",
  };
  for (const task of tasks) {
    statusCounts[task.status] = (statusCounts[task.status] ?? 0) + 1;
    if (!TERMINAL.has(task.status)) report.stranded.push({ id: task.id, status: task.status });
    const log = byRoom.get(`task:${task.id}`) ?? [];
    if (!log.some((e) => e.type === "task.created")) report.withoutCreated.push(task.id);
    for (let i = 1; i < log.length; i++) {
      if (log[i]!.seq !== log[i - 1]!.seq + 1) {
        report.gapped.push(task.id);
        break;
      }
    }
    const terminal = log.filter((e) => TERMINAL_EVENT.has(e.type));
    if (terminal.length > 1) report.multipleTerminal.push({ id: task.id, types: terminal.map((e) => `${e.type}@${e.seq}`) });
    const last = terminal.at(-1);
    if (TERMINAL.has(task.status)) {
      if (!last) report.withoutTerminalEvent.push({ id: task.id, status: task.status });
      else if (last.type !== `task.${task.status}`) report.mismatched.push({ id: task.id, status: task.status, event: last.type });
    } else if (last) {
      report.mismatched.push({ id: task.id, status: task.status, event: last.type });
    }
  }
  const statuses = Object.entries(statusCounts)
    .map(([s, n]) => `${s} ${n}`)
    .join(", ");
  const strandedBy: Record<string, number> = {};
  for (const s of report.stranded) strandedBy[s.status] = (strandedBy[s.status] ?? 0) + 1;
  report.summary =
    `[${label}] tasks accepted ${report.accepted}, rows ${report.tasks} (${statuses || "none"}), ` +
    `events written ${report.eventsWritten} (${report.eventRows} room rows), lost ${report.lost.length}, ` +
    `stranded ${report.stranded.length}${
      report.stranded.length
        ? ` (${Object.entries(strandedBy)
            .map(([s, n]) => `${s} ${n}`)
            .join(", ")})`
        : ""
    }, ` +
    `no task.created ${report.withoutCreated.length}, no terminal event ${report.withoutTerminalEvent.length}, ` +
    `several terminal events ${report.multipleTerminal.length}, last terminal event ≠ status ${report.mismatched.length}`;
  const p = report.problems;
  if (report.lost.length) p.push(`lost: ${report.lost.length} accepted task(s) have no row: ${sample(report.lost)}`);
  if (report.stranded.length)
    p.push(`stranded: ${report.stranded.length} task(s) not terminal: ${sample(report.stranded, 5, (s) => `${s.id} (${s.status})`)}`);
  if (report.withoutCreated.length)
    p.push(`${report.withoutCreated.length} task(s) without task.created in their room: ${sample(report.withoutCreated)}`);
  if (report.withoutTerminalEvent.length) {
    p.push(
      `${report.withoutTerminalEvent.length} terminal task(s) without a terminal event in their room: ${sample(report.withoutTerminalEvent, 5, (s) => `${s.id} (${s.status})`)}`,
    );
  }
  if (report.multipleTerminal.length) {
    p.push(
      `${report.multipleTerminal.length} task(s) with more than one terminal event: ${sample(report.multipleTerminal, 3, (m) => `${m.id} [${m.types.join(" ")}]`)}`,
    );
  }
  if (report.mismatched.length) {
    p.push(
      `${report.mismatched.length} task(s) whose last terminal event is not their status: ${sample(report.mismatched, 5, (m) => `${m.id} (${m.status} vs ${m.event})`)}`,
    );
  }
  if (report.gapped.length) p.push(`${report.gapped.length} task room log(s) with a sequence gap: ${sample(report.gapped)}`);
  return report;
}

export interface StreamComparison {
  /** Events the room's log holds after the client's starting point. */
  logged: number;
  delivered: number;
  missing: EventRowLite[];
  /** Event ids the client got more than once. */
  duplicated: string[];
  /** Events the client got that the log does not hold (at that position). */
  phantom: Envelope[];
  /** Delivered out of sequence order. */
  outOfOrder: number;
  problems: string[];
  summary: string;
}

/**
 * Compares what a client delivered for one room with the room's stored log after `afterSeq` (the position the
 * client subscribed at): none missing, none twice, none that the log does not hold, in order. Waits up to
 * `waitMs` for the client to catch up first.
 */
export async function compareWithLog(
  db: DbInspector,
  where: { tenantId: string; namespace: string; room: string; afterSeq: number },
  delivered: Envelope[],
  options: { waitMs?: number; label?: string } = {},
): Promise<StreamComparison> {
  const load = async (): Promise<EventRowLite[]> =>
    (await db.roomEvents(where.tenantId, where.namespace, where.room)).filter((e) => e.seq > where.afterSeq);
  const key = (seq: number, id: string): string => `${seq}:${id}`;
  const deadline = Date.now() + (options.waitMs ?? 15_000);
  let log = await load();
  for (;;) {
    const got = new Set(delivered.map((e) => key(decodeCursor(e.cursor)?.seq ?? -1, e.id)));
    if (log.every((e) => got.has(key(e.seq, e.eventId))) || Date.now() > deadline) break;
    await sleep(250);
    log = await load();
  }
  const epoch = await db.roomEpoch(where.tenantId, where.namespace, where.room);
  const inLog = new Set(log.map((e) => key(e.seq, e.eventId)));
  const seenIds = new Map<string, number>();
  const phantom: Envelope[] = [];
  let outOfOrder = 0;
  let previous = where.afterSeq;
  const got = new Set<string>();
  for (const envelope of delivered) {
    seenIds.set(envelope.id, (seenIds.get(envelope.id) ?? 0) + 1);
    const position = decodeCursor(envelope.cursor);
    const k = key(position?.seq ?? -1, envelope.id);
    got.add(k);
    if (!position || position.epoch !== epoch || !inLog.has(k)) phantom.push(envelope);
    if (position) {
      if (position.seq <= previous) outOfOrder++;
      previous = position.seq;
    }
  }
  const result: StreamComparison = {
    logged: log.length,
    delivered: delivered.length,
    missing: log.filter((e) => !got.has(key(e.seq, e.eventId))),
    duplicated: [...seenIds].filter(([, n]) => n > 1).map(([id]) => id),
    phantom,
    outOfOrder,
    problems: [],
    summary: "",
  };
  const label = options.label ?? `${where.namespace}/${where.room}`;
  result.summary =
    `[${label}] room log ${result.logged} event(s) after seq ${where.afterSeq}; client delivered ${result.delivered}: ` +
    `missing ${result.missing.length}, twice ${result.duplicated.length}, not in the log ${result.phantom.length}, out of order ${result.outOfOrder}`;
  if (result.missing.length) {
    result.problems.push(
      `client is missing ${result.missing.length} event(s) of ${label}: ${sample(result.missing, 6, (e) => `#${e.seq} ${e.type}`)}`,
    );
  }
  if (result.duplicated.length)
    result.problems.push(`client got ${result.duplicated.length} event(s) of ${label} more than once: ${sample(result.duplicated)}`);
  if (result.phantom.length) {
    result.problems.push(
      `client got ${result.phantom.length} event(s) of ${label} that the log does not hold: ${sample(result.phantom, 5, (e) => `${e.cursor} ${e.type}`)}`,
    );
  }
  if (result.outOfOrder) result.problems.push(`client delivered ${result.outOfOrder} event(s) of ${label} out of sequence order`);
  console.log(`      ${result.summary}`);
  return result;
}
