import type { NextFunction, Request, Response } from "express";
import { AppError, BadRequestError, toAppError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";

interface BodyParserError extends Error {
  type?: string;
  status?: number;
  limit?: number;
}

/** Maps body-parser's own failures to the contract's errors. */
function fromBodyParser(error: BodyParserError): AppError | undefined {
  switch (error.type) {
    case "entity.parse.failed":
      return new BadRequestError("malformed JSON body");
    case "entity.too.large":
      return new AppError("PAYLOAD_TOO_LARGE", `body larger than ${error.limit ?? "the limit"} bytes`, 413);
    case "encoding.unsupported":
    case "charset.unsupported":
      return new AppError("BAD_REQUEST", error.message, 415);
    case "request.aborted":
      return new BadRequestError("request aborted");
    default:
      return undefined;
  }
}

/** The one error middleware: every failure leaves as `{ error: { code, message, details? } }`. */
export function errorHandler(logger: Logger, metrics: Metrics) {
  return (error: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const appError = (error instanceof Error && fromBodyParser(error as BodyParserError)) || toAppError(error);
    if (appError.status >= 500) {
      logger.error({ err: error, method: req.method, path: req.path }, "request failed");
    } else {
      metrics.clientErrors.inc({ code: appError.code });
    }
    if (res.headersSent) return;
    res.status(appError.status).json({ error: appError.toBody() });
  };
}

export function notFoundHandler(req: Request, res: Response): void {
  res.status(404).json({ error: { code: "NOT_FOUND", message: `no route ${req.method} ${req.path}` } });
}
