import { findJsonProblem } from "../protocol/json-safety.js";

/** Room the rest of a `completed` report (ids, lease, framing) takes within the node's payload limit. */
const REPORT_OVERHEAD_BYTES = 4096;

export type SendableResult = { ok: true; value: unknown } | { ok: false; problem: string };

/**
 * A handler's return value as the server will receive it (JSON: a Date becomes its string, `undefined` members
 * go), or why it cannot be sent: not JSON at all (a BigInt, a cycle), breaking the input rules every stored
 * payload meets, or too big for the node's payload limit. Sent anyway, the first would never leave the worker, the
 * second would be refused, and the third would cut the connection on every try: the task would hang until the
 * reconciler, instead of failing with a reason.
 */
export function sendableResult(result: unknown, maxPayloadBytes: number): SendableResult {
  let json: string | undefined;
  try {
    json = JSON.stringify(result ?? null);
  } catch (error) {
    return { ok: false, problem: `is not JSON: ${(error as Error).message}` };
  }
  if (json === undefined) return { ok: false, problem: `is not JSON: a ${typeof result}` };
  const bytes = Buffer.byteLength(json);
  const limit = maxPayloadBytes - REPORT_OVERHEAD_BYTES;
  if (bytes > limit) return { ok: false, problem: `is ${bytes} bytes of JSON; the server takes at most ${limit}` };
  const value: unknown = JSON.parse(json);
  const problem = findJsonProblem(value);
  if (problem) return { ok: false, problem: `at ${problem.path || "its top level"} ${problem.message}` };
  return { ok: true, value };
}
