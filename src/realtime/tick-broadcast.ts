import { randomBytes } from "node:crypto";
import type { RedisClient } from "../jobs/redis-connection.js";
import type { Logger } from "../observability/logger.js";
import type { NamespaceName } from "../protocol/namespaces.js";
import type { Envelope } from "../protocol/events.js";
import type { TenantDeliveries } from "../observability/tenant-deliveries.js";
import { emitStored, type SwitchyardServer } from "./types.js";

/** One delivery: an envelope for the sockets of one room key of one namespace. */
type Delivery = [namespace: NamespaceName, key: string, envelope: Envelope];

/**
 * A Redis message carries at most about this many bytes of deliveries; a bigger tick is split. Redis closes a
 * subscriber whose output buffer passes 32 MB (`client-output-buffer-limit pubsub`), so one message must stay far
 * below that, whatever a batch of large events adds up to.
 */
const MAX_MESSAGE_BYTES = 1 << 20;

/**
 * Broadcasts over a single Redis, one message per tick instead of one per event and room.
 *
 * Through the Socket.IO Redis adapter every (event, room) was its own PUBLISH, msgpack-encoded by the sender and
 * decoded by every node, and every node encoded the packet for its local sockets even when it had none in the
 * room: a task's five events in three or four rooms each cost 16 messages, about a sixth of a node's CPU under a
 * task load (docs/performance.md). Here every delivery the node makes in one tick (the events of one group-committed
 * statement) goes out as one JSON message on one channel; each node delivers locally, and only to rooms it has
 * sockets in. Every node still receives every message, as with classic pub/sub; a node ignores its own by the id
 * that prefixes the message, without parsing it.
 *
 * Order: a node's messages leave in the order of its ticks, on one connection, and each message lists its
 * deliveries in order, so a node's events still reach every node in the order they were numbered.
 *
 * Only for a single Redis: on a Redis Cluster the sharded adapter keeps one channel per room, so that a node hears
 * only the rooms it has sockets in (see Realtime).
 */
export class TickBroadcast {
  private pending: Delivery[] = [];
  private readonly uid = randomBytes(8).toString("hex");

  constructor(
    private readonly io: SwitchyardServer,
    private readonly pub: RedisClient,
    sub: RedisClient,
    private readonly channel: string,
    private readonly logger: Logger,
    private readonly deliveries?: TenantDeliveries,
  ) {
    sub.on("messageBuffer", (from: Buffer, message: Buffer) => {
      if (from.toString() === this.channel) this.receive(message);
    });
    void sub
      .subscribe(this.channel)
      .catch((error: unknown) => logger.error({ err: error }, "could not subscribe to the broadcast channel"));
  }

  send(namespace: NamespaceName, key: string, envelope: Envelope): void {
    this.deliverLocally(namespace, key, envelope);
    if (this.pending.length === 0) process.nextTick(() => this.flush());
    this.pending.push([namespace, key, envelope]);
  }

  private flush(): void {
    const deliveries = this.pending;
    this.pending = [];
    let parts: string[] = [];
    let bytes = 0;
    for (const delivery of deliveries) {
      const part = JSON.stringify(delivery);
      if (parts.length > 0 && bytes + part.length > MAX_MESSAGE_BYTES) {
        this.publish(parts);
        parts = [];
        bytes = 0;
      }
      parts.push(part);
      bytes += part.length;
    }
    if (parts.length > 0) this.publish(parts);
  }

  private publish(parts: string[]): void {
    // Failures are reported by the connection's own wrapper (redis-clients.ts); the events are stored anyway.
    void this.pub.publish(this.channel, `${this.uid}\n[${parts.join(",")}]`).catch(() => undefined);
  }

  private receive(message: Buffer): void {
    // Our own messages come back too: recognised by the prefix, without parsing them.
    if (message.length > this.uid.length && message.toString("latin1", 0, this.uid.length) === this.uid) return;
    const start = message.indexOf(10);
    let deliveries: Delivery[];
    try {
      deliveries = JSON.parse(message.toString("utf8", start + 1)) as Delivery[];
    } catch (error) {
      this.logger.warn({ err: error }, "ignored an unreadable broadcast message");
      return;
    }
    for (const [namespace, key, envelope] of deliveries) this.deliverLocally(namespace, key, envelope);
  }

  /** Sends the envelope to this node's sockets in the room, if it has any (no encoding for an empty room). */
  private deliverLocally(namespace: NamespaceName, key: string, envelope: Envelope): void {
    const nsp = this.io.of(`/${namespace}`);
    const sockets = nsp.adapter.rooms.get(key);
    if (!sockets) return;
    this.deliveries?.count(key, sockets.size);
    emitStored(nsp.local.to(key), envelope);
  }
}
