// Recurring schedules at scale: how many tasks each due time makes (must be exactly 1) and how late they are.
//
//   npx tsx scripts/bench/schedules.ts [--schedules 1000] [--every 1000] [--seconds 30]
//
// Two Switchyard nodes on a database and Redis prefix of their own. One tenant gets `--schedules` schedules of
// `--every` ms (created 16 at a time through node A); their tasks go to a pool no worker serves, so the nodes spend
// their time firing schedules, not running echo tasks. After `--seconds`, every schedule is paused and the tasks are
// read back from PostgreSQL: for each schedule the due times it fired (from each task's Idempotency-Key), whether
// any due time in its run was missed or made more than one task, and the lateness of each task (its createdAt, the
// time its insert ran, minus its due time).
//
// The bare peer, in the same run once the nodes are stopped: the same number of BullMQ job schedulers (`every`) on
// a queue of their own, and two processes each running a bare BullMQ Worker (concurrency 50, Switchyard's) that
// only records how late it took each job. Prints one JSON summary (and writes bench/results/schedules.json).

import { fork } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { benchRun, LIMITS_OUT_OF_REACH, withDatabase, type BenchRun } from "./bench-run.js";
import { HttpClient, machineInfo, mintToken, roundSummary, sleep, summarize } from "./lib.js";
import { CpuMeter, repoRoot, type ServerHandle } from "./procs.js";

// ---------------------------------------------------------------------------------------------------------------
// The bare peer's worker process (forked with --bare-worker <prefix> <seconds>).
if (process.argv[2] === "--bare-worker") {
  const [prefix, seconds] = [process.argv[3]!, Number(process.argv[4])];
  const connection = new Redis(process.env.REDIS_URL || "redis://127.0.0.1:6379", { maxRetriesPerRequest: null });
  const lateness: number[] = [];
  const seen = new Set<string>();
  let repeated = 0;
  const worker = new Worker(
    "bare-schedules",
    async (job) => {
      const due = Number(/:(\d+)$/.exec(job.id ?? "")?.[1]);
      lateness.push(Date.now() - due);
      if (seen.has(job.id!)) repeated++;
      seen.add(job.id!);
    },
    { connection, prefix, concurrency: 50 },
  );
  await worker.waitUntilReady();
  process.send!({ ready: true });
  await sleep(seconds * 1000);
  await worker.close();
  connection.disconnect();
  // Exit only once the message is out: exiting at once can drop it. Nothing below runs in this process.
  process.send!({ lateness, ids: [...seen], repeated }, () => process.exit(0));
  await new Promise<never>(() => undefined);
}

const { values } = parseArgs({
  options: {
    schedules: { type: "string", default: "1000" },
    every: { type: "string", default: "1000" },
    seconds: { type: "string", default: "30" },
  },
});
const SCHEDULES = Number(values.schedules);
const EVERY = Number(values.every);
const SECONDS = Number(values.seconds);

/** Lateness and due-time accounting of the tasks the schedules made, read from the database. */
async function switchyardFigures(databaseUrl: string, measureFrom: number, measureTo: number) {
  return withDatabase(databaseUrl, async (client) => {
    const { rows } = await client.query<{ scheduleId: string; key: string; created: string }>(
      `SELECT "scheduleId", "idempotencyKey" AS key, (extract(epoch FROM "createdAt") * 1000)::bigint::text AS created FROM "Task" WHERE "scheduleId" IS NOT NULL`,
    );
    const bySchedule = new Map<string, number[]>();
    const tasksPerDue = new Map<string, number>();
    const lateness: number[] = [];
    for (const row of rows) {
      const due = Date.parse(row.key.split(" ")[2]!);
      if (due < measureFrom || due > measureTo) continue;
      tasksPerDue.set(`${row.scheduleId}|${due}`, (tasksPerDue.get(`${row.scheduleId}|${due}`) ?? 0) + 1);
      lateness.push(Number(row.created) - due);
      const list = bySchedule.get(row.scheduleId) ?? [];
      list.push(due);
      bySchedule.set(row.scheduleId, list);
    }
    // A due time missed: a gap of more than one interval between two due times of one schedule inside the window.
    let missed = 0;
    for (const dues of bySchedule.values()) {
      dues.sort((a, b) => a - b);
      for (let i = 1; i < dues.length; i++) missed += Math.max(0, Math.round((dues[i]! - dues[i - 1]!) / EVERY) - 1);
    }
    const counts = [...tasksPerDue.values()];
    return {
      schedulesFired: bySchedule.size,
      dueTimes: tasksPerDue.size,
      tasks: counts.reduce((a, b) => a + b, 0),
      dueTimesWithMoreThanOneTask: counts.filter((n) => n > 1).length,
      dueTimesMissed: missed,
      latenessMs: roundSummary(summarize(lateness)),
    };
  });
}

async function barePeer(run: BenchRun): Promise<Record<string, unknown>> {
  const barePrefix = `${run.prefix}-bare`;
  const connection = new Redis(run.redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue("bare-schedules", { connection, prefix: barePrefix });
  const workers = [0, 1].map(() =>
    fork(new URL(import.meta.url).pathname, ["--bare-worker", barePrefix, String(SECONDS + 10)], { execArgv: ["--import", "tsx"] }),
  );
  const results = workers.map(
    (child) =>
      new Promise<{ lateness: number[]; ids: string[]; repeated: number }>((resolve) => {
        child.on("message", (message: { ready?: boolean; lateness?: number[]; ids?: string[]; repeated?: number }) => {
          if (!message.ready) resolve(message as { lateness: number[]; ids: string[]; repeated: number });
        });
      }),
  );
  await Promise.all(
    workers.map((child) => new Promise<void>((resolve) => child.on("message", (m: { ready?: boolean }) => m.ready && resolve()))),
  );
  const started = Date.now();
  for (let i = 0; i < SCHEDULES; i += 16) {
    await Promise.all(
      Array.from({ length: Math.min(16, SCHEDULES - i) }, (_, j) =>
        queue.upsertJobScheduler(
          `bare-${i + j}`,
          { every: EVERY, startDate: Date.now() + EVERY },
          { name: "due", data: {}, opts: { removeOnComplete: true } },
        ),
      ),
    );
  }
  const createdIn = Date.now() - started;
  const measureFrom = Date.now() + 2 * EVERY;
  const cpu = new CpuMeter(() => ({ bullmq: workers.map((child) => child.pid!) }));
  cpu.start();
  await sleep(SECONDS * 1000);
  const cpuUse = cpu.stop();
  const measureTo = Date.now() - 2 * EVERY;
  for (let i = 0; i < SCHEDULES; i++) await queue.removeJobScheduler(`bare-${i}`);
  const all = await Promise.all(results);
  await queue.close();
  connection.disconnect();
  const lateness: number[] = [];
  const perDue = new Map<string, number>();
  for (const { ids, lateness: late } of all) {
    ids.forEach((id, i) => {
      const due = Number(/:(\d+)$/.exec(id)?.[1]);
      if (due < measureFrom || due > measureTo) return;
      perDue.set(id, (perDue.get(id) ?? 0) + 1);
      lateness.push(late[i]!);
    });
  }
  return {
    createdInMs: createdIn,
    dueTimes: perDue.size,
    jobsTakenTwice: [...perDue.values()].filter((n) => n > 1).length + all.reduce((a, r) => a + r.repeated, 0),
    latenessMs: roundSummary(summarize(lateness)),
    cpu: cpuUse,
  };
}

await benchRun({ tag: "sched", log: (line) => void process.stderr.write(`[schedules] ${line}\n`) }, async (run) => {
  const { log } = run;
  const nodes: ServerHandle[] = await Promise.all(["a", "b"].map((node) => run.startSwitchyard(LIMITS_OUT_OF_REACH, node)));
  const [a] = nodes as [ServerHandle, ServerHandle];
  const auth = { authorization: `Bearer ${mintToken(run.secret, "sched-tenant")}` };
  const http = new HttpClient(a.url, 16);
  const pool = JSON.parse((await http.request("POST", "/api/v1/pools", { name: "unserved" }, auth)).body) as { pool: { id: string } };
  const ids: string[] = [];
  const started = Date.now();
  for (let i = 0; i < SCHEDULES; i += 16) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(16, SCHEDULES - i) }, (_, j) =>
        http.request(
          "POST",
          "/api/v1/schedules",
          { name: `s-${i + j}`, every: EVERY, task: { type: "echo", poolId: pool.pool.id, payload: { i: i + j } } },
          auth,
        ),
      ),
    );
    for (const response of batch) {
      if (response.status !== 201) throw new Error(`create: ${response.status} ${response.body}`);
      ids.push((JSON.parse(response.body) as { schedule: { id: string } }).schedule.id);
    }
  }
  const createdIn = Date.now() - started;
  log(`${SCHEDULES} schedules created in ${createdIn} ms; firing for ${SECONDS} s`);
  // Due times from two intervals after the last schedule was made, to two intervals before the pause.
  const measureFrom = Date.now() + 2 * EVERY;
  const cpu = new CpuMeter(() => ({ switchyard: nodes.map((node) => node.pid) }));
  cpu.start();
  await sleep(SECONDS * 1000);
  const cpuUse = cpu.stop();
  const measureTo = Date.now() - 2 * EVERY;
  for (let i = 0; i < ids.length; i += 16) {
    await Promise.all(ids.slice(i, i + 16).map((id) => http.request("PATCH", `/api/v1/schedules/${id}`, { paused: true }, auth)));
  }
  await sleep(2000);
  const switchyard = { createdInMs: createdIn, ...(await switchyardFigures(run.databaseUrl, measureFrom, measureTo)), cpu: cpuUse };
  http.close();
  await Promise.all(nodes.map((node) => node.stop()));
  log("bare BullMQ peer");
  const bare = await barePeer(run);
  const summary = {
    scenario: "schedules",
    machine: machineInfo(),
    command: `npx tsx scripts/bench/schedules.ts --schedules ${SCHEDULES} --every ${EVERY} --seconds ${SECONDS}`,
    at: new Date().toISOString(),
    schedules: SCHEDULES,
    everyMs: EVERY,
    seconds: SECONDS,
    switchyard,
    bareBullmq: bare,
  };
  mkdirSync(path.join(repoRoot, "bench", "results"), { recursive: true });
  writeFileSync(path.join(repoRoot, "bench", "results", "schedules.json"), `${JSON.stringify(summary, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
});
