import type { EventLogReader } from "../../events/event-log-reader.js";
import { encodeCursor } from "../../protocol/cursor.js";
import type { NamespaceName } from "../../protocol/namespaces.js";

/**
 * A resource read together with `head`: the cursor of its room, read **before** the resource, so that subscribing
 * with `after: head` misses nothing the read did not show. A change committed between the two reads is in the
 * resource and also replayed after `head` (one event seen twice, never one missed): pools and workflows commit
 * their change before numbering its event, so no single read could do better for them (tasks can, see
 * TaskService.getWithHead). The room's sequence is only created once the resource is known to exist, so a
 * request for an id that is not the tenant's creates nothing.
 */
export async function readWithHead<T>(
  log: EventLogReader,
  where: { tenantId: string; namespace: NamespaceName; room: string },
  read: () => Promise<T>,
): Promise<{ value: T; head: string }> {
  const before = await log.peekHead(where.tenantId, where.namespace, where.room);
  const value = await read();
  const head = before ?? (await log.head(where.tenantId, where.namespace, where.room));
  return { value, head: encodeCursor(head) };
}
