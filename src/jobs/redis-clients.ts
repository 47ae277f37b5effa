import type { RedisOptions } from "ioredis";
import type { RedisTarget } from "../settings.js";
import { withDeadline } from "../dependencies/deadline.js";
import type { DependencyStatus } from "../dependencies/status.js";
import { connectRedis, type RedisClient } from "./redis-connection.js";

/** What a Redis connection is for; it decides how the connection behaves while Redis is away. */
export type RedisRole = "commands" | "limits" | "adapter-pub" | "adapter-sub" | "bullmq" | "cancellations" | "revocations";

function optionsFor(role: RedisRole, deadlineMs: number): RedisOptions {
  switch (role) {
    // Request paths (and the BullMQ producer): a command fails at once while disconnected, and after the deadline
    // when Redis accepts it but does not answer, so the caller gets 503 quickly instead of waiting in a queue.
    // The per-tenant limits likewise: a hung Redis must not hold a handshake or a request (they fall back to memory).
    case "commands":
    case "limits":
      return { enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: deadlineMs };
    // Broadcasts ride out a short reconnect in the offline queue, and are dropped after one failed reconnect or
    // the deadline: the event is stored already, and clients catch up from their cursor.
    // Auto-pipelining: the broadcasts of one numbering statement (an event per room, all issued in the same tick)
    // leave in one socket write instead of one write each, which was the largest share of a node's CPU under a task
    // load (docs/performance.md).
    case "adapter-pub":
      return { maxRetriesPerRequest: 1, commandTimeout: deadlineMs, enableAutoPipelining: true };
    // Subscriptions wait for Redis however long it is away: a SUBSCRIBE given up after some retries would leave
    // the node deaf for good (ioredis re-subscribes after a reconnect only to channels it had subscribed).
    case "adapter-sub":
    case "cancellations":
    case "revocations":
      return { maxRetriesPerRequest: null };
    // BullMQ workers require maxRetriesPerRequest: null, and their blocking commands outlast any command timeout.
    // Nothing a caller waits for runs on this connection.
    case "bullmq":
      return { maxRetriesPerRequest: null };
  }
}

/**
 * Commands the Socket.IO Redis adapter sends without looking at the result: a publish that fails while Redis is
 * away (one per broadcast), or a (un)subscribe dropped when the connection closes, would be an unhandled rejection.
 */
const FIRE_AND_FORGET: Partial<Record<RedisRole, readonly string[]>> = {
  // s…: the sharded adapter's commands on a Redis Cluster.
  "adapter-pub": ["publish", "spublish"],
  "adapter-sub": ["subscribe", "psubscribe", "unsubscribe", "punsubscribe", "ssubscribe", "sunsubscribe"],
};

/** Reports the failures of those commands instead: an outage once, with the connection's state; anything else as a warning. */
function recordFailures(client: RedisClient, commands: readonly string[], status: DependencyStatus, role: RedisRole): void {
  const methods = client as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  for (const command of commands) {
    const send = methods[command]!.bind(client);
    methods[command] = (...args: unknown[]): Promise<unknown> => {
      const reply = send(...args);
      reply.catch((error: unknown) => status.report(error, `redis ${command} failed`, {}, role));
      return reply;
    };
  }
}

/**
 * A Redis connection for `role`, named `<owner>:<role>` in CLIENT LIST, followed by `status` (which is also its
 * `error` listener, so ioredis never prints "Unhandled error event").
 */
export function createRedisClient(
  target: RedisTarget,
  role: RedisRole,
  options: { owner: string; deadlineMs: number; status: DependencyStatus },
): RedisClient {
  const client = connectRedis(target, {
    ...optionsFor(role, options.deadlineMs),
    connectionName: `${options.owner}:${role}`,
    shardedSubscriber: role === "adapter-sub" && target.clusterNodes !== undefined,
  });
  options.status.watchRedis(client, role);
  recordFailures(client, FIRE_AND_FORGET[role] ?? [], options.status, role);
  return client;
}

/** Closes a connection politely when Redis answers, at once when it does not: shutdown never waits on a dead server. */
export async function closeRedis(client: RedisClient, deadlineMs: number): Promise<void> {
  if (client.status === "end") return;
  if (client.status !== "ready") {
    client.disconnect();
    return;
  }
  try {
    await withDeadline(client.quit(), deadlineMs, "redis");
  } catch {
    client.disconnect();
  }
}
