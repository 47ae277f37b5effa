/** Error codes of the public contract, shared by REST responses and Socket.IO acknowledgements. */
export const ERROR_CODES = [
  "BAD_REQUEST",
  "INVALID_ROOM",
  "UNAUTHORIZED",
  "TOKEN_MISSING",
  "TOKEN_INVALID",
  "TOKEN_EXPIRED",
  "CLAIMS_INVALID",
  "TOKEN_REVOKED",
  "CONNECTION_LIMIT",
  "FORBIDDEN",
  "NOT_FOUND",
  "CONFLICT",
  "INVALID_STATE",
  "PAYLOAD_TOO_LARGE",
  "RATE_LIMITED",
  "QUOTA_EXCEEDED",
  "CURSOR_EXPIRED",
  "SUPERSEDED",
  "UNAVAILABLE",
  "INTERNAL",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  details?: unknown;
}

export type HandshakeErrorCode =
  "TOKEN_MISSING" | "TOKEN_INVALID" | "TOKEN_EXPIRED" | "CLAIMS_INVALID" | "TOKEN_REVOKED" | "CONNECTION_LIMIT";
