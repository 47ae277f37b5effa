import type { IncomingMessage } from "node:http";

/** Engine.IO's `allowRequest` hook: `callback(message, false)` refuses the handshake. */
export type AllowRequest = (req: IncomingMessage, callback: (message: string | null | undefined, success: boolean) => void) => void;

/** `https://App.example:443` → `https://app.example`; undefined for anything that is not an http(s) origin (`null` included). */
function normalizeOrigin(origin: string): string | undefined {
  try {
    const url = new URL(origin);
    return url.protocol === "http:" || url.protocol === "https:" ? url.origin : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Same-origin: the page was served by the host the browser is now talking to. The scheme is taken from the
 * Origin, not from this server, because a TLS-terminating proxy in front of it changes the scheme, not the Host.
 */
function isSameOrigin(origin: string, host: string | undefined): boolean {
  if (!host) return false;
  try {
    const url = new URL(origin);
    return url.host === new URL(`${url.protocol}//${host}`).host;
  } catch {
    return false;
  }
}

/**
 * Whether a browser page of `origin` may open a Socket.IO session. CORS does not cover WebSocket, and a refused
 * CORS long-polling request has still reached the server, so browsers' cross-origin handshakes are refused here
 * with the same rule REST gets from CORS headers: the origins of CORS_ORIGINS (`*`: any), and otherwise the
 * page's own origin only. A handshake without Origin is not from a browser page; its token is all it has.
 */
export function createOriginPolicy(corsOrigins: string[] | undefined): (origin: string | undefined, host: string | undefined) => boolean {
  if (corsOrigins?.includes("*")) return () => true;
  const allowed = new Set((corsOrigins ?? []).map(normalizeOrigin).filter((o): o is string => o !== undefined));
  return (origin, host) => {
    if (origin === undefined) return true;
    const normalized = normalizeOrigin(origin);
    return normalized !== undefined && (allowed.has(normalized) || isSameOrigin(normalized, host));
  };
}

/**
 * The origin policy as Engine.IO's `allowRequest`, which Engine.IO runs on every request that opens a session:
 * the first long-polling request, and a WebSocket opened directly. Later requests of a session carry its `sid`
 * (which a refused page never learns) and are not asked again, the upgrade from polling to WebSocket included.
 *
 * Engine.IO answers a refused polling request with 403, but a refused WebSocket upgrade with 400, whatever the
 * reason. So a refused upgrade is answered 403 here, and the socket ended: Engine.IO then finds it no longer
 * writable and only destroys it. Engine.IO itself refuses `transport=websocket` on a request that is not an
 * upgrade before it asks, so that query says which path this is.
 */
export function originCheck(corsOrigins: string[] | undefined, onRefused: (origin: string) => void): AllowRequest {
  const allows = createOriginPolicy(corsOrigins);
  return (req, callback) => {
    const origin = req.headers.origin;
    if (allows(origin, req.headers.host)) {
      callback(null, true);
      return;
    }
    const message = `origin ${String(origin).slice(0, 200)} is not allowed`;
    onRefused(String(origin));
    if (new URLSearchParams(req.url?.split("?")[1] ?? "").get("transport") === "websocket") {
      const body = JSON.stringify({ code: "FORBIDDEN", message });
      req.socket.end(
        `HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    }
    callback(message, false);
  };
}
