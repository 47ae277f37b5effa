import { Redis } from "ioredis";
import { dropDatabase, setupDatabase } from "../../scripts/db-setup.js";
import { TEST_DATABASE_URL, TEST_REDIS_PREFIX, TEST_REDIS_URL } from "./env.js";
import { killAllServers, killAllWorkers, serverProblems } from "./server.js";
import { closeAllClients } from "./clients.js";
import { closeAllRawSockets } from "./raw-socket.js";

/** One database per test run, migrated once; dropped with every row in it at the end. */
export async function mochaGlobalSetup(): Promise<void> {
  await setupDatabase(TEST_DATABASE_URL, { generate: false });
}

export async function mochaGlobalTeardown(): Promise<void> {
  closeAllClients();
  closeAllRawSockets();
  await killAllServers();
  await dropDatabase(TEST_DATABASE_URL);
  // Every Redis key of this run (queues, presence, adapter) carries the run's prefix.
  const redis = new Redis(TEST_REDIS_URL);
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${TEST_REDIS_PREFIX}*`, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}

export const mochaHooks = {
  async afterEach(this: Mocha.Context): Promise<void> {
    closeAllClients();
    closeAllRawSockets();
    await killAllWorkers();
    if (this.currentTest?.state === "failed") {
      const problems = serverProblems();
      if (problems) process.stderr.write(`\n--- server warnings/errors around "${this.currentTest.title}" ---\n${problems}\n`);
    }
  },
};
