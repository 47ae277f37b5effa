import { randomBytes } from "node:crypto";
import type { PrismaClient } from "../db/client.js";
import type { NamespaceName } from "../protocol/namespaces.js";
import { encodeCursor, type CursorPosition } from "../protocol/cursor.js";
import type { Envelope } from "../protocol/events.js";

export interface StoredEventInput {
  tenantId: string;
  namespace: NamespaceName;
  rooms: readonly string[];
  eventId: string;
  type: string;
  data: unknown;
  ts: Date;
}

interface SequencedRow {
  room: string;
  seq: number;
  epoch: string;
}

function newEpoch(): string {
  return randomBytes(5).toString("hex");
}

/**
 * The event log: each room has its own gapless sequence, kept in PostgreSQL.
 *
 * Why gapless: the next number is taken (`seq + 1` under the row lock of the room's RoomSequence row) in
 * the same statement that stores the event, so a number is consumed if and only if its event is stored,
 * whichever node publishes. Rooms are locked in sorted order so that concurrent multi-room publishers
 * cannot deadlock.
 */
export class EventLog {
  constructor(private readonly prisma: PrismaClient) {}

  /** Stores one event in every room it belongs to and returns each room's position. */
  async append(input: StoredEventInput): Promise<SequencedRow[]> {
    const rooms = [...new Set(input.rooms)].sort();
    return this.prisma.$queryRawUnsafe<SequencedRow[]>(
      `WITH seqs AS (
         INSERT INTO "RoomSequence" ("tenantId", "namespace", "room", "seq", "epoch")
         SELECT $1, $2, r, 1, $4 FROM unnest($3::text[]) WITH ORDINALITY AS t(r, n) ORDER BY n
         ON CONFLICT ("tenantId", "namespace", "room") DO UPDATE SET "seq" = "RoomSequence"."seq" + 1
         RETURNING "room", "seq", "epoch"
       ), stored AS (
         INSERT INTO "Event" ("tenantId", "namespace", "room", "seq", "eventId", "type", "data", "ts")
         SELECT $1, $2, "room", "seq", $5, $6, $7::jsonb, ($8::timestamptz AT TIME ZONE 'UTC') FROM seqs
         RETURNING 1
       )
       SELECT "room", "seq", "epoch" FROM seqs`,
      input.tenantId,
      input.namespace,
      rooms,
      newEpoch(),
      input.eventId,
      input.type,
      JSON.stringify(input.data ?? null),
      input.ts.toISOString(),
    );
  }

  /** The room's current position; creates the room's sequence (position 0) when it has none yet. */
  async head(tenantId: string, namespace: NamespaceName, room: string): Promise<CursorPosition> {
    // DO UPDATE (a no-op) rather than DO NOTHING: it waits for a concurrent creator and then returns the row,
    // where DO NOTHING would return nothing and the statement's snapshot could not see the new row either.
    const rows = await this.prisma.$queryRawUnsafe<Array<{ seq: number; epoch: string }>>(
      `INSERT INTO "RoomSequence" ("tenantId", "namespace", "room", "seq", "epoch")
       VALUES ($1, $2, $3, 0, $4)
       ON CONFLICT ("tenantId", "namespace", "room") DO UPDATE SET "seq" = "RoomSequence"."seq"
       RETURNING "seq", "epoch"`,
      tenantId,
      namespace,
      room,
      newEpoch(),
    );
    const row = rows[0];
    if (!row) throw new Error(`room sequence missing for ${namespace}/${room}`);
    return { epoch: row.epoch, seq: Number(row.seq) };
  }

  /** Stored events of one room strictly after `afterSeq`, oldest first. */
  async readAfter(
    tenantId: string,
    namespace: NamespaceName,
    room: string,
    afterSeq: number,
    limit: number,
  ): Promise<Array<{ seq: number; eventId: string; type: string; data: unknown; ts: Date }>> {
    return this.prisma.event.findMany({
      where: { tenantId, namespace, room, seq: { gt: afterSeq } },
      orderBy: { seq: "asc" },
      take: limit,
      select: { seq: true, eventId: true, type: true, data: true, ts: true },
    });
  }

  /** The oldest stored sequence number of a room (null when none is stored). */
  async oldestSeq(tenantId: string, namespace: NamespaceName, room: string): Promise<number | null> {
    const first = await this.prisma.event.findFirst({
      where: { tenantId, namespace, room },
      orderBy: { seq: "asc" },
      select: { seq: true },
    });
    return first?.seq ?? null;
  }
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
