/**
 * The one place that turns a tenant and a client-named room into the key Socket.IO rooms use.
 * The tenant always comes from a verified principal; the tenant grammar has no '|', so keys of two
 * tenants can never coincide.
 */
export function roomKey(tenantId: string, room: string): string {
  return `${tenantId}|${room}`;
}
