import { toAppError, type AppError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";

type AckFn = (result: unknown) => void;

/**
 * Socket.IO delivers whatever the client sent: the payload may be missing, a number, or the ack itself.
 * This finds the ack (always the last argument) and the payload (the first, when it is not the ack).
 */
export function splitArgs(args: unknown[]): { payload: unknown; ack: AckFn | undefined } {
  const last = args[args.length - 1];
  const ack = typeof last === "function" ? (last as AckFn) : undefined;
  const payload = args.length > (ack ? 1 : 0) ? args[0] : undefined;
  return { payload, ack };
}

/**
 * Runs a client request and answers its acknowledgement: `{ ok: true, ...result }`, or `{ ok: false, error }`
 * with the contract's error body. Server faults are logged; client errors are counted.
 */
export async function acknowledge(
  args: unknown[],
  run: (payload: unknown) => Promise<object>,
  observe: { logger: Logger; metrics: Metrics; context: Record<string, unknown> },
): Promise<void> {
  const { payload, ack } = splitArgs(args);
  let result: object;
  try {
    result = { ok: true, ...(await run(payload)) };
  } catch (error) {
    const appError: AppError = toAppError(error);
    if (appError.status >= 500) observe.logger.error({ err: error, ...observe.context }, "socket request failed");
    else observe.metrics.clientErrors.inc({ code: appError.code });
    result = { ok: false, error: appError.toBody() };
  }
  ack?.(result);
}
