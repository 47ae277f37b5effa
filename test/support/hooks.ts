import { dropDatabase, setupDatabase } from "../../src/db/setup.js";
import { TEST_DATABASE_URL, TEST_REDIS_PREFIX, TEST_REDIS_URL } from "./env.js";
import { killAllServers, killAllWorkers, serverProblems } from "./server.js";
import { closeAllClients } from "./clients.js";
import { closeAllRawSockets } from "./raw-socket.js";
import { killAllCli } from "./cli.js";
import { deleteRedisKeys } from "./redis-cleanup.js";
import { closeAllTracked } from "./tracked.js";
import { failIfLeftOpen } from "./left-open.js";
import { dropIsolatedDatabases } from "./isolation.js";

/** One database per test run, migrated once; dropped with every row in it at the end. */
export async function mochaGlobalSetup(): Promise<void> {
  await setupDatabase(TEST_DATABASE_URL, { generate: false });
}

export async function mochaGlobalTeardown(): Promise<void> {
  try {
    await closeAllTracked();
    closeAllClients();
    closeAllRawSockets();
    await killAllCli();
    await killAllServers();
    await dropDatabase(TEST_DATABASE_URL);
    await dropIsolatedDatabases();
    // Every Redis key of this run (queues, presence, adapter) carries the run's prefix.
    await deleteRedisKeys(TEST_REDIS_URL, TEST_REDIS_PREFIX);
  } finally {
    failIfLeftOpen();
  }
}

export const mochaHooks = {
  async afterEach(this: Mocha.Context): Promise<void> {
    await closeAllTracked();
    closeAllClients();
    closeAllRawSockets();
    await killAllWorkers();
    await killAllCli();
    if (this.currentTest?.state === "failed") {
      const problems = serverProblems();
      if (problems) process.stderr.write(`\n--- server warnings/errors around "${this.currentTest.title}" ---\n${problems}\n`);
    }
  },
};
