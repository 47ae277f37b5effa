import type { Principal } from "../auth/principal.js";
import { bearerToken, type TokenVerifier } from "../auth/verify.js";
import { AuthError } from "../errors.js";
import type { HandshakeErrorCode } from "../protocol/errors.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { SwitchyardSocket } from "./types.js";

export type { SocketData } from "./types.js";

/** Error sent as `connect_error`: message "unauthorized", `data.code` one of the contract's handshake codes. */
export class HandshakeError extends Error {
  readonly data: { code: HandshakeErrorCode; message: string };
  constructor(code: HandshakeErrorCode, message: string) {
    super("unauthorized");
    this.data = { code, message };
  }
}

/** Namespace middleware: a socket is admitted only with a valid token, from `auth.token` or the header. */
export function handshakeAuth(verify: TokenVerifier, metrics: Metrics, logger: Logger) {
  return (socket: SwitchyardSocket, next: (error?: Error) => void): void => {
    const auth: unknown = socket.handshake.auth;
    const fromAuth = typeof auth === "object" && auth !== null ? (auth as { token?: unknown }).token : undefined;
    const token = typeof fromAuth === "string" && fromAuth.length > 0 ? fromAuth : bearerToken(socket.handshake.headers.authorization);
    try {
      socket.data.principal = verify(token);
      next();
    } catch (error) {
      const code = error instanceof AuthError ? error.code : "TOKEN_INVALID";
      const message = error instanceof Error ? error.message : "token rejected";
      metrics.handshakeFailures.inc({ code });
      logger.debug({ code, nsp: socket.nsp.name }, "handshake refused");
      next(new HandshakeError(code, message));
    }
  };
}

/**
 * The handshake's last step: the token is checked against revocations once more. The steps before it wait on
 * Redis (the connection quota), and a revocation learnt meanwhile ends only the sessions already connected, so a
 * socket in the middle of its handshake would have survived it. After this step Socket.IO connects the socket
 * within the same turn of the event loop (a process.nextTick), in which no announcement can arrive.
 */
export function handshakeNotRevoked(isRevoked: (principal: Principal) => boolean, metrics: Metrics, logger: Logger) {
  return (socket: SwitchyardSocket, next: (error?: Error) => void): void => {
    if (!isRevoked(socket.data.principal)) return next();
    metrics.handshakeFailures.inc({ code: "TOKEN_REVOKED" });
    logger.debug({ code: "TOKEN_REVOKED", nsp: socket.nsp.name }, "handshake refused: revoked during the handshake");
    next(new HandshakeError("TOKEN_REVOKED", "token revoked"));
  };
}
