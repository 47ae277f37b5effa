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

/** Fetch `limit + 1` rows, then call this: it trims the extra row and computes nextCursor from it. */
export function toPage<T extends PageKey, R>(rows: T[], limit: number, serialize: (row: T) => R) {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return {
    items: items.map(serialize),
    nextCursor: rows.length > limit && last ? encodePageCursor(last) : null,
  };
}
