import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";

/** Who and which request a piece of work belongs to: every log line written while it runs carries these. */
export interface RequestContext {
  reqId: string;
  tenant?: string;
  sub?: string;
}

/*
 * Why AsyncLocalStorage: a request's log lines come from the route, the domain services and the event log, which
 * share one logger; threading a child logger through every call would touch every signature. The logger's mixin
 * reads the context of whatever async work is running instead.
 */
const storage = new AsyncLocalStorage<RequestContext>();

export function currentRequest(): RequestContext | undefined {
  return storage.getStore();
}

export function runInRequest<T>(context: RequestContext, fn: () => T): T {
  return storage.run(context, fn);
}

/** A caller's id is kept when it is a sane token (so ids from a gateway or a client line up); otherwise a new one. */
const VALID_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestIdFrom(header: string | string[] | undefined): string {
  return typeof header === "string" && VALID_REQUEST_ID.test(header) ? header : randomUUID();
}

/** Runs shared work (a batch serving many requests) outside any one request, so its lines are not charged to it. */
export function outsideRequest<T>(fn: () => T): T {
  return storage.exit(fn);
}
