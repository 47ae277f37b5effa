import type { z } from "zod";
import { BadRequestError } from "../errors.js";

/** Validates client input; a failure names every offending field in `details`. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, what = "body"): z.infer<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const details = result.error.issues.map((issue) => ({
    field: issue.path.length > 0 ? issue.path.join(".") : what,
    message: issue.message,
  }));
  const fields = [...new Set(details.map((d) => d.field))].join(", ");
  throw new BadRequestError(`invalid ${what}: ${fields}`, details);
}
