import type { NamespaceName } from "./namespaces.js";

/**
 * Events a backend publishes into a tenant's rooms (`POST /api/v1/events`, permission `events:publish`).
 * They are stored, numbered, delivered and replayed like Switchyard's own events.
 */

/** Dotted lowercase names with at least two parts, e.g. `billing.invoice_paid`. */
export const PUBLISHED_TYPE_PATTERN = /^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+$/;
export const MAX_PUBLISHED_TYPE_LENGTH = 64;
/** Switchyard's own event types and system events: a backend cannot publish under these prefixes. */
export const BUILTIN_EVENT_PREFIXES = ["pool.", "worker.", "task.", "schedule.", "workflow.", "session.", "server."] as const;
/** Events per request (the batch form). */
export const MAX_PUBLISH_BATCH = 500;
/** `data` of one event, serialized as JSON, in bytes. Its depth and text follow the JSON input rules (json-safety.ts). */
export const MAX_PUBLISHED_DATA_BYTES = 64 * 1024;

export function isBuiltinEventType(type: string): boolean {
  return BUILTIN_EVENT_PREFIXES.some((prefix) => type.startsWith(prefix));
}

/** One event to publish. The room is named as clients name it; the tenant is always the token's. */
export interface PublishEvent<T = unknown> {
  namespace: NamespaceName;
  room: string;
  type: string;
  /** Any JSON value; `null` when left out. */
  data?: T;
}

/** The body: one event, or a batch of 1 to MAX_PUBLISH_BATCH events stored together or not at all. */
export type PublishRequest = PublishEvent | { events: PublishEvent[] };

/** Where one published event was stored: `cursor` is its position in `room`. */
export interface PublishedEvent {
  id: string;
  namespace: NamespaceName;
  room: string;
  cursor: string;
}

/** 202 answer: one item per event, in request order. */
export interface PublishResponse {
  items: PublishedEvent[];
}
