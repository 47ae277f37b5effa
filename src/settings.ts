import { z } from "zod";

/** Where PostgreSQL is when DATABASE_URL is not set: the server's, `npm run migrate`'s and the scripts' default. */
export const DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/switchyard";

/**
 * Where Redis is: every connection of a process is made from this, so one setting moves all of them. Part of the
 * configuration (the server's and the standalone worker's), so it is declared here, below the Redis plumbing.
 */
export interface RedisTarget {
  url: string;
  /** Set in cluster mode: the seed nodes; ioredis discovers the rest of the cluster from them. */
  clusterNodes?: ReadonlyArray<{ host: string; port: number }>;
}

/** `host:port,host:port` → seed nodes; undefined for an empty value. Throws on a malformed entry. */
export function parseClusterNodes(value: string | undefined): Array<{ host: string; port: number }> | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  return value.split(",").map((entry) => {
    const match = /^\s*([^\s:,]+|\[[0-9a-fA-F:]+\]):(\d{1,5})\s*$/.exec(entry);
    const port = match ? Number(match[2]) : NaN;
    if (!match || port < 1 || port > 65535) throw new Error(`"${entry.trim()}" is not host:port`);
    return { host: match[1]!.replace(/^\[|\]$/g, ""), port };
  });
}

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
export const DEFAULT_JWT_MAX_LIFETIME_S = 30 * 24 * 3600;
export const JWT_MAX_LIFETIME_S = positiveInt.default(DEFAULT_JWT_MAX_LIFETIME_S);

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
