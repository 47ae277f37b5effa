import assert from "node:assert/strict";
import { freshTenant, TEST_REDIS_PREFIX } from "./support/env.js";
import {
  deadNodes,
  eventually,
  FAULT_NODE_ENV,
  idempotencyKeys,
  reconciledSummary,
  sleep,
  Submitter,
  watchRoom,
  type RoomWatch,
} from "./support/faults.js";
import { checkTaskInvariants, compareWithLog, waitForSettled } from "./support/invariants.js";
import {
  DbInspector,
  destroyAllPrivateServices,
  privatePostgresUnavailable,
  privateRedisUnavailable,
  startPrivatePostgres,
  startPrivateRedis,
} from "./support/private-services.js";
import { api } from "./support/http.js";
import { serverProblems, startServer, startWorker, type ServerProcess } from "./support/server.js";
import { submitTask, waitForTask } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";
import { isolatedDatabase } from "./support/isolation.js";
import { skipBecause } from "./support/skip.js";

/** Tasks that did not complete, by status (every accepted task must end `completed` after an outage). */
async function notCompleted(db: DbInspector, tenant: string, accepted: string[]): Promise<string[]> {
  const status = new Map((await db.tasks(tenant)).map((t) => [t.id, t.status]));
  const counts: Record<string, number> = {};
  for (const id of accepted) {
    const s = status.get(id) ?? "missing";
    if (s !== "completed") counts[s] = (counts[s] ?? 0) + 1;
  }
  const entries = Object.entries(counts);
  return entries.length
    ? [`${entries.reduce((n, [, c]) => n + c, 0)} accepted task(s) did not complete: ${entries.map(([s, c]) => `${s} ${c}`).join(", ")}`]
    : [];
}

/** Whether every node answers /ready with 200 within `timeoutMs` (Redis and PostgreSQL reachable again). */
async function allReady(nodes: ServerProcess[], timeoutMs: number): Promise<string[]> {
  const late: string[] = [];
  await Promise.all(
    nodes.map(async (node) => {
      let last = "no answer";
      const ok = await eventually(
        async () => {
          try {
            const response = await api(node.url, "GET", "/ready");
            last = `${response.status} ${JSON.stringify(response.body)}`;
            return response.status === 200;
          } catch (error) {
            last = (error as Error).message;
            return false;
          }
        },
        timeoutMs,
        250,
      );
      if (!ok) late.push(`${node.nodeId} not ready ${timeoutMs} ms after the restart: ${last}`);
    }),
  );
  return late;
}

/**
 * What both outage rows check once the service is back: both nodes ready and taking a new task, every task
 * settled and its log whole, every accepted task completed, and the client's stream equal to the room's log.
 */
async function checkAfterRestart(run: {
  nodes: ServerProcess[];
  submitter: Submitter;
  tenant: string;
  db: DbInspector;
  watch: RoomWatch;
  probeKey: string;
  label: string;
  accepted: number;
}): Promise<void> {
  const { nodes, submitter, tenant, db, watch: w } = run;
  const notReady = await allReady(nodes, 15_000);
  const probe = await submitter.submit({ key: run.probeKey, body: { type: "echo", payload: { probe: true } } });
  console.log(
    `      after the restart: ${notReady.length ? notReady.join("; ") : "both nodes ready"}; probe task ${probe ? "accepted" : "NOT accepted"}`,
  );

  const settle = await waitForSettled(db, tenant, { timeoutMs: 60_000, stallMs: 20_000 });
  console.log(`      settle: ${settle.settled ? "all terminal" : `not settled: ${settle.reason}`} after ${settle.waitedMs} ms`);
  console.log(`      ${await reconciledSummary(nodes.map((n) => n.url))}`);
  const report = await checkTaskInvariants(db, tenant, submitter.acceptedIds(), run.label, { graceMs: 6000 });
  const stream = await compareWithLog(db, { tenantId: tenant, namespace: "tasks", room: "tasks", afterSeq: w.startSeq }, w.delivered, {
    label: "client on /tasks room tasks",
  });
  const problems = [
    ...report.problems,
    ...(await notCompleted(db, tenant, submitter.acceptedIds())),
    ...stream.problems,
    ...submitter.problems(),
    ...w.resets.map((r) => `client reset: ${r}`),
    ...deadNodes(nodes).map((d) => `node died: ${d}`),
    ...notReady,
  ];
  if (w.errors.length) console.log(`      client errors (${w.errors.length}): ${[...new Set(w.errors)].slice(0, 3).join(" | ")}`);
  if (problems.length > 0) assert.fail(`${report.summary}\n${stream.summary}\n${problems.join("\n")}`);
  assert.equal(report.accepted, run.accepted);
}

describe("faults: outages", function () {
  this.timeout(150_000);
  let nodes: ServerProcess[] = [];
  let watch: RoomWatch | undefined;
  let db: DbInspector | undefined;
  let activeSubmitter: Submitter | undefined;

  afterEach(async function () {
    if (this.currentTest?.state === "failed") {
      const problems = serverProblems();
      if (problems) process.stderr.write(`\n--- node warnings/errors (last 20) ---\n${problems}\n`);
    }
    activeSubmitter?.abort();
    watch?.close();
    await Promise.all(nodes.map((n) => n.kill()));
    await db?.close();
    // Nodes first, then their services: a node must not outlive its database in a way that looks like a fault.
    await destroyAllPrivateServices();
    nodes = [];
    watch = undefined;
    db = undefined;
    activeSubmitter = undefined;
  });

  it("PostgreSQL stopped for 5 s with 2-second tasks running: every task completes, the client has every event", async function () {
    const unavailable = privatePostgresUnavailable();
    if (unavailable) {
      skipBecause(this, unavailable);
    }
    const started = Date.now();
    const postgres = await startPrivatePostgres();
    console.log(
      `      private PostgreSQL on port ${postgres.port}: initdb + start ${postgres.setupMs.initdb} ms, create + migrate ${postgres.setupMs.migrate} ms`,
    );
    const env = { ...FAULT_NODE_ENV, DATABASE_URL: postgres.url, REDIS_PREFIX: `${TEST_REDIS_PREFIX}-pgout` };
    nodes = await Promise.all([startServer({ ...env, NODE_ID: "pgout-a" }), startServer({ ...env, NODE_ID: "pgout-b" })]);
    db = new DbInspector(postgres.url);
    const tenant = freshTenant("pgout");
    const token = mintToken({ tenant });
    watch = await watchRoom(
      nodes.map((n) => n.url),
      token,
      "tasks",
      "tasks",
    );
    const w = watch;

    const submitter = (activeSubmitter = new Submitter({ token, urls: () => nodes.map((n) => n.url) }));
    await submitter.burst(
      idempotencyKeys("pgout", 60).map((key) => ({ key, body: { type: "sleep", payload: { ms: 2000 } } })),
      { concurrency: 8 },
    );
    console.log(`      submitted: ${submitter.summary()}`);
    // Into the run: most tasks started (their 2 s end while the database is down).
    const running = await eventually(
      () => w.delivered.filter((e) => e.type === "task.started").length >= submitter.accepted.size * 0.8,
      3000,
      50,
    );
    const before = await db.statusCounts(tenant);
    await postgres.stop();
    const down = Date.now();
    console.log(
      `      PostgreSQL stopped at ${((down - started) / 1000).toFixed(1)} s with ${JSON.stringify(before)}${running ? "" : " (the client had not seen 80% started yet)"}`,
    );
    await sleep(5000);
    await postgres.start();
    console.log(`      PostgreSQL back after ${Date.now() - down} ms`);
    // Do the nodes use the database again (does their pool reconnect)? A task submitted now must complete too.
    await checkAfterRestart({
      nodes,
      submitter,
      tenant,
      db,
      watch: w,
      probeKey: `pgout-probe-${tenant}`,
      label: "outage: PostgreSQL stopped 5 s",
      accepted: 61,
    });
  });

  it("Redis restarted without its data with tasks queued: every task completes, the client has every event", async function () {
    const unavailable = privateRedisUnavailable();
    if (unavailable) {
      skipBecause(this, unavailable);
    }
    const started = Date.now();
    const redis = await startPrivateRedis();
    // A database of its own: the private Redis is the nodes' only Redis, so on the run's database their fast
    // reconciler would find other files' tasks without a job here and requeue them onto this Redis.
    const database = await isolatedDatabase("redisout");
    const env = {
      ...FAULT_NODE_ENV,
      DATABASE_URL: database,
      REDIS_URL: redis.url,
      REDIS_PREFIX: TEST_REDIS_PREFIX,
      WORKER_CONCURRENCY: "4",
    };
    nodes = await Promise.all([startServer({ ...env, NODE_ID: "redisout-a" }), startServer({ ...env, NODE_ID: "redisout-b" })]);
    db = new DbInspector(database);
    const tenant = freshTenant("redisout");
    const token = mintToken({ tenant });
    watch = await watchRoom(
      nodes.map((n) => n.url),
      token,
      "tasks",
      "tasks",
    );
    const w = watch;

    const submitter = (activeSubmitter = new Submitter({ token, urls: () => nodes.map((n) => n.url) }));
    await submitter.burst(
      idempotencyKeys("redisout", 150).map((key) => ({ key, body: { type: "sleep", payload: { ms: 100 } } })),
      { concurrency: 16 },
    );
    console.log(`      submitted: ${submitter.summary()} in ${Date.now() - started} ms`);
    const before = await db.statusCounts(tenant);
    await redis.stop();
    const down = Date.now();
    console.log(`      Redis shut down (nosave) with ${JSON.stringify(before)}`);
    await sleep(1000);
    await redis.start();
    console.log(`      Redis back, empty, after ${Date.now() - down} ms`);
    await checkAfterRestart({
      nodes,
      submitter,
      tenant,
      db,
      watch: w,
      probeKey: `redisout-probe-${tenant}`,
      label: "outage: Redis restarted empty",
      accepted: 151,
    });
  });

  it("a standalone worker that connects while PostgreSQL is down waits, and registers when it is back", async function () {
    const unavailable = privatePostgresUnavailable();
    if (unavailable) {
      skipBecause(this, unavailable);
    }
    const postgres = await startPrivatePostgres();
    const prefix = `${TEST_REDIS_PREFIX}-pgreg`;
    nodes = [await startServer({ DATABASE_URL: postgres.url, REDIS_PREFIX: prefix, NODE_ID: "pgreg-a", DEPENDENCY_TIMEOUT_MS: "1000" })];
    const [node] = nodes;
    const tenant = freshTenant("pgreg");
    const token = mintToken({ tenant });
    const created = await api(node!.url, "POST", "/api/v1/pools", { token, body: { name: "night-shift" } });
    assert.equal(created.status, 201);
    const poolId = created.body.pool.id as string;

    await postgres.stop();
    const worker = startWorker({
      token: mintToken({ tenant, permissions: ["pools:work"], poolId }),
      poolId,
      urls: [node!.url],
      env: { REDIS_PREFIX: prefix, WORKER_ID: "w-patient" },
    });
    const refusedNow = (): number => (worker.logs().match(/cannot register this worker now/g) ?? []).length;
    assert.ok(await eventually(() => refusedNow() >= 2, 20_000), `refused for now, twice:\n${worker.logs()}`);
    assert.equal(worker.process.exitCode, null, "still running");
    assert.match(worker.logs(), /"code":"UNAVAILABLE"/);

    await postgres.start();
    assert.ok(
      await eventually(() => /"msg":"registered"/.test(worker.logs()), 30_000),
      `registered once PostgreSQL is back:\n${worker.logs()}`,
    );
    const pool = await api(node!.url, "GET", `/api/v1/pools/${poolId}`, { token });
    assert.deepEqual(
      (pool.body.pool.workers as Array<{ id: string; status: string }>).map((w) => [w.id, w.status]),
      [["w-patient", "idle"]],
    );
    const task = await submitTask(node!.url, token, { type: "echo", poolId, payload: { after: "outage" } });
    const done = await waitForTask(node!.url, token, task.id, ["completed", "failed"], 20_000);
    assert.equal(done.workerId, "w-patient");
    await worker.stop();
  });
});
