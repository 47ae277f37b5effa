/**
 * Event copies this node handed to its sockets, per tenant: what `GET /api/v1/nodes` turns into a tenant's
 * events/s on each node. A delivery goes to a room key (`<tenant>|<room>`, events/room-key.ts) and reaches every
 * local socket in it, so one delivery counts the room's local size.
 */
export class TenantDeliveries {
  private counts = new Map<string, number>();

  count(roomKey: string, sockets: number): void {
    const bar = roomKey.indexOf("|");
    if (bar <= 0 || sockets <= 0) return;
    const tenantId = roomKey.slice(0, bar);
    this.counts.set(tenantId, (this.counts.get(tenantId) ?? 0) + sockets);
  }

  /** The counts since the last call, and starts over. */
  take(): Map<string, number> {
    const counts = this.counts;
    this.counts = new Map();
    return counts;
  }
}
