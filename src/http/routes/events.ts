import { Router } from "express";
import { z } from "zod";
import { authorizeRoom } from "../../domains/room-access.js";
import type { ResourceDirectory } from "../../domains/resources.js";
import { parseInput } from "../../domains/validation.js";
import { principalOf } from "../authenticate.js";
import { NAMESPACES } from "../../protocol/namespaces.js";
import { encodeCursor } from "../../protocol/cursor.js";
import type { EventLogReader } from "../../events/event-log-reader.js";
import { parseAfter, readHistory, startOf } from "../../events/history.js";

const HistoryQuery = z.object({
  namespace: z.enum(NAMESPACES),
  room: z.string().min(1).max(200),
  after: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

/**
 * `GET /api/v1/events`: a room's stored events after a cursor, with the same rules as `subscribe { after }`. A
 * page is bounded in rows (`limit`) and in bytes of event data (`maxBytes`, MAX_RESPONSE_BYTES), by the same
 * byte-bounded read the socket replay pages with: it stops early and says so (`hasMore`, `nextCursor`), so one
 * request never builds more than about `maxBytes` in the node, whatever the events hold. Its first event is
 * always sent, even one larger than the bound, so a page always moves on.
 */
export function eventRoutes(log: EventLogReader, resources: ResourceDirectory, maxBytes: number): Router {
  const router = Router();
  router.get("/", async (req, res) => {
    const principal = principalOf(res);
    const query = parseInput(HistoryQuery, req.query, "query");
    const room = await authorizeRoom(principal, query.namespace, query.room, resources);
    const where = { tenantId: principal.tenantId, namespace: query.namespace, room: room.name };
    const head = await log.head(where.tenantId, where.namespace, where.room);
    // Without a cursor (or with "0"), start at the oldest event retention kept.
    const after = parseAfter(query.after);
    const from = after === undefined || after === "start" ? await startOf(log, where, head) : after;
    const page = await readHistory(log, where, head, from, query.limit, maxBytes);
    res.json({
      items: page.events,
      nextCursor: page.cursor,
      head: encodeCursor(head),
      hasMore: from.seq + page.events.length < head.seq,
    });
  });
  return router;
}
