import type { TenantConnections } from "../limits/tenant-connections.js";
import type { Metrics } from "../observability/metrics.js";
import { HandshakeError } from "./handshake.js";
import type { SwitchyardSocket } from "./types.js";

/**
 * Namespace middleware, after handshakeAuth: MAX_CONNECTIONS_PER_TENANT across all nodes. One more socket than the
 * tenant may have gets `connect_error` "unauthorized" with `data.code` CONNECTION_LIMIT.
 */
export function connectionQuota(connections: TenantConnections, metrics: Metrics) {
  return (socket: SwitchyardSocket, next: (error?: Error) => void): void => {
    const { tenantId } = socket.data.principal;
    void connections.admit(tenantId).then((admitted) => {
      if (!admitted) {
        metrics.rateLimited.inc({ kind: "connections" });
        metrics.handshakeFailures.inc({ code: "CONNECTION_LIMIT" });
        next(new HandshakeError("CONNECTION_LIMIT", `the tenant has its ${connections.limit} connections already`));
        return;
      }
      holdUntilClosed(socket, () => connections.release(tenantId));
      next();
    });
  };
}

/**
 * Calls `release` once, when the socket disconnects or its connection closes. The connection's close also covers
 * a socket that never finished connecting: Socket.IO drops such a socket without a `disconnect` event.
 */
function holdUntilClosed(socket: SwitchyardSocket, release: () => void): void {
  const conn = socket.conn;
  let held = true;
  const free = (): void => {
    if (!held) return;
    held = false;
    conn.off("close", free);
    release();
  };
  // Closed while Redis was asked: Socket.IO will drop the socket, and "close" has fired already.
  if (conn.readyState !== "open") return free();
  // `on`, not `once`: `free` runs once by itself, and `once` would wrap it in two more objects per socket.
  conn.on("close", free);
  socket.on("disconnect", free);
}
