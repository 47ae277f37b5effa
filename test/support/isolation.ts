import { randomBytes } from "node:crypto";
import { TEST_REDIS_PREFIX } from "./env.js";

/**
 * A Redis prefix of a test's own, inside the run's (so the run's teardown would catch what a crash left). Nodes on
 * it share no queue, adapter channel or worker presence with the run's other nodes, so their counts are theirs.
 */
export function isolatedPrefix(label: string): string {
  return `${TEST_REDIS_PREFIX}-${label}${randomBytes(3).toString("hex")}`;
}

/**
 * Settings for nodes on an isolated prefix. The database is the run's, shared: their reconciler would compare
 * other tests' tasks with queues of this prefix (where no job is) and requeue them here, so it stays idle.
 */
export function isolatedNodeEnv(prefix: string): Record<string, string> {
  return { REDIS_PREFIX: prefix, RECONCILE_INTERVAL_MS: "3600000" };
}
