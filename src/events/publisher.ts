import { randomUUID } from "node:crypto";
import type { NamespaceName } from "../protocol/namespaces.js";
import type { Envelope } from "../protocol/events.js";
import type { Metrics } from "../observability/metrics.js";
import { toEnvelope, type EventLog } from "./event-log.js";
import { roomKey } from "./room-key.js";

/** Delivers one envelope to every socket of a room key, on every node (Socket.IO + Redis adapter). */
export type Broadcast = (namespace: NamespaceName, roomKey: string, type: string, envelope: Envelope) => void;

export interface PublishInput<T = unknown> {
  tenantId: string;
  namespace: NamespaceName;
  /** Rooms as clients name them; the event is stored and delivered once per room. */
  rooms: readonly string[];
  /** The same event (same id) in rooms of other namespaces, e.g. task.assigned in /pools too. */
  alsoIn?: ReadonlyArray<{ namespace: NamespaceName; rooms: readonly string[] }>;
  type: string;
  data: T;
}

/**
 * The only way an event reaches clients: store it in the event log (which assigns each room's cursor),
 * then broadcast the envelope to each room. Storing first means a client that sees an event can always
 * find it again in the history.
 */
export class EventPublisher {
  constructor(
    private readonly log: EventLog,
    private readonly broadcast: Broadcast,
    private readonly metrics: Metrics,
  ) {}

  async publish<T>(input: PublishInput<T>): Promise<Envelope<T>[]> {
    const stopTimer = this.metrics.publishDuration.startTimer();
    const eventId = randomUUID();
    const ts = new Date();
    const targets = [input, ...(input.alsoIn ?? [])].flatMap(({ namespace, rooms }) => rooms.map((room) => ({ namespace, room })));
    const positions = await this.log.append({ tenantId: input.tenantId, targets, eventId, type: input.type, data: input.data, ts });
    const envelopes: Envelope<T>[] = [];
    for (const p of positions) {
      const envelope = toEnvelope(p.room, p.epoch, { seq: p.seq, eventId, type: input.type, data: input.data, ts }) as Envelope<T>;
      this.broadcast(p.namespace, roomKey(input.tenantId, p.room), input.type, envelope);
      this.metrics.eventsPublished.inc({ namespace: p.namespace });
      envelopes.push(envelope);
    }
    stopTimer();
    return envelopes;
  }
}
