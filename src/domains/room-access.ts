import { canRead, type Principal } from "../auth/principal.js";
import { ForbiddenError, InvalidRoomError, NotFoundError } from "../errors.js";
import type { NamespaceName } from "../protocol/namespaces.js";
import { parseRoom, type Room } from "../protocol/rooms.js";
import type { ResourceDirectory } from "./resources.js";

/**
 * Decides whether a principal may read a client-named room: the name must be a room of the namespace
 * (INVALID_ROOM), the principal needs the namespace's read permission (FORBIDDEN), and a resource room must
 * name something the principal's tenant owns (NOT_FOUND, also for another tenant's ids).
 * Used by Socket.IO subscriptions and the history API alike.
 */
export async function authorizeRoom(
  principal: Principal,
  namespace: NamespaceName,
  name: string,
  resources: ResourceDirectory,
): Promise<Room> {
  const room = parseRoom(namespace, name);
  if (!room) throw new InvalidRoomError(`"${name.slice(0, 64)}" is not a room of /${namespace}`);
  if (!canRead(principal, namespace)) throw new ForbiddenError(`missing permission ${namespace}:read`);
  if (room.kind !== "collection" && !(await resources.exists(principal.tenantId, room.kind, room.id))) {
    throw new NotFoundError(room.kind);
  }
  return room;
}
