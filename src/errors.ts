import type { ErrorBody, ErrorCode } from "./protocol/errors.js";

/**
 * An error a client caused or may see. Its `code` is a contract error code and `status` the HTTP status
 * it maps to, so REST and Socket.IO report the same failure the same way.
 */
export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly status: number,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = new.target.name;
  }

  /** The same refusal with other details (its fields named where they are in another body, say). */
  withDetails(details: unknown): AppError {
    return new AppError(this.code, this.message, this.status, details);
  }

  toBody(): ErrorBody {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

export class BadRequestError extends AppError {
  constructor(message: string, details?: unknown) {
    super("BAD_REQUEST", message, 400, details);
  }
}
/** An operation on a socket that closed meanwhile: its ack is never read, but the work stops. */
export class SocketDisconnectedError extends BadRequestError {
  constructor() {
    super("socket disconnected");
  }
}
/** A body in an encoding or charset the node does not read: still BAD_REQUEST, with HTTP's own status. */
export class UnsupportedEncodingError extends AppError {
  constructor(message: string) {
    super("BAD_REQUEST", message, 415);
  }
}
export class InvalidRoomError extends AppError {
  constructor(message: string, details?: unknown) {
    super("INVALID_ROOM", message, 400, details);
  }
}
export class ForbiddenError extends AppError {
  constructor(message: string) {
    super("FORBIDDEN", message, 403);
  }
}
/** Also used for another tenant's ids: the response never reveals that they exist. */
export class NotFoundError extends AppError {
  constructor(what: string, details?: unknown) {
    super("NOT_FOUND", `${what} not found`, 404, details);
  }
}
export class ConflictError extends AppError {
  constructor(message: string, details?: unknown) {
    super("CONFLICT", message, 409, details);
  }
}
/** The resource exists but its state does not allow the action (a retry of a task that did not fail, say). */
export class InvalidStateError extends AppError {
  constructor(message: string, details?: unknown) {
    super("INVALID_STATE", message, 409, details);
  }
}
export class PayloadTooLargeError extends AppError {
  constructor(message: string, details?: unknown) {
    super("PAYLOAD_TOO_LARGE", message, 413, details);
  }
}
export class RateLimitedError extends AppError {
  constructor(message: string) {
    super("RATE_LIMITED", message, 429);
  }
}
/** A per-tenant cap on stored state is reached: the request would hold more, not come too fast. */
export class QuotaExceededError extends AppError {
  constructor(message: string, details?: unknown) {
    super("QUOTA_EXCEEDED", message, 429, details);
  }
}
export class CursorExpiredError extends AppError {
  constructor(message: string) {
    super("CURSOR_EXPIRED", message, 410);
  }
}
/** What a client sees of a failure it did not cause and need not know about. */
export class InternalError extends AppError {
  constructor() {
    super("INTERNAL", "internal error", 500);
  }
}
export class UnavailableError extends AppError {
  constructor(message: string) {
    super("UNAVAILABLE", message, 503);
  }
}

export type AuthErrorCode = "TOKEN_MISSING" | "TOKEN_INVALID" | "TOKEN_EXPIRED" | "CLAIMS_INVALID" | "TOKEN_REVOKED";
export class AuthError extends AppError {
  declare readonly code: AuthErrorCode;
  constructor(code: AuthErrorCode, message: string) {
    super(code, message, 401);
  }
}

/** The services a node depends on, as they are named to callers ("redis unavailable") and in /ready. */
export type Dependency = "redis" | "postgresql";

/**
 * A Redis or PostgreSQL call failed because the service is down, unreachable or did not answer within
 * DEPENDENCY_TIMEOUT_MS. The message names the dependency and nothing else: driver text stays in the logs.
 */
export class DependencyUnavailableError extends UnavailableError {
  constructor(readonly dependency: Dependency) {
    super(`${dependency} unavailable`);
  }
}

// ioredis: a command refused while disconnected, timed out (commandTimeout), or dropped after its retries; BullMQ
// reports a closed connection with the same text as ioredis. A Redis still loading its data set refuses too.
const REDIS_UNAVAILABLE = /^(Command timed out|Stream isn't writeable|Connection is closed|Reached the max retries per request|LOADING )/;
// node-postgres: the pool's connectionTimeoutMillis, the client's query_timeout, a connection cut under a query.
const POSTGRES_UNAVAILABLE =
  /^(Query read timeout|timeout exceeded when trying to connect|Connection terminated|the database system is (starting up|shutting down|in recovery)|terminating connection)/;
// Socket errors. ioredis never hands these to a command (it answers with the messages above), so on a request path
// they come from node-postgres, which reports a refused or reset connection as it is. Elsewhere the caller knows
// which connection failed (BullMQ forwards its connections' socket errors).
const SOCKET_ERROR = /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|EPIPE)$/;
// PostgreSQL's own codes for a server going away or refusing: admin shutdown, crash, cannot connect now,
// connection exceptions, too many connections.
const POSTGRES_CODE = /^(57P0[1-3]|08\d{3}|53300)$/;

interface DriverErrorShape {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  cause?: unknown;
  meta?: { driverAdapterError?: { cause?: { kind?: unknown; code?: unknown } } };
}

/**
 * Which dependency an error says is unavailable, if it says so: Prisma's codes and driver-adapter kinds,
 * node-postgres and ioredis messages, socket error codes (those are charged to `socketErrorsFrom`). Looks into
 * `cause` too (node-postgres wraps the socket error of a connection timeout).
 */
export function unavailableDependency(error: unknown, socketErrorsFrom: Dependency = "postgresql", depth = 0): Dependency | undefined {
  if (error instanceof DependencyUnavailableError) return error.dependency;
  if (typeof error !== "object" || error === null) return undefined;
  const { name, code, message, cause, meta } = error as DriverErrorShape;
  const text = typeof message === "string" ? message : "";
  if (name === "MaxRetriesPerRequestError" || REDIS_UNAVAILABLE.test(text)) return "redis";
  if (name === "PrismaClientInitializationError") return "postgresql";
  // P1001 cannot reach, P1002 timed out, P1008 operation timed out, P1017 server closed the connection, P2024 no
  // connection from the pool in time.
  if (typeof code === "string" && SOCKET_ERROR.test(code)) return socketErrorsFrom;
  if (typeof code === "string" && (/^P10\d\d$/.test(code) || code === "P2024" || POSTGRES_CODE.test(code))) return "postgresql";
  const adapterCause = meta?.driverAdapterError?.cause;
  if (adapterCause?.kind === "postgres" && typeof adapterCause.code === "string" && POSTGRES_CODE.test(adapterCause.code))
    return "postgresql";
  if (
    typeof adapterCause?.kind === "string" &&
    /NotReachable|ConnectionClosed|DatabaseDoesNotExist|TooManyConnections|SocketTimeout/.test(adapterCause.kind)
  )
    return "postgresql";
  if (POSTGRES_UNAVAILABLE.test(text) || /Can't reach database server/.test(text)) return "postgresql";
  return depth < 2 && cause !== undefined ? unavailableDependency(cause, socketErrorsFrom, depth + 1) : undefined;
}

/** Turns an unknown thrown value into an AppError, hiding internals of unexpected ones. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  const dependency = unavailableDependency(error);
  if (dependency) return new DependencyUnavailableError(dependency);
  return new InternalError();
}
