import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** One registry per server instance, so tests and several apps in one process never share counters. */
export function createMetrics(nodeId: string) {
  const registry = new Registry();
  registry.setDefaultLabels({ node: nodeId });
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    connectedSockets: new Gauge({
      name: "switchyard_connected_sockets",
      help: "Sockets connected to this node, by namespace",
      labelNames: ["namespace"] as const,
      registers: [registry],
    }),
    subscriptions: new Gauge({
      name: "switchyard_subscriptions",
      help: "Room subscriptions held by sockets on this node, by namespace",
      labelNames: ["namespace"] as const,
      registers: [registry],
    }),
    slowConsumerDisconnects: new Counter({
      name: "switchyard_slow_consumer_disconnects_total",
      help: "Connections this node closed because their unsent outbound data passed MAX_SOCKET_BUFFER_BYTES (buffer_limit) or a replay waited too long for it to drain (replay_drain_timeout)",
      labelNames: ["reason"] as const,
      registers: [registry],
    }),
    handshakeFailures: new Counter({
      name: "switchyard_handshake_failures_total",
      help: "Socket.IO handshakes refused, by error code",
      labelNames: ["code"] as const,
      registers: [registry],
    }),
    eventsPublished: new Counter({
      name: "switchyard_events_published_total",
      help: "Events published by this node (one per room delivery), by namespace",
      labelNames: ["namespace"] as const,
      registers: [registry],
    }),
    publishDuration: new Histogram({
      name: "switchyard_publish_duration_seconds",
      help: "Time to store and broadcast one event",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    outboxRelayed: new Counter({
      name: "switchyard_outbox_relayed_total",
      help: "Events a node committed but did not number (it died or lost the database), numbered by this node's relay",
      registers: [registry],
    }),
    reconciled: new Counter({
      name: "switchyard_reconciled_total",
      help: "Tasks and workflows the reconciler repaired, by action",
      labelNames: ["action"] as const,
      registers: [registry],
    }),
    httpRequests: new Counter({
      name: "switchyard_http_requests_total",
      help: "HTTP requests, by method, route and status",
      labelNames: ["method", "route", "status"] as const,
      registers: [registry],
    }),
    clientErrors: new Counter({
      name: "switchyard_client_errors_total",
      help: "Client requests refused, by error code",
      labelNames: ["code"] as const,
      registers: [registry],
    }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
