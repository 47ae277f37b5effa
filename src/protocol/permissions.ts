export const PERMISSIONS = [
  "pools:read",
  "pools:write",
  "pools:work",
  "tasks:read",
  "tasks:write",
  "workflows:read",
  "workflows:write",
  /** Publish a backend's own events into the tenant's rooms (POST /api/v1/events). */
  "events:publish",
  "admin",
] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** Tenant ids are used inside room keys and Redis keys: the grammar keeps them unambiguous there. */
export const TENANT_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

export function isPermission(value: string): value is Permission {
  return (PERMISSIONS as readonly string[]).includes(value);
}
