import express, { type NextFunction, type Request, type RequestHandler, type Response } from "express";
import { assertSafeJson, jsonProblemError } from "../domains/validation.js";
import { findJsonTextDepthProblem } from "../protocol/json-safety.js";

/** The raw body as text the depth scan can read: UTF-8 bytes as they are, other charsets decoded if the platform can. */
function scannable(raw: Buffer, charset: string | undefined): Uint8Array | string | undefined {
  if (!charset || charset === "utf-8" || charset === "utf8") return raw;
  try {
    return new TextDecoder(charset).decode(raw);
  } catch {
    // A charset TextDecoder does not know (utf-32): the walk after parsing still applies.
    return undefined;
  }
}

/**
 * Parses JSON request bodies and applies the JSON input rules to them (src/protocol/json-safety.ts): the nesting
 * depth on the raw text before it is parsed (body-parser's verify hook: a 100,000-level body is refused after
 * MAX_JSON_DEPTH brackets), then NUL characters, lone surrogates and depth on the parsed value, before any
 * validation sees it. A body breaking a rule is a 400 BAD_REQUEST naming the problem and its path.
 */
export function jsonBody(maxPayloadBytes: number): RequestHandler[] {
  const parse = express.json({
    limit: maxPayloadBytes,
    strict: false,
    type: ["application/json", "application/*+json"],
    verify: (_req, _res, raw, charset) => {
      const text = scannable(raw, charset);
      const problem = text === undefined ? undefined : findJsonTextDepthProblem(text);
      // body-parser passes an error thrown here on to the error middleware, keeping its 400 status.
      if (problem) throw jsonProblemError(problem, "body");
    },
  });
  const walk = (req: Request, _res: Response, next: NextFunction): void => {
    // Express 5 leaves req.body undefined when no parser ran (no body, or another content type).
    if (req.body !== undefined) assertSafeJson(req.body, "body");
    next();
  };
  return [parse, walk];
}
