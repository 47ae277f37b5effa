import { z } from "zod";
import { parseClusterNodes } from "./jobs/redis-connection.js";

/**
 * The settings the server (config.ts) and the standalone worker (worker/config.ts) both read, each parsed here
 * once, so that one variable means the same, with the same default, in either process.
 */

export const positiveInt = z.coerce.number({ message: "must be a number" }).int().positive();

/** A string that parses as a URL of one of `protocols` (with their colon: "redis:"). */
export const urlString = (protocols: string[]) =>
  z.string().refine(
    (value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    { message: `must be a URL (${protocols.join(" or ")})` },
  );

/** Where Redis is (a RedisTarget): apart from SharedEnv, because a hub-mode worker never reads them. */
export const RedisEnv = {
  REDIS_URL: urlString(["redis:", "rediss:"]).default("redis://127.0.0.1:6379"),
  REDIS_CLUSTER_NODES: z
    .string()
    .optional()
    .transform((value, ctx) => {
      try {
        return parseClusterNodes(value);
      } catch (error) {
        ctx.addIssue({ code: "custom", message: `${(error as Error).message} (expected host:port,host:port,...)` });
        return z.NEVER;
      }
    }),
};

/** Longest accepted token lifetime: the server refuses longer ones, and `npm run token` does not mint them. */
export const JWT_MAX_LIFETIME_S = positiveInt.default(30 * 24 * 3600);

export const SharedEnv = {
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1-64 letters, digits, '_', '.' or '-'")
    .default("switchyard"),
  TASK_LOCK_MS: positiveInt.default(30_000),
  TASK_BACKOFF_MS: positiveInt.default(1_000),
  DEPENDENCY_TIMEOUT_MS: positiveInt.default(2_000),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  LOG_FORMAT: z.enum(["json", "pretty"]).optional(),
  NODE_ENV: z.string().optional(),
};

/** One line per bad variable, as both processes report them: `VARIABLE: what is wrong`. */
export function problemLines(error: z.ZodError): string[] {
  return error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
}

/** LOG_FORMAT, or by default readable lines for a person at a terminal in development; JSON for production and for anything piped. */
export function logFormat(format: "json" | "pretty" | undefined, nodeEnv: string | undefined): "json" | "pretty" {
  return format ?? (nodeEnv === "production" || !process.stdout.isTTY ? "json" : "pretty");
}
