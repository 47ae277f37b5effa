/**
 * Cursors name a position in one room's event sequence: `<epoch>-<seq>`. The sequence number is padded so
 * that cursors of one room also compare correctly as plain strings; the epoch changes when a room's log is
 * reset, so a cursor from an earlier life of the room is detected instead of misread.
 */
export interface CursorPosition {
  epoch: string;
  seq: number;
}

const SEQ_DIGITS = 12;
const CURSOR_PATTERN = /^([a-z0-9]{1,16})-(\d{1,15})$/;

export function encodeCursor(position: CursorPosition): string {
  return `${position.epoch}-${String(position.seq).padStart(SEQ_DIGITS, "0")}`;
}

export function decodeCursor(cursor: unknown): CursorPosition | null {
  if (typeof cursor !== "string") return null;
  const match = CURSOR_PATTERN.exec(cursor);
  if (!match) return null;
  const seq = Number(match[2]);
  if (!Number.isSafeInteger(seq)) return null;
  return { epoch: match[1]!, seq };
}
