import { Router } from "express";
import { z } from "zod";
import type { Principal } from "../../auth/principal.js";
import type { ResourceDirectory } from "../../domains/resources.js";
import { roomExists } from "../../domains/room-access.js";
import { parseInput } from "../../domains/validation.js";
import { type AppError, BadRequestError, InvalidRoomError, NotFoundError, PayloadTooLargeError } from "../../errors.js";
import { requirePermission } from "../authenticate.js";
import { MAX_PUBLISH_BATCH, MAX_PUBLISHED_DATA_BYTES, type PublishedEvent, type PublishResponse } from "../../protocol/publish.js";
import { PublishEventSchema } from "../../protocol/schemas.js";
import { parseRoom, type Room } from "../../protocol/rooms.js";
import type { CustomEventInput, EventPublisher } from "../../events/publisher.js";

const BatchSchema = z.strictObject({
  events: z.array(z.unknown()).min(1).max(MAX_PUBLISH_BATCH, `at most ${MAX_PUBLISH_BATCH} events per request`),
});

/** Resource lookups in flight at once while a batch is checked (each is a query unless the node knows the id). */
const LOOKUP_CONCURRENCY = 16;

/**
 * `POST /api/v1/events`: a backend publishes its own events into rooms of its tenant. One event, or a batch
 * `{ events: [...] }` stored as one unit: every event is checked before anything is stored, and the first bad
 * one (by index) is named in the error's `details`.
 */
export function publishRoutes(publisher: EventPublisher, resources: ResourceDirectory): Router {
  const router = Router();
  router.post("/", async (req, res) => {
    const principal = requirePermission(res, "events:publish");
    const inputs = await parsePublishRequest(principal, req.body, resources);
    const published = await publisher.publishBatch(inputs);
    const items = published.map((envelopes, i): PublishedEvent => {
      // One room per input, so one stored copy each.
      const envelope = envelopes[0]!;
      return { id: envelope.id, namespace: inputs[i]!.namespace, room: envelope.room, cursor: envelope.cursor };
    });
    res.status(202).json({ items } satisfies PublishResponse);
  });
  return router;
}

interface Checked {
  input: CustomEventInput;
  room: Room;
}

/**
 * Turns the body into publish inputs for the principal's tenant, or throws the error of the first bad event:
 * its shape and type (400 BAD_REQUEST), its room's grammar (400 INVALID_ROOM), its data (413 beyond 64 KiB), or
 * a resource room the tenant does not have (404). Text PostgreSQL cannot store and deep nesting never get here:
 * every JSON body meets the input rules first (src/http/json-body.ts).
 */
async function parsePublishRequest(principal: Principal, body: unknown, resources: ResourceDirectory): Promise<CustomEventInput[]> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new BadRequestError("invalid body: expected an event or { events: [...] }", [{ field: "body", message: "expected an object" }]);
  }
  const batch = "events" in body;
  const raw: unknown[] = batch ? parseInput(BatchSchema, body).events : [body];
  const fieldOf = (index: number, path: string): string =>
    batch ? (path ? `events.${index}.${path}` : `events.${index}`) : path || "body";

  // Synchronous checks, in order, up to the first bad event.
  const checked: Checked[] = [];
  let firstBad: { index: number; error: AppError } | undefined;
  for (let index = 0; index < raw.length; index++) {
    const result = checkEvent(principal.tenantId, raw[index], (path) => fieldOf(index, path));
    if ("error" in result) {
      firstBad = { index, error: result.error };
      break;
    }
    checked.push(result);
  }

  // Resource rooms of the events before it must exist in the tenant (an earlier unknown room is the first bad event).
  const lookups = new Map<string, Promise<boolean>>();
  const exists = await mapLimited(checked, LOOKUP_CONCURRENCY, ({ room }) => {
    let lookup = lookups.get(room.name);
    if (!lookup) lookups.set(room.name, (lookup = roomExists(principal.tenantId, room, resources)));
    return lookup;
  });
  const missing = exists.indexOf(false);
  if (missing >= 0) {
    const room = checked[missing]!.room;
    throw new NotFoundError(room.kind, [{ field: fieldOf(missing, "room"), message: `${room.name} does not exist` }]);
  }
  if (firstBad) throw firstBad.error;
  return checked.map((c) => c.input);
}

function checkEvent(tenantId: string, raw: unknown, field: (path: string) => string): Checked | { error: AppError } {
  const parsed = PublishEventSchema.safeParse(raw);
  if (!parsed.success) {
    const details = parsed.error.issues.map((issue) => ({ field: field(issue.path.join(".")), message: issue.message }));
    return { error: new BadRequestError(`invalid body: ${[...new Set(details.map((d) => d.field))].join(", ")}`, details) };
  }
  const { namespace, room: name, type, data = null } = parsed.data;
  const room = parseRoom(namespace, name);
  if (!room) {
    const message = `"${name.slice(0, 64)}" is not a room of /${namespace}`;
    return { error: new InvalidRoomError(message, [{ field: field("room"), message }]) };
  }
  const bytes = Buffer.byteLength(JSON.stringify(data));
  if (bytes > MAX_PUBLISHED_DATA_BYTES) {
    const message = `${bytes} bytes serialized, more than ${MAX_PUBLISHED_DATA_BYTES}`;
    return { error: new PayloadTooLargeError(`${field("data")} is too large`, [{ field: field("data"), message }]) };
  }
  return { input: { tenantId, namespace, room: room.name, type, data }, room };
}

/** Maps with at most `limit` calls in flight; results in input order. */
async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await fn(items[index]!);
      }
    }),
  );
  return results;
}
