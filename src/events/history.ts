import { BadRequestError, CursorExpiredError } from "../errors.js";
import { decodeCursor, encodeCursor, type CursorPosition } from "../protocol/cursor.js";
import type { Envelope } from "../protocol/events.js";
import type { NamespaceName } from "../protocol/namespaces.js";
import { toEnvelope } from "./event-log.js";
import type { EventLogReader } from "./event-log-reader.js";

/** `after: "0"`: from the room's first stored event. */
export const FROM_START = "0";

/** A cursor, or "start" for `after: "0"`; BAD_REQUEST for anything else. */
export function parseAfter(after: string | undefined): CursorPosition | "start" | undefined {
  if (after === undefined) return undefined;
  if (after === FROM_START) return "start";
  const position = decodeCursor(after);
  if (!position)
    throw new BadRequestError('after is not a cursor (or "0" for the room\'s first event)', [{ field: "after", message: "not a cursor" }]);
  return position;
}

/** The position just before the oldest event retention kept in the room (the head itself when none is kept). */
export async function startOf(
  log: EventLogReader,
  where: { tenantId: string; namespace: NamespaceName; room: string },
  head: CursorPosition,
): Promise<CursorPosition> {
  const oldest = await log.oldestSeq(where.tenantId, where.namespace, where.room);
  return { epoch: head.epoch, seq: oldest === null ? head.seq : oldest - 1 };
}

/**
 * Reads a room's stored events after a cursor, oldest first, up to `limit` and never beyond `head`; with
 * `maxBytes`, also no more event data than that (the first event always comes, see EventLogReader.readAfter).
 * A cursor from another epoch of the room, or older than what retention kept, is CURSOR_EXPIRED: the client
 * must reload its state instead of trusting a stream with a hole in it.
 */
export async function readHistory(
  log: EventLogReader,
  where: { tenantId: string; namespace: NamespaceName; room: string },
  head: CursorPosition,
  from: CursorPosition,
  limit: number,
  maxBytes?: number,
): Promise<{ events: Envelope[]; cursor: string }> {
  if (from.epoch !== head.epoch) throw new CursorExpiredError("cursor is from an earlier life of this room's log; reload state");
  if (from.seq > head.seq) throw new BadRequestError("cursor is ahead of the room", [{ field: "after", message: "ahead of the room" }]);
  if (from.seq === head.seq) return { events: [], cursor: encodeCursor(from) };
  const rows = await log.readAfter(where.tenantId, where.namespace, where.room, from.seq, Math.min(limit, head.seq - from.seq), maxBytes);
  // Sequences are gapless, so the first stored event must be the one right after the cursor.
  if (rows[0]?.seq !== from.seq + 1) throw new CursorExpiredError("events after this cursor are past retention; reload state");
  const events = rows.map((row) => toEnvelope(where.room, head.epoch, row));
  const last = rows[rows.length - 1]!;
  return { events, cursor: encodeCursor({ epoch: head.epoch, seq: last.seq }) };
}
