import type { Config } from "../config.js";
import type { EventLogReader } from "../events/event-log-reader.js";
import type { EventLogWriter } from "../events/event-log-writer.js";
import { EventPublisher } from "../events/publisher.js";
import { EventRetention } from "../events/retention.js";
import type { Realtime } from "../realtime/server.js";
import type { Logger } from "../observability/logger.js";
import type { Infrastructure } from "./infrastructure.js";

/** Events: stored with the change that makes them, broadcast once committed, deleted once past retention. */
export interface Events {
  publisher: EventPublisher;
  retention: EventRetention;
}

export function wireEvents(
  config: Config,
  infra: Infrastructure,
  eventLog: { reader: EventLogReader; writer: EventLogWriter },
  realtime: Realtime,
  logger: Logger,
): Events {
  const { metrics, keys, deadlineMs, status, redis } = infra;
  const publisher = new EventPublisher(infra.database.prisma, eventLog.writer, eventLog.reader, realtime.broadcast, metrics, logger, {
    relayAfterMs: config.events.outboxRelayAfterMs,
    failures: status,
  });
  const retention = new EventRetention(infra.database.sql, redis, logger, {
    keys,
    failures: status,
    maxAgeMs: config.events.retentionMs,
    maxPerRoom: config.events.retentionPerRoom,
    intervalMs: config.events.retentionIntervalMs,
    // Up to one interval (the cluster lock's lifetime), and never less than a request gets.
    statementTimeoutMs: Math.max(config.events.retentionIntervalMs, deadlineMs),
  });
  return { publisher, retention };
}
