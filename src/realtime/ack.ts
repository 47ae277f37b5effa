import type { FailureReporter } from "../dependencies/status.js";
import { assertSafeJson } from "../domains/validation.js";
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
 * Every handled client event passes here, so this is where socket payloads meet the JSON input rules (depth, NUL,
 * lone surrogates: src/protocol/json-safety.ts), before any handler or validation sees them. Every argument
 * counts, not only the one handlers read.
 */
function assertSafeArgs(args: unknown[], ack: AckFn | undefined): void {
  const count = ack ? args.length - 1 : args.length;
  for (let i = 0; i < count; i++) assertSafeJson(args[i], i === 0 ? "payload" : `argument ${i + 1}`);
}

/**
 * Runs a client request and answers its acknowledgement: `{ ok: true, ...result }`, or `{ ok: false, error }`
 * with the contract's error body (a request without an ack is still run, or dropped when refused). An unavailable
 * dependency (UNAVAILABLE) is recorded with the dependency's state, logged once per outage; other server faults
 * are logged; client errors are counted.
 */
export async function acknowledge(
  args: unknown[],
  run: (payload: unknown) => Promise<object>,
  observe: { logger: Logger; metrics: Metrics; failures: FailureReporter; context: Record<string, unknown> },
): Promise<void> {
  const { payload, ack } = splitArgs(args);
  let result: object;
  try {
    assertSafeArgs(args, ack);
    result = { ok: true, ...(await run(payload)) };
  } catch (error) {
    const appError: AppError = toAppError(error);
    if (appError.status >= 500 && !observe.failures.failed(error))
      observe.logger.error({ err: error, ...observe.context }, "socket request failed");
    else observe.metrics.clientErrors.inc({ code: appError.code });
    result = { ok: false, error: appError.toBody() };
  }
  ack?.(result);
}
