// The operator's loop at scale: counts and filtered pages with 100,000 tasks in one tenant, and a bulk retry of
// 10,000 failed tasks, next to bare BullMQ doing the same on its own queue.
//
//   npx tsx scripts/bench/operator-loop.ts [--tasks 100000] [--failed 10000] [--requests 200]
//
// One node (no embedded worker: nothing runs, only the operator's calls are measured) on a database of its own.
// `--tasks` tasks are stored directly with one INSERT … SELECT (mixed statuses, four types, two pools, creation
// times spread over 30 days), as a tenant's history would hold them. Each read is sent `--requests` times, one
// at a time, on a keep-alive connection: p50/p95/max. The bulk retry is one `POST /api/v1/tasks/bulk` for the
// `--failed` failed tasks of a pool no worker serves: the time to its answer, then the time until a `/tasks`
// subscriber on another connection has received every task's `task.retried`, and the events stored.
// Bare BullMQ: a queue with `--tasks` jobs (`addBulk`), `getJobCounts()` and `getJobs(["failed"], 0, 49)`, and
// `retryJobs({ state: "failed" })` of `--failed` failed jobs, timed until the failed set is empty.
//
// BENCH_PG_OPTIONS passes PostgreSQL options to the node's connections, e.g. the plans of its slow statements in
// PostgreSQL's log: BENCH_PG_OPTIONS="-c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=50
// -c auto_explain.log_analyze=on" (a superuser's connection, as here).

import { parseArgs } from "node:util";
import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { io } from "socket.io-client";
import { benchRun, LIMITS_OUT_OF_REACH, withDatabase, type BenchRun } from "./bench-run.js";
import { HttpClient, mintToken, now, round, sleep } from "./lib.js";
import { cpuSeconds, cpuSecondsByName, deleteRedisKeys, startProfile, summarizeProfile } from "./procs.js";

const { values } = parseArgs({
  options: {
    tasks: { type: "string", default: "100000" },
    failed: { type: "string", default: "10000" },
    requests: { type: "string", default: "200" },
    profile: { type: "boolean", default: false },
  },
});
const TASKS = Number(values.tasks);
const FAILED = Number(values.failed);
const REQUESTS = Number(values.requests);

const tenant = "oploop-tenant";

function percentiles(values: number[]): { p50: number; p95: number; max: number } {
  values.sort((a, b) => a - b);
  const at = (q: number): number => values[Math.min(values.length - 1, Math.ceil(q * values.length) - 1)]!;
  return { p50: round(at(0.5)), p95: round(at(0.95)), max: round(values[values.length - 1]!) };
}

async function timed(times: number, call: () => Promise<void>): Promise<{ p50: number; p95: number; max: number }> {
  for (let i = 0; i < 5; i++) await call(); // warm: prepared statements, plans, connections
  const samples: number[] = [];
  for (let i = 0; i < times; i++) {
    const start = now();
    await call();
    samples.push(now() - start);
  }
  return percentiles(samples);
}

/** The operator's calls and bare BullMQ's, on the run's node and Redis: see the top of the file. */
async function operatorLoop(run: BenchRun, redis: Redis): Promise<void> {
  const { prefix, redisUrl, log } = run;
  const pgOptions = process.env.BENCH_PG_OPTIONS;
  const node = await run.startSwitchyard({
    ...LIMITS_OUT_OF_REACH,
    EMBEDDED_WORKER: "false",
    ...(pgOptions ? { DATABASE_URL: `${run.databaseUrl}?options=${encodeURIComponent(pgOptions)}` } : {}),
  });
  const auth = { authorization: `Bearer ${mintToken(run.secret, tenant, "bench", ["admin"])}` };
  const http = new HttpClient(node.url, 4);
  const call = async (method: string, url: string, body?: unknown): Promise<string> => {
    const result = await http.request(method, url, body, auth);
    if (result.status >= 300) throw new Error(`${method} ${url} answered ${result.status}: ${result.body.slice(0, 300)}`);
    return result.body;
  };
  await call("GET", "/api/v1/pools"); // creates the tenant and its default pool
  const parked = (JSON.parse(await call("POST", "/api/v1/pools", { name: "parked" })) as { pool: { id: string } }).pool.id;

  log(`seeding ${TASKS} tasks and ${FAILED} failed ones in a pool no worker serves`);
  await withDatabase(run.databaseUrl, async (db) => {
    await db.query(
      `INSERT INTO "Task" ("id", "tenantId", "poolId", "type", "status", "payload", "priority", "maxAttempts", "attempts", "retries", "createdAt", "updatedAt", "finishedAt")
       SELECT gen_random_uuid()::text, $1, CASE WHEN n % 5 = 0 THEN $2 ELSE 'default' END,
              (ARRAY['echo', 'sleep', 'report.build', 'email.send'])[1 + n % 4],
              (ARRAY['completed', 'completed', 'completed', 'completed', 'completed', 'completed', 'failed', 'queued', 'started', 'cancelled'])[1 + n % 10],
              jsonb_build_object('n', n), 50, 1, 1, 0, t, t, t
         FROM generate_series(1, $3::int) AS n, LATERAL (SELECT now() - (n * interval '26 seconds')) AS ts(t)`,
      [tenant, parked, TASKS - FAILED],
    );
    await db.query(
      `INSERT INTO "Task" ("id", "tenantId", "poolId", "type", "status", "payload", "error", "priority", "maxAttempts", "attempts", "retries", "createdAt", "updatedAt", "finishedAt")
       SELECT gen_random_uuid()::text, $1, $2, 'bulk.target', 'failed', '{}', '{"code":"HANDLER_ERROR","message":"boom","retryable":false}', 50, 1, 1, 0, now(), now(), now()
         FROM generate_series(1, $3::int)`,
      [tenant, parked, FAILED],
    );
    await db.query(`ANALYZE "Task"`);
  });

  const aDayAgo = encodeURIComponent(new Date(Date.now() - 24 * 3600_000).toISOString());
  const aWeekAgo = encodeURIComponent(new Date(Date.now() - 7 * 24 * 3600_000).toISOString());
  const somePrefix = (
    JSON.parse(await call("GET", "/api/v1/tasks?limit=1&status=failed")) as { items: Array<{ id: string }> }
  ).items[0]!.id.slice(0, 4);
  const deepCursor = await (async () => {
    let cursor: string | null = null;
    for (let page = 0; page < 20; page++) {
      cursor = (
        JSON.parse(await call("GET", `/api/v1/tasks?limit=200${cursor ? `&cursor=${cursor}` : ""}`)) as { nextCursor: string | null }
      ).nextCursor;
    }
    return cursor!;
  })();
  const reads: Record<string, string> = {
    counts: "/api/v1/tasks/counts",
    "counts of a pool": `/api/v1/tasks/counts?poolId=${parked}`,
    "first page (50)": "/api/v1/tasks?limit=50",
    "status=failed": "/api/v1/tasks?status=failed&limit=50",
    "type + time range": `/api/v1/tasks?type=report.build&createdAfter=${aWeekAgo}&createdBefore=${aDayAgo}&limit=50`,
    "pool + status": `/api/v1/tasks?poolId=${parked}&status=completed&limit=50`,
    "id prefix (q)": `/api/v1/tasks?q=${somePrefix}&limit=50`,
    "page 21 (cursor)": `/api/v1/tasks?limit=50&cursor=${deepCursor}`,
  };
  const switchyardReads: Record<string, { p50: number; p95: number; max: number }> = {};
  for (const [name, url] of Object.entries(reads)) {
    switchyardReads[name] = await timed(REQUESTS, async () => void (await call("GET", url)));
    log(`${name}: p95 ${switchyardReads[name].p95} ms`);
  }

  // The bulk retry, watched by a subscriber of the tenant's whole `tasks` room.
  const socket = io(`${node.url}/tasks`, { transports: ["websocket"], auth: { token: auth.authorization.slice(7) } });
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("connect_error", reject));
  await new Promise<void>((resolve) => socket.emit("subscribe", { room: "tasks" }, () => resolve()));
  let announced = 0;
  let allAnnounced: () => void = () => undefined;
  const everyAnnounced = new Promise<void>((resolve) => (allAnnounced = resolve));
  // The server emits each event under its type.
  socket.on("task.retried", () => {
    if (++announced === FAILED) allAnnounced();
  });
  const profiler = values.profile ? await startProfile(node) : undefined;
  const cpuBefore = cpuSeconds(node.pid);
  // Where the call's time goes: the node, PostgreSQL's backends, Redis; and the node's numbering statements.
  const sumCpu = (comm: string): number => [...cpuSecondsByName(comm).values()].reduce((a, b) => a + b, 0);
  const pgBefore = sumCpu("postgres");
  const redisBefore = sumCpu("redis-server");
  const statementsBefore = await numbering(node.url);
  const bulkStart = now();
  const bulk = JSON.parse(
    await call("POST", "/api/v1/tasks/bulk", { action: "retry", filter: { poolId: parked, status: "failed", type: "bulk.target" } }),
  ) as { matched: number; changed: number };
  const answeredMs = now() - bulkStart;
  await Promise.race([everyAnnounced, sleep(120_000)]);
  const announcedMs = now() - bulkStart;
  const bulkCpuMs = (cpuSeconds(node.pid) - cpuBefore) * 1000;
  const pgCpuMs = (sumCpu("postgres") - pgBefore) * 1000;
  const redisCpuMs = (sumCpu("redis-server") - redisBefore) * 1000;
  const statementsAfter = await numbering(node.url);
  const statements = {
    count: statementsAfter.count - statementsBefore.count,
    seconds: round(statementsAfter.seconds - statementsBefore.seconds),
  };
  const profile = await profiler?.stop();
  if (profile) log(`bulk retry profile: ${JSON.stringify(summarizeProfile(profile, 25), null, 1)}`);
  socket.close();
  const stored = await withDatabase(run.databaseUrl, async (db) =>
    Number(
      (await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM "Event" WHERE "tenantId" = $1 AND "type" = 'task.retried'`, [tenant]))
        .rows[0]!.n,
    ),
  );
  log(`bulk retry: answered in ${round(answeredMs)} ms, ${announced} announced in ${round(announcedMs)} ms, ${stored} stored`);
  log(
    `bulk retry: CPU node ${round(bulkCpuMs)} ms, postgres ${round(pgCpuMs)} ms, redis ${round(redisCpuMs)} ms; ${statements.count} numbering statements taking ${statements.seconds} s`,
  );
  http.close();

  // Bare BullMQ on its own queue.
  log("bare BullMQ: seeding its queue");
  const bullPrefix = `${prefix}-bare`;
  const queue = new Queue("bare", { connection: redis, prefix: bullPrefix });
  for (let start = 0; start < TASKS - FAILED; start += 1000) {
    await queue.addBulk(
      Array.from({ length: Math.min(1000, TASKS - FAILED - start) }, (_, i) => ({
        name: "echo",
        data: { n: start + i },
        opts: { priority: 50 },
      })),
    );
  }
  const failing = new Queue("bare-failing", { connection: redis, prefix: bullPrefix });
  for (let start = 0; start < FAILED; start += 1000) {
    await failing.addBulk(Array.from({ length: Math.min(1000, FAILED - start) }, (_, i) => ({ name: "x", data: { n: start + i } })));
  }
  // BullMQ leaves a connection it was given open on close(): left open, it kept the script from exiting.
  const workerConnection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const worker = new Worker(
    "bare-failing",
    async () => {
      throw new Error("boom");
    },
    { connection: workerConnection, prefix: bullPrefix, concurrency: 200 },
  );
  while ((await failing.getFailedCount()) < FAILED) await sleep(200);
  await worker.close();
  workerConnection.disconnect();
  const bareReads = {
    counts: await timed(REQUESTS, async () => void (await queue.getJobCounts())),
    "failed page (50)": await timed(REQUESTS, async () => void (await failing.getJobs(["failed"], 0, 49))),
  };
  const retryStart = now();
  await failing.retryJobs({ state: "failed", count: 1000 });
  while ((await failing.getFailedCount()) > 0) await sleep(10);
  const bareRetryMs = now() - retryStart;
  await Promise.all([queue.close(), failing.close()]);
  await deleteRedisKeys(redisUrl, bullPrefix).catch(() => undefined);

  process.stdout.write(
    `${JSON.stringify(
      {
        tasks: TASKS,
        requests: REQUESTS,
        switchyard: {
          reads: switchyardReads,
          bulkRetry: {
            ...bulk,
            answeredMs: round(answeredMs),
            announced,
            announcedMs: round(announcedMs),
            nodeCpuMs: round(bulkCpuMs),
            postgresCpuMs: round(pgCpuMs),
            redisCpuMs: round(redisCpuMs),
            numberingStatements: statements,
            storedRetriedEvents: stored,
          },
        },
        bareBullmq: { reads: bareReads, retryJobsMs: round(bareRetryMs) },
        ratios: {
          countsP95: round(switchyardReads["counts"]!.p95 / bareReads.counts.p95),
          failedPageP95: round(switchyardReads["status=failed"]!.p95 / bareReads["failed page (50)"].p95),
          bulkRetry: round(announcedMs / bareRetryMs),
        },
      },
      null,
      2,
    )}\n`,
  );
}

const redis = new Redis(process.env.REDIS_URL || "redis://127.0.0.1:6379", { maxRetriesPerRequest: null });
try {
  await benchRun({ tag: "oploop", log: (message) => void process.stderr.write(`[operator-loop] ${message}\n`) }, (run) =>
    operatorLoop(run, redis),
  );
} finally {
  redis.disconnect();
}

/** The node's numbering statements so far (count and seconds), from its /metrics. */
async function numbering(url: string): Promise<{ count: number; seconds: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const value = (suffix: string): number =>
    Number(
      new RegExp(`^switchyard_db_query_duration_seconds_${suffix}\\{[^}]*operation="event_numbering"[^}]*\\} (\\S+)$`, "m").exec(
        text,
      )?.[1] ?? 0,
    );
  return { count: value("count"), seconds: value("sum") };
}
