// A backend publishing into many rooms of a node that has not looked them up yet (a node just started or
// deployed): how long the first concurrent batches take, and how many ownership lookups the node makes.
//
//   npx tsx scripts/bench/cold-rooms.ts [--rooms 100] [--batches 32] [--per-batch 50]
//
// One node on a database of its own. The tenant gets `--rooms` pools; then `--batches` POST /api/v1/events calls
// go out at once, each with `--per-batch` events to random `pool:<id>` rooms of those pools, and the same again
// once the node knows the rooms (warm). Prints a JSON summary: wall time and per-call latency, cold and warm, and
// the transactions the node committed in its database meanwhile (pg_stat_database; each ownership lookup is one).

import { parseArgs } from "node:util";
import { benchRun, LIMITS_OUT_OF_REACH, withDatabase } from "./bench-run.js";
import { HttpClient, mintToken, round, roundSummary, summarize, type Summary } from "./lib.js";

const { values } = parseArgs({
  options: {
    rooms: { type: "string", default: "100" },
    batches: { type: "string", default: "32" },
    "per-batch": { type: "string", default: "50" },
  },
});
const ROOMS = Number(values.rooms);
const BATCHES = Number(values.batches);
const PER_BATCH = Number(values["per-batch"]);

/** Transactions committed in the run's database so far (PostgreSQL flushes these counters about once a second). */
async function commits(databaseUrl: string): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 1500));
  return withDatabase(databaseUrl, async (client) => {
    const { rows } = await client.query<{ n: string }>(
      "SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = current_database()",
    );
    return Number(rows[0]!.n);
  });
}

await benchRun({ tag: "cold" }, async (run) => {
  const node = await run.startSwitchyard(LIMITS_OUT_OF_REACH);
  const auth = { authorization: `Bearer ${mintToken(run.secret, "cold-tenant", "bench", ["admin", "events:publish"])}` };
  const http = new HttpClient(node.url, BATCHES);
  const pools: string[] = [];
  for (let i = 0; i < ROOMS; i++)
    pools.push(
      (JSON.parse(String((await http.request("POST", "/api/v1/pools", { name: `cold-${i}` }, auth)).body)) as { pool: { id: string } }).pool
        .id,
    );

  const burst = async (): Promise<{ wallMs: number; latency: Summary; statuses: Record<string, number> }> => {
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
    const latency = roundSummary(summarize(latencies));
    return { wallMs: round(performance.now() - started), latency, statuses };
  };
  const before = await commits(run.databaseUrl);
  const cold = await burst();
  const afterCold = await commits(run.databaseUrl);
  const warm = await burst();
  const afterWarm = await commits(run.databaseUrl);
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
});
