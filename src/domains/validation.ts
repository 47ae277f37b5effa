import type { z } from "zod";
import { BadRequestError } from "../errors.js";
import { findJsonProblem, type JsonProblem } from "../protocol/json-safety.js";

/** Validates client input; a failure names every offending field in `details`. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, what = "body"): z.infer<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const field = (path: PropertyKey[]): string => (path.length > 0 ? path.map(String).join(".") : what);
  // An unknown key is named itself (`colour`, `task.retries`), not the object that holds it.
  const details = result.error.issues.flatMap((issue) =>
    issue.code === "unrecognized_keys"
      ? issue.keys.map((key) => ({ field: field([...issue.path, key]), message: "is not a known field" }))
      : [{ field: field(issue.path), message: issue.message }],
  );
  const fields = [...new Set(details.map((d) => d.field))].join(", ");
  throw new BadRequestError(`invalid ${what}: ${fields}`, details);
}

/**
 * The 400 for input that breaks the JSON input rules (depth, NUL, lone surrogates: src/protocol/json-safety.ts),
 * naming the problem and where it is, in the `{ field, message }` form of validation errors.
 */
export function jsonProblemError(problem: JsonProblem, what: string): BadRequestError {
  const field = problem.path || what;
  const where = problem.path ? `${what} at ${problem.path}` : what;
  return new BadRequestError(`invalid ${where}: ${problem.message}`, [{ field, message: problem.message }]);
}

/** Throws a 400 BAD_REQUEST when a parsed client value breaks the JSON input rules; run before validating it. */
export function assertSafeJson(value: unknown, what: string): void {
  const problem = findJsonProblem(value);
  if (problem) throw jsonProblemError(problem, what);
}
