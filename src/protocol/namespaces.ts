/** The Socket.IO namespaces Switchyard serves, one per domain. */
export const NAMESPACES = ["pools", "tasks", "workflows"] as const;
export type NamespaceName = (typeof NAMESPACES)[number];

export function isNamespaceName(value: unknown): value is NamespaceName {
  return typeof value === "string" && (NAMESPACES as readonly string[]).includes(value);
}
