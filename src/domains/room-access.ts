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
  if (!(await roomExists(principal.tenantId, room, resources))) throw new NotFoundError(room.kind);
  return room;
}

/**
 * Whether a parsed room exists inside a tenant: a collection room always does, a resource room when the tenant
 * owns the resource (another tenant's id is simply absent). No permission is checked here: callers do that
 * (subscribers need the namespace's `:read`, publishers `events:publish`).
 */
export async function roomExists(tenantId: string, room: Room, resources: ResourceDirectory): Promise<boolean> {
  return room.kind === "collection" || resources.exists(tenantId, room.kind, room.id);
}
