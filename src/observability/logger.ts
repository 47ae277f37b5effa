import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(options: { level: string; nodeId: string }): Logger {
  // pino writes asynchronously-buffered JSON to stdout: no formatting work on the hot path.
  return pino({ level: options.level, base: { node: options.nodeId } });
}
