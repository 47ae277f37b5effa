import { randomBytes } from "node:crypto";
import { dropDatabase, setupDatabase } from "../../src/db/setup.js";
import { TEST_DATABASE_URL, TEST_REDIS_PREFIX } from "./env.js";

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

// On globalThis because mocha may load support modules twice (the --require hooks and the specs).
const registry = globalThis as typeof globalThis & { __switchyardDatabases?: Set<string> };
const databases = (registry.__switchyardDatabases ??= new Set<string>());

/**
 * A migrated database of a file's own (the run's name plus `label`), for nodes that run background work over the
 * whole database (a fast reconciler, a short retention): on the run's database they would requeue or trim other
 * files' tasks and rooms. Dropped by the run's teardown.
 */
export async function isolatedDatabase(label: string): Promise<string> {
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `${url.pathname}_${label}`;
  databases.add(url.toString());
  await setupDatabase(url.toString(), { generate: false });
  return url.toString();
}

/** Drops every database isolatedDatabase created (the run's teardown). */
export async function dropIsolatedDatabases(): Promise<void> {
  for (const url of databases) await dropDatabase(url);
  databases.clear();
}
