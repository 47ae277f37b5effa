import type { NamespaceName } from "./namespaces.js";

/** Ids inside room names: the same safe grammar as tenant ids (uuids and `default` fit it). */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/** A room as a client names it, parsed: either a whole collection (`tasks`, `schedules`) or one resource (`task:<id>`). */
export type Room = { name: string; kind: "collection" } | { name: string; kind: "pool" | "task" | "workflow"; id: string };

const GRAMMAR: Record<NamespaceName, { collections: readonly string[]; resources: ReadonlyArray<"pool" | "task" | "workflow"> }> = {
  pools: { collections: ["pools"], resources: ["pool"] },
  // `schedules`: every schedule of the tenant (schedule.created, .updated, .deleted).
  tasks: { collections: ["tasks", "schedules"], resources: ["task", "pool"] },
  workflows: { collections: ["workflows"], resources: ["workflow"] },
};

export const MAX_ROOM_LENGTH = 160;

/**
 * Parses a client-supplied room name for a namespace; `null` when the name is not a room of that namespace.
 * @example parseRoom("tasks", "task:3f2a…") // { kind: "task", id: "3f2a…", name: "task:3f2a…" }
 */
export function parseRoom(namespace: NamespaceName, name: unknown): Room | null {
  if (typeof name !== "string" || name.length === 0 || name.length > MAX_ROOM_LENGTH) return null;
  const grammar = GRAMMAR[namespace];
  if (grammar.collections.includes(name)) return { name, kind: "collection" };
  const colon = name.indexOf(":");
  if (colon <= 0) return null;
  const kind = name.slice(0, colon);
  const id = name.slice(colon + 1);
  const resource = grammar.resources.find((r) => r === kind);
  if (!resource || !ID_PATTERN.test(id)) return null;
  return { name, kind: resource, id };
}

/** The namespace-local room names an event for one resource belongs to. */
export const roomNames = {
  pools: (): string => "pools",
  pool: (poolId: string): string => `pool:${poolId}`,
  tasks: (): string => "tasks",
  task: (taskId: string): string => `task:${taskId}`,
  schedules: (): string => "schedules",
  workflows: (): string => "workflows",
  workflow: (workflowId: string): string => `workflow:${workflowId}`,
};
