// A backend publishing into many rooms of a node that has not looked them up yet (a node just started or
// deployed): how long the first concurrent batches take, and how many ownership lookups the node makes.
//
//   npx tsx scripts/bench/cold-rooms.ts [--rooms 100] [--batches 32] [--per-batch 50]
//
// One node on a database of its own. The tenant gets `--rooms` pools; then `--batches` POST /api/v1/events calls
// go out at once, each with `--per-batch` events to random `pool:<id>` rooms of those pools, and the same again
// once the node knows the rooms (warm). Prints a JSON summary: wall time and per-call latency, cold and warm, and
// the transactions the node committed in its database meanwhile (pg_stat_database; each ownership lookup is one).

import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { dropDatabase } from "../../src/db/setup.js";
import { HttpClient, mintToken, round, summarize } from "./lib.js";
import { deleteRedisKeys, repoRoot, runCommand, startSwitchyard, stopAll, type ServerHandle } from "./procs.js";

const { values } = parseArgs({
  options: { rooms: { type: "string", default: "100" }, batches: { type: "string", default: "32" }, "per-batch": { type: "string", default: "50" } },
});
const ROOMS = Number(values.rooms);
const BATCHES = Number(values.batches);
const PER_BATCH = Number(values["per-batch"]);

const run = randomBytes(4).toString("hex");
const redisUrl = process.env.REDIS_URL || "redis://127.0.0.1:6379";
const secret = `cold-secret-${run}-${randomBytes(16).toString("hex")}`;
const dbUrl = new URL(process.env.DATABASE_URL || "postgresql://postgres@127.0.0.1:5432/switchyard");
dbUrl.pathname = `/switchyard_cold_${run}`;
const logDir = path.join(repoRoot, "bench", "results", "tmp", `cold-${run}`);
mkdirSync(logDir, { recursive: true });

/** Transactions committed in the run's database so far (PostgreSQL flushes these counters about once a second). */
async function commits(): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const client = new pg.Client({ connectionString: dbUrl.toString() });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>("SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = current_database()");
    return Number(rows[0]!.n);
  } finally {
    await client.end();
  }
}

let node: ServerHandle | undefined;
try {
  await runCommand(process.execPath, ["--import", "tsx", "scripts/bench/db.ts", dbUrl.toString()], path.join(logDir, "db-setup.log"));
  node = await startSwitchyard(
    `cold-${run}`,
    { DATABASE_URL: dbUrl.toString(), REDIS_URL: redisUrl, REDIS_PREFIX: `cold-${run}`, JWT_SECRET: secret, LOG_LEVEL: "info", REST_RATE_PER_TENANT: "100000", NODE_WORK_CONCURRENCY: "256", TENANT_WORK_CONCURRENCY: "256" },
    path.join(logDir, "switchyard.log"),
  );
  const auth = { authorization: `Bearer ${mintToken(secret, "cold-tenant", "bench", ["admin", "events:publish"])}` };
  const http = new HttpClient(node.url, BATCHES);
  const pools: string[] = [];
  for (let i = 0; i < ROOMS; i++) pools.push((JSON.parse(String((await http.request("POST", "/api/v1/pools", { name: `cold-${i}` }, auth)).body)) as { pool: { id: string } }).pool.id);

  const burst = async (): Promise<{ wallMs: number; latency: Record<string, number>; statuses: Record<string, number> }> => {
    const latencies: number[] = [];
    const statuses: Record<string, number> = {};
    const started = performance.now();
    await Promise.all(
      Array.from({ length: BATCHES }, async () => {
        const events = Array.from({ length: PER_BATCH }, (_, i) => ({
          namespace: "pools",
          room: `pool:${pools[Math.floor(Math.random() * pools.length)]}`,
          type: "deploy.step",
          data: { i },
        }));
        const t0 = performance.now();
        const response = await http.request("POST", "/api/v1/events", { events }, auth);
        latencies.push(performance.now() - t0);
        statuses[response.status] = (statuses[response.status] ?? 0) + 1;
      }),
    );
    const latency = Object.fromEntries(Object.entries(summarize(latencies)).map(([k, v]) => [k, round(v)]));
    return { wallMs: round(performance.now() - started), latency, statuses };
  };
  const before = await commits();
  const cold = await burst();
  const afterCold = await commits();
  const warm = await burst();
  const afterWarm = await commits();
  process.stdout.write(
    `${JSON.stringify(
      {
        rooms: ROOMS,
        batches: BATCHES,
        perBatch: PER_BATCH,
        cold,
        warm,
        // The probe's own connection commits a transaction or two: compare runs, not absolutes.
        transactionsCommitted: { cold: afterCold - before, warm: afterWarm - afterCold },
      },
      null,
      2,
    )}\n`,
  );
} finally {
  await node?.stop();
  await stopAll();
  await dropDatabase(dbUrl.toString()).catch(() => undefined);
  await deleteRedisKeys(redisUrl, `cold-${run}`).catch(() => undefined);
  rmSync(logDir, { recursive: true, force: true });
}
