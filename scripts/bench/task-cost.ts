// What one echo task costs the database: rows written per table, and WAL bytes for a task with a large payload.
//
//   npx tsx scripts/bench/task-cost.ts [--tasks 200] [--concurrency 16] [--payload-kib 128] [--wal-tasks 10]
//
// One node (embedded worker) on a database of its own. Rows: `--tasks` echo tasks with a small payload, submitted
// `--concurrency` at a time and waited for; the row counts are the differences of pg_stat_user_tables (inserted,
// updated, deleted tuples) per table, divided by the number of tasks. WAL: `--wal-tasks` echo tasks, one at a time,
// each with `--payload-kib` KiB of incompressible data (base64 of random bytes) as its payload and so as its
// result too; the figure is the growth of pg_current_wal_lsn() per task, and that per payload byte. Everything
// else on the machine that writes WAL counts too (the shared PostgreSQL): run it on a quiet machine.
// A bare-BullMQ peer has no rows and no WAL, so this script has none: compare it with the same script run on an
// earlier commit (docs/performance.md has both).

import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { benchRun, LIMITS_OUT_OF_REACH, withDatabase } from "./bench-run.js";
import { HttpClient, mintToken, round, sleep } from "./lib.js";

const { values } = parseArgs({
  options: {
    tasks: { type: "string", default: "200" },
    concurrency: { type: "string", default: "16" },
    "payload-kib": { type: "string", default: "128" },
    "wal-tasks": { type: "string", default: "10" },
  },
});
const TASKS = Number(values.tasks);
const CONCURRENCY = Number(values.concurrency);
const PAYLOAD_BYTES = Number(values["payload-kib"]) * 1024;
const WAL_TASKS = Number(values["wal-tasks"]);

type TableWrites = Record<string, { inserted: number; updated: number; deleted: number }>;

/** Tuples written so far, per table. A backend publishes its counters at most once a second, and an idle one only after 10 s (PostgreSQL 15): wait for them. */
async function tableWrites(databaseUrl: string): Promise<TableWrites> {
  await sleep(11_000);
  return withDatabase(databaseUrl, async (client) => {
    const { rows } = await client.query<{ relname: string; ins: string; upd: string; del: string }>(
      `SELECT relname, n_tup_ins::text AS ins, n_tup_upd::text AS upd, n_tup_del::text AS del FROM pg_stat_user_tables`,
    );
    return Object.fromEntries(rows.map((r) => [r.relname, { inserted: Number(r.ins), updated: Number(r.upd), deleted: Number(r.del) }]));
  });
}

async function walLsn(databaseUrl: string): Promise<bigint> {
  return withDatabase(databaseUrl, async (client) => {
    const { rows } = await client.query<{ bytes: string }>(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS bytes`);
    return BigInt(rows[0]!.bytes);
  });
}

await benchRun({ tag: "cost" }, async (run) => {
  const node = await run.startSwitchyard({ ...LIMITS_OUT_OF_REACH, EMBEDDED_WORKER: "true" });
  const auth = { authorization: `Bearer ${mintToken(run.secret, "cost-tenant", "bench", ["admin"])}` };
  const http = new HttpClient(node.url, CONCURRENCY);

  const runTask = async (payload: unknown): Promise<void> => {
    const submitted = await http.request("POST", "/api/v1/tasks", { type: "echo", payload }, auth);
    if (submitted.status !== 202) throw new Error(`submit answered ${submitted.status}: ${submitted.body}`);
    const id = (JSON.parse(submitted.body) as { task: { id: string } }).task.id;
    for (;;) {
      const read = JSON.parse((await http.request("GET", `/api/v1/tasks/${id}`, undefined, auth)).body) as { task: { status: string } };
      if (read.task.status === "completed") return;
      if (read.task.status === "failed" || read.task.status === "cancelled") throw new Error(`task ${id} ${read.task.status}`);
      await sleep(5);
    }
  };
  const runMany = async (count: number, concurrency: number, payload: () => unknown): Promise<void> => {
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < count) {
          next++;
          await runTask(payload());
        }
      }),
    );
  };

  // Warm-up: the tenant, its default pool, the rooms and the worker's presence exist before anything is counted.
  await runMany(20, 4, () => ({ warm: true }));
  const before = await tableWrites(run.databaseUrl);
  await runMany(TASKS, CONCURRENCY, () => ({ hello: "world" }));
  const after = await tableWrites(run.databaseUrl);
  const perTable: Record<string, { inserted: number; updated: number; deleted: number }> = {};
  let total = 0;
  for (const [table, counts] of Object.entries(after)) {
    const was = before[table] ?? { inserted: 0, updated: 0, deleted: 0 };
    const row = {
      inserted: round((counts.inserted - was.inserted) / TASKS),
      updated: round((counts.updated - was.updated) / TASKS),
      deleted: round((counts.deleted - was.deleted) / TASKS),
    };
    const sum = row.inserted + row.updated + row.deleted;
    if (sum > 0) perTable[table] = row;
    total += sum;
  }

  const payload = () => ({
    blob: randomBytes(Math.ceil((PAYLOAD_BYTES * 3) / 4))
      .toString("base64")
      .slice(0, PAYLOAD_BYTES),
  });
  await runMany(3, 1, payload); // pages touched once since the last checkpoint (full-page images) are not the task's
  const walBefore = await walLsn(run.databaseUrl);
  await runMany(WAL_TASKS, 1, payload);
  const walAfter = await walLsn(run.databaseUrl);
  const walPerTask = Number(walAfter - walBefore) / WAL_TASKS;

  process.stdout.write(
    `${JSON.stringify(
      {
        tasks: TASKS,
        concurrency: CONCURRENCY,
        rowsWrittenPerTask: { total: round(total), perTable },
        wal: {
          payloadBytes: PAYLOAD_BYTES,
          tasks: WAL_TASKS,
          bytesPerTask: Math.round(walPerTask),
          timesPayload: round(walPerTask / PAYLOAD_BYTES),
        },
      },
      null,
      2,
    )}\n`,
  );
  http.close();
});
