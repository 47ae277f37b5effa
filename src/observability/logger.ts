import { pino, type Logger, type LoggerOptions } from "pino";
import { currentRequest } from "./request-context.js";

export type { Logger };

/** Lines written while a REST request is handled carry its id, tenant and subject (see request-context.ts). */
function requestFields(_merge: object, _level: number, logger: Logger): Record<string, string> {
  const context = currentRequest();
  if (!context) return {};
  // pino-http's access line comes from a child logger already bound to the id: do not write it twice.
  const fields: Record<string, string> = "reqId" in logger.bindings() ? {} : { reqId: context.reqId };
  if (context.tenant) fields.tenant = context.tenant;
  if (context.sub) fields.sub = context.sub;
  return fields;
}

export function createLogger(options: { level: string; nodeId: string; format: "json" | "pretty" }): Logger {
  const common: LoggerOptions = { level: options.level, base: { node: options.nodeId }, mixin: requestFields };
  if (options.format === "pretty") {
    // pino-pretty runs in pino's transport thread, so formatting stays off the event loop.
    return pino({
      ...common,
      transport: { target: "pino-pretty", options: { translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname", singleLine: true } },
    });
  }
  // pino writes asynchronously-buffered JSON to stdout: no formatting work on the hot path.
  return pino(common);
}
