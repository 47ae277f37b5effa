import { z } from "zod";
import { BadRequestError } from "../errors.js";
import { ID_PATTERN } from "../protocol/rooms.js";

/** Lists are ordered newest first by (createdAt, id); the cursor is the last item's pair, opaque to clients. */
export interface PageKey {
  createdAt: Date;
  id: string;
}

export const PageQuerySchema = z.object({
  cursor: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

export function encodePageCursor(key: PageKey): string {
  return Buffer.from(`${key.createdAt.toISOString()}|${key.id}`).toString("base64url");
}

export function decodePageCursor(cursor: string): PageKey {
  const [iso, id] = Buffer.from(cursor, "base64url").toString("utf8").split("|");
  const createdAt = iso ? new Date(iso) : undefined;
  // The id goes into the query: one outside the id grammar (a NUL, which PostgreSQL cannot take) was a 500.
  if (!createdAt || Number.isNaN(createdAt.getTime()) || !id || !ID_PATTERN.test(id)) {
    throw new BadRequestError("invalid cursor", [{ field: "cursor", message: "not a cursor from this list" }]);
  }
  return { createdAt, id };
}

/** The Prisma `where` fragment selecting rows after a page key in (createdAt desc, id desc) order. */
export function afterPageKey(key: PageKey | undefined) {
  if (!key) return {};
  return {
    OR: [{ createdAt: { lt: key.createdAt } }, { createdAt: key.createdAt, id: { lt: key.id } }],
  };
}

export const PAGE_ORDER = [{ createdAt: "desc" as const }, { id: "desc" as const }];

/** Room for a page's frame around its items (`{"items":[…],"nextCursor":"…"}`), counted against the byte budget. */
const PAGE_FRAME_BYTES = 512;

/**
 * Fetch `limit + 1` rows, then call this: it trims the extra row and computes nextCursor from it. With `maxBytes`
 * (MAX_RESPONSE_BYTES) the page also ends before the item whose JSON would take the page past that many bytes,
 * and its cursor continues from the last item kept; the first item always comes, or a list could never move on.
 */
export function toPage<T extends PageKey, R>(
  rows: T[],
  limit: number,
  serialize: (row: T) => R,
  maxBytes = Infinity,
  more = rows.length > limit,
) {
  const items: R[] = [];
  let bytes = PAGE_FRAME_BYTES;
  for (const row of rows.slice(0, limit)) {
    const item = serialize(row);
    if (maxBytes !== Infinity) {
      bytes += Buffer.byteLength(JSON.stringify(item)) + 1;
      if (bytes > maxBytes && items.length > 0) break;
    }
    items.push(item);
  }
  const last = rows[items.length - 1];
  const cut = items.length < Math.min(rows.length, limit);
  return { items, nextCursor: (cut || more) && last ? encodePageCursor(last) : null };
}

/** Stored bytes of the big columns of some rows of a list, by id (jsonb's text, which is never shorter than its JSON). */
export type SizesOf = (ids: string[]) => Promise<Map<string, number>>;

/** Ids are sized a few at a time: rows of 600 KB fill 4 MiB within the first batch, small rows take one batch per 64. */
const SIZE_BATCH = 64;
/** What a row's small columns add to its big ones in the JSON, at most. */
const ROW_OVERHEAD_BYTES = 1024;

/**
 * Of a page's keys (`limit + 1` of them, cheap to read: id and createdAt only), the ones whose rows fit in
 * `maxBytes`, from their stored sizes, so a page of big rows is never loaded whole into the node: a dozen
 * tasks with 600 KB payloads made one 200-row page 14 MiB. The rows are then read by these keys and the page
 * built with toPage (passing `more`), which checks the bytes once more on the JSON itself.
 */
export async function keysWithinBytes<K extends PageKey>(
  keys: K[],
  limit: number,
  maxBytes: number,
  sizesOf: SizesOf,
): Promise<{ keys: K[]; more: boolean }> {
  const candidates = keys.slice(0, limit);
  const kept: K[] = [];
  let bytes = PAGE_FRAME_BYTES;
  for (let start = 0; start < candidates.length; start += SIZE_BATCH) {
    const batch = candidates.slice(start, start + SIZE_BATCH);
    const sizes = await sizesOf(batch.map((key) => key.id));
    for (const key of batch) {
      bytes += (sizes.get(key.id) ?? 0) + ROW_OVERHEAD_BYTES;
      if (bytes > maxBytes && kept.length > 0) return { keys: kept, more: true };
      kept.push(key);
    }
  }
  return { keys: kept, more: keys.length > kept.length };
}
