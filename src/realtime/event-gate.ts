import type { Event } from "socket.io";
import type { Logger } from "../observability/logger.js";
import type { Metrics, RateLimitKind } from "../observability/metrics.js";
import { EventBudget, FLOOD_SECONDS, type EventVerdict } from "./event-budget.js";
import { isPoolWorker } from "./pool-workers.js";
import type { ClientToServerEvents, SwitchyardSocket } from "./types.js";

export interface EventGateOptions {
  /** Client → server events per second of a dashboard socket (SOCKET_EVENTS_PER_SECOND). */
  socketEventsPerSecond: number;
  /** The same for a pool worker's `/pools` socket (WORKER_EVENTS_PER_SECOND). */
  workerEventsPerSecond: number;
  metrics: Metrics;
  logger: Logger;
}

/** Events only pool worker processes may send; other sockets are told so rather than "unknown event". */
const WORKER_EVENTS = new Set(["worker.status", "worker.heartbeat", "task.report", "worker.credit", "task.progress", "task.done"]);

/**
 * Every client → server event of a socket passes here before any handler runs (Socket.IO's per-socket middleware):
 * 1. the socket's event budget: beyond it the event is dropped, its ack answered RATE_LIMITED, and a socket that
 *    keeps flooding is disconnected;
 * 2. an acknowledged event that no handler on this socket takes is answered here, so a client never waits on a
 *    silent server: FORBIDDEN for worker events from a socket that is not a worker, BAD_REQUEST otherwise.
 * Events sent without an ack are dropped silently in both cases.
 */
export function gateInboundEvents(socket: SwitchyardSocket, options: EventGateOptions): void {
  const worker = socket.nsp.name === "/pools" && isPoolWorker(socket.data.principal);
  const limit: RateLimitKind = worker ? "worker" : "socket";
  const perSecond = worker ? options.workerEventsPerSecond : options.socketEventsPerSecond;
  // Created with the first event: a socket that only listens carries none.
  let budget: EventBudget | undefined;
  socket.use((event, next) => {
    // Packets that arrived with the flood are still handed over after the disconnect: nothing to answer them on.
    if (socket.disconnected) return;
    budget ??= new EventBudget(perSecond);
    const verdict = budget.take();
    if (verdict !== "accepted") return refuse(socket, event, verdict, limit, options);
    if (!handled(socket, event)) return answerUnhandled(socket, event);
    next();
  });
}

function ackOf(event: Event): ((result: unknown) => void) | undefined {
  const last: unknown = event[event.length - 1];
  return typeof last === "function" ? (last as (result: unknown) => void) : undefined;
}

function refuse(
  socket: SwitchyardSocket,
  event: Event,
  verdict: Exclude<EventVerdict, "accepted">,
  limit: RateLimitKind,
  options: EventGateOptions,
): void {
  options.metrics.rateLimited.inc({ kind: limit });
  const flooding = verdict === "flooding";
  ackOf(event)?.({
    ok: false,
    error: { code: "RATE_LIMITED", message: flooding ? "too many events; disconnecting" : "too many events, slow down" },
  });
  if (!flooding) return;
  const { principal } = socket.data;
  options.logger.warn(
    { tenantId: principal.tenantId, sub: principal.subject.slice(0, 128), nsp: socket.nsp.name, limit },
    `socket kept flooding (over ${FLOOD_SECONDS} s worth of refused events); disconnected`,
  );
  // The whole connection: the acks above are flushed first, then the client sees "io server disconnect".
  socket.disconnect(true);
}

/**
 * An EVENT packet without data (`42/tasks,` or `42/tasks,7`) has no name at all: its first element is the ack, or
 * nothing. Only a name can have a handler: EventEmitter#listeners(undefined) throws, which took the whole node
 * down (found by test/fuzz.test.ts). Socket.IO puts a no-op "error" listener on every socket for its own errors, so
 * a client's "error" event would look handled and its ack never come: nothing here handles it.
 */
function nameOf(event: Event): string | undefined {
  const first: unknown = event[0];
  return typeof first === "string" || typeof first === "number" ? String(first) : undefined;
}

function handled(socket: SwitchyardSocket, event: Event): boolean {
  const name = nameOf(event);
  return name !== undefined && name !== "error" && socket.listeners(name as keyof ClientToServerEvents).length > 0;
}

function answerUnhandled(socket: SwitchyardSocket, event: Event): void {
  const name = nameOf(event)?.slice(0, 64);
  ackOf(event)?.(
    name === undefined
      ? { ok: false, error: { code: "BAD_REQUEST", message: "an event needs a name" } }
      : WORKER_EVENTS.has(name) && socket.nsp.name === "/pools"
        ? { ok: false, error: { code: "FORBIDDEN", message: `${name} needs a pools:work token` } }
        : { ok: false, error: { code: "BAD_REQUEST", message: `unknown event "${name}"` } },
  );
}
