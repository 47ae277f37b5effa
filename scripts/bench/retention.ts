// Event-log retention at a few million stored events: how long a retention pass takes, what it deletes, and what
// it does to publishing meanwhile (append latency before and during, and how many lock waits it causes).
//
//   npx tsx scripts/bench/retention.ts [--events 3000000] [--rooms 1000] [--days 10] [--rate 500]
//
// It fills a database of its own with `--events` stored events spread evenly over `--rooms` rooms and the last
// `--days` days (one INSERT … SELECT from generate_series: the fill is not what is measured), then publishes at
// `--rate` events per second through the real EventLogWriter for 10 s (quiet), then keeps publishing while one
// retention pass runs (the real EventRetention.trim with a 7-day age limit and the default 10,000 events per
// room), then 5 s more. Prints a JSON summary. The database is dropped at the end.

import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { createDatabase } from "../../src/db/client.js";
import { dropDatabase, setupDatabase } from "../../src/db/setup.js";
import { DependencyStatus } from "../../src/dependencies/status.js";
import { EventLogWriter } from "../../src/events/event-log-writer.js";
import { EventRetention } from "../../src/events/retention.js";
import { RedisKeys } from "../../src/jobs/redis-keys.js";
import { createLogger } from "../../src/observability/logger.js";
import { benchDatabaseUrl } from "./bench-run.js";

const { values } = parseArgs({
  options: {
    events: { type: "string", default: "3000000" },
    rooms: { type: "string", default: "1000" },
    days: { type: "string", default: "10" },
    rate: { type: "string", default: "500" },
  },
});
const EVENTS = Number(values.events);
const ROOMS = Number(values.rooms);
const DAYS = Number(values.days);
const RATE = Number(values.rate);
const RETENTION_MS = 7 * 24 * 3600 * 1000;
const PER_ROOM = 10_000;

const databaseUrl = benchDatabaseUrl(`bench_retention_${process.pid}`);
const log = (line: string): void => void process.stderr.write(`[retention] ${line}\n`);

await setupDatabase(databaseUrl);
const logger = createLogger({ level: "warn", nodeId: "bench-retention", format: "json" });
const status = new DependencyStatus(logger, { deadlineMs: 60_000 });
// A generous deadline: the fill is one statement over millions of rows.
const db = createDatabase(databaseUrl, { deadlineMs: 600_000, status });
const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");

try {
  const fillStarted = performance.now();
  const perRoom = Math.ceil(EVENTS / ROOMS);
  // Event n of room r is the (r, n)-th of the fill; its time spreads the room's events evenly over DAYS days,
  // oldest first, so seq and ts rise together as they do in a live log.
  await db.sql.query(
    `INSERT INTO "Event" ("tenantId", "namespace", "room", "seq", "eventId", "type", "data", "ts")
     SELECT 'bench', 'tasks', 'r' || r, n, md5(r::text || ':' || n), 'bench.progress',
            jsonb_build_object('task', jsonb_build_object('id', 'r' || r, 'progress', n % 100, 'status', 'started')),
            (now() AT TIME ZONE 'UTC') - make_interval(secs => ($3::float8 * 86400) * (1 - n::float8 / $2))
     FROM generate_series(1, $1::int) AS r, generate_series(1, $2::int) AS n`,
    [ROOMS, perRoom, DAYS],
  );
  await db.sql.query(
    `INSERT INTO "RoomSequence" ("tenantId", "namespace", "room", "seq", "epoch")
     SELECT 'bench', 'tasks', 'r' || r, $2::int, 'benchepoch' FROM generate_series(1, $1::int) AS r`,
    [ROOMS, perRoom],
  );
  await db.sql.query(`VACUUM ANALYZE "Event"`);
  const [size] = await db.sql.query<Array<{ rows: string; bytes: string }>>(
    `SELECT (SELECT count(*) FROM "Event")::text AS rows, pg_total_relation_size('"Event"')::text AS bytes`,
  );
  log(
    `filled ${size!.rows} events (${(Number(size!.bytes) / 2 ** 20).toFixed(0)} MiB with indexes) in ${((performance.now() - fillStarted) / 1000).toFixed(1)} s`,
  );

  const events = new EventLogWriter(db.sql);
  const retention = new EventRetention(db.sql, redis, logger, {
    keys: new RedisKeys(`bench-retention-${process.pid}`),
    failures: status,
    statementTimeoutMs: 600_000,
    maxAgeMs: RETENTION_MS,
    maxPerRoom: PER_ROOM,
    intervalMs: 3_600_000,
  });

  /** Publishes at RATE events/s into random rooms until `until` resolves; returns each append's latency in ms. */
  async function publishUntil(until: Promise<unknown>): Promise<number[]> {
    const latencies: number[] = [];
    let done = false;
    void until.finally(() => (done = true));
    const inflight = new Set<Promise<void>>();
    const started = performance.now();
    let sent = 0;
    while (!done) {
      const due = Math.floor(((performance.now() - started) / 1000) * RATE);
      for (; sent < due; sent++) {
        const t0 = performance.now();
        const p = events
          .append({
            tenantId: "bench",
            targets: [{ namespace: "tasks", room: `r${1 + (sent % ROOMS)}` }],
            eventId: crypto.randomUUID(),
            type: "bench.progress",
            data: { n: sent },
            ts: new Date(),
          })
          .then(() => void latencies.push(performance.now() - t0));
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await Promise.all(inflight);
    return latencies;
  }

  const stats = (ms: number[]) => {
    const sorted = [...ms].sort((a, b) => a - b);
    const at = (q: number) => Number((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0).toFixed(1));
    return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: at(1) };
  };

  const quiet = stats(await publishUntil(new Promise((resolve) => setTimeout(resolve, 10_000))));
  log(`quiet: ${JSON.stringify(quiet)}`);

  // Lock waits seen while retention runs: sampled every 100 ms from pg_locks.
  let lockWaitSamples = 0;
  let maxWaiting = 0;
  const sampler = setInterval(() => {
    void db.sql.query<Array<{ waiting: number }>>(`SELECT count(*)::int AS waiting FROM pg_locks WHERE NOT granted`).then(([row]) => {
      if (row && row.waiting > 0) lockWaitSamples++;
      maxWaiting = Math.max(maxWaiting, row?.waiting ?? 0);
    });
  }, 100);
  const trimStarted = performance.now();
  const trimming = retention.trim().then((deleted) => ({ deleted, ms: performance.now() - trimStarted }));
  const during = stats(await publishUntil(trimming));
  clearInterval(sampler);
  const trim = await trimming;
  log(`retention pass: deleted ${trim.deleted} in ${(trim.ms / 1000).toFixed(1)} s; during: ${JSON.stringify(during)}`);
  const after = stats(await publishUntil(new Promise((resolve) => setTimeout(resolve, 5_000))));
  const second = performance.now();
  const again = await retention.trim();
  const secondMs = performance.now() - second;

  console.log(
    JSON.stringify(
      {
        command: `npx tsx scripts/bench/retention.ts --events ${EVENTS} --rooms ${ROOMS} --days ${DAYS} --rate ${RATE}`,
        stored: Number(size!.rows),
        storedMiB: Math.round(Number(size!.bytes) / 2 ** 20),
        retentionPass: { deleted: trim.deleted, seconds: Number((trim.ms / 1000).toFixed(2)) },
        nextPassWithNothingToDo: { deleted: again, seconds: Number((secondMs / 1000).toFixed(2)) },
        appendLatencyMs: { quiet, duringRetention: during, after },
        lockWaits: { samplesWithWaiters: lockWaitSamples, maxWaiting },
      },
      null,
      2,
    ),
  );
} finally {
  status.stop();
  await db.close();
  redis.disconnect();
  await dropDatabase(databaseUrl);
}
