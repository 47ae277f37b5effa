import { randomFillSync } from "node:crypto";
import type { NamespaceName } from "../protocol/namespaces.js";
import { encodeCursor } from "../protocol/cursor.js";
import type { Envelope } from "../protocol/events.js";
import { untimedQuery, type QueryTimer } from "../observability/metrics.js";

/*
 * What the two sides of the event log share. The log is PostgreSQL's: each room has its own gapless sequence
 * ("RoomSequence"), an event is stored once ("Event", its data and its position in each room) and each of its
 * rooms refers to it ("RoomEvent", narrow rows keyed by room and sequence number). EventLogWriter
 * (event-log-writer.ts) numbers and stores events; EventLogReader (event-log-reader.ts) reads rooms' positions and
 * pages of their events.
 */

/** How the event log reports on its statements (the node's metrics; nothing for tests and scripts). */
export interface EventLogObserver {
  timeQuery: QueryTimer;
  /** Event rows (event x room) one numbering statement stored. */
  batchRows(rows: number): void;
}

export const UNOBSERVED: EventLogObserver = { timeQuery: untimedQuery, batchRows: () => undefined };

/** One stored copy of an event: everything needed to build its envelope for one room. */
export interface SequencedEvent {
  tenantId: string;
  namespace: NamespaceName;
  room: string;
  seq: number;
  epoch: string;
  eventId: string;
  type: string;
  data: unknown;
  ts: Date;
}

/**
 * A fresh epoch for rooms a statement creates. Every statement needs one (which rooms are new is only known
 * inside it), so they come from a pool of random bytes refilled 4 KiB at a time: one `getrandom` per 800
 * statements instead of one each.
 */
const EPOCH_BYTES = 5;
const epochPool = Buffer.alloc(EPOCH_BYTES * 800);
let epochOffset = epochPool.length;
export function newEpoch(): string {
  if (epochOffset >= epochPool.length) {
    randomFillSync(epochPool);
    epochOffset = 0;
  }
  epochOffset += EPOCH_BYTES;
  return epochPool.toString("hex", epochOffset - EPOCH_BYTES, epochOffset);
}

export function toEnvelope(
  room: string,
  epoch: string,
  event: { seq: number; eventId: string; type: string; data: unknown; ts: Date },
): Envelope {
  return {
    id: event.eventId,
    type: event.type,
    room,
    cursor: encodeCursor({ epoch, seq: event.seq }),
    ts: event.ts.toISOString(),
    data: event.data,
  };
}
