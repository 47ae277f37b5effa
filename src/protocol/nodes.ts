import type { NamespaceName } from "./namespaces.js";

/**
 * One live node as `GET /api/v1/nodes` shows it to a tenant: node-wide facts, and that tenant's own figures on
 * the node (never another tenant's).
 */
export interface NodeView {
  nodeId: string;
  /** The node this answer came from. */
  self: boolean;
  startedAt: string;
  version: string;
  /** When the node published this reading (every ~2 s). */
  at: string;
  /** The requesting tenant's sockets on the node, per namespace. */
  sockets: Record<NamespaceName, number>;
  /** Event copies per second the node delivered to the tenant's sockets over its last interval; null where not measured (Redis Cluster). */
  eventsPerSecond: number | null;
  /** Every tenant's sockets on the node, one number. */
  totalSockets: number;
  totalEventsPerSecond: number | null;
}

export interface NodesResponse {
  items: NodeView[];
}
