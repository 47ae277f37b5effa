import type { NextFunction, Request, Response } from "express";
import type { FailureReporter } from "../dependencies/status.js";
import { AppError, BadRequestError, PayloadTooLargeError, toAppError, UnsupportedEncodingError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";

/** Errors of body-parser and the router: http-errors style, with a status and (body-parser) a type. */
interface ExpressError extends Error {
  type?: string;
  status?: number;
  expose?: boolean;
  limit?: number;
}

/** Maps the failures of Express's own parsers (body, path parameters) to the contract's errors. */
function fromExpress(error: ExpressError): AppError | undefined {
  // Ours, thrown in body-parser's verify hook (src/http/json-body.ts), which only added its own fields.
  if (error instanceof AppError) return error;
  // The router could not percent-decode a path parameter (e.g. "%E0%A4" or "%ud800").
  if (error instanceof URIError) return new BadRequestError("malformed percent-encoding in the URL path");
  switch (error.type) {
    case "entity.parse.failed":
      return new BadRequestError("malformed JSON body");
    case "entity.too.large":
      return new PayloadTooLargeError(`body larger than ${error.limit ?? "the limit"} bytes`);
    case "encoding.unsupported":
    case "charset.unsupported":
      return new UnsupportedEncodingError(error.message);
    case "request.aborted":
      return new BadRequestError("request aborted");
    default:
      // Anything else body-parser blames on the request (a body shorter than its Content-Length, …) is the
      // client's error too: it must not become a 500.
      if (error.expose === true && typeof error.status === "number" && error.status >= 400 && error.status < 500) {
        return new BadRequestError(error.message);
      }
      return undefined;
  }
}

/**
 * The one error middleware: every failure leaves as `{ error: { code, message, details? } }`. A Redis or PostgreSQL
 * call that failed or missed its deadline is a 503 UNAVAILABLE naming the dependency ("redis unavailable"), never
 * the driver's text; it is recorded with the dependency's state, which is logged once per outage, not per request.
 */
export function errorHandler(logger: Logger, metrics: Metrics, failures: FailureReporter) {
  return (error: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const appError = (error instanceof Error && fromExpress(error)) || toAppError(error);
    if (appError.status >= 500) {
      if (!failures.failed(error)) logger.error({ err: error, method: req.method, path: req.path }, "request failed");
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
