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
export class CursorExpiredError extends AppError {
  constructor(message: string) {
    super("CURSOR_EXPIRED", message, 410);
  }
}
export class UnavailableError extends AppError {
  constructor(message: string) {
    super("UNAVAILABLE", message, 503);
  }
}

export type AuthErrorCode = "TOKEN_MISSING" | "TOKEN_INVALID" | "TOKEN_EXPIRED" | "CLAIMS_INVALID";
export class AuthError extends AppError {
  constructor(code: AuthErrorCode, message: string) {
    super(code, message, 401);
  }
}

/** Prisma's codes for "the database cannot be reached" (P1xxx) and driver-adapter connection failures. */
function isDatabaseUnavailable(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const { code, name, meta } = error as { code?: unknown; name?: unknown; meta?: { driverAdapterError?: { cause?: { kind?: unknown; code?: unknown } } } };
  if (name === "PrismaClientInitializationError") return true;
  if (typeof code === "string" && /^P10\d\d$/.test(code)) return true;
  const cause = meta?.driverAdapterError?.cause;
  // PostgreSQL's own codes for a server going away or refusing: admin shutdown, crash, connection failures.
  if (cause?.kind === "postgres" && typeof cause.code === "string" && /^(57P0[1-3]|08\d{3}|53300)$/.test(cause.code)) return true;
  return typeof cause?.kind === "string" && /NotReachable|ConnectionClosed|DatabaseDoesNotExist|TooManyConnections|SocketTimeout/.test(cause.kind);
}

/** Turns an unknown thrown value into an AppError, hiding internals of unexpected ones. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (isDatabaseUnavailable(error) || (error instanceof Error && /ECONNREFUSED|ECONNRESET|Connection terminated|terminating connection|the database system is (starting up|shutting down|in recovery)/.test(error.message))) {
    return new UnavailableError("the database is unavailable; try again");
  }
  return new AppError("INTERNAL", "internal error", 500);
}
