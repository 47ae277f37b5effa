import assert from "node:assert/strict";
import { freshTenant, TEST_REDIS_PREFIX } from "./support/env.js";
import { FAULT_NODE_ENV, idempotencyKeys, NodeFleet, reconciledSummary, sleep, Submitter, type SubmitJob } from "./support/faults.js";
import { checkTaskInvariants, waitForSettled } from "./support/invariants.js";
import { isolatedDatabase } from "./support/isolation.js";
import { DbInspector } from "./support/private-services.js";
import { serverProblems } from "./support/server.js";
import { mintToken } from "./support/tokens.js";

const TASKS = 400;
const IN_FLIGHT = 8;
/**
 * 400 × 75 ms: the burst lasts about 30 s, long enough for 8+ kills (a replacement starts in ~1-2 s), sent in waves
 * of 8 requests at once every 600 ms.
 */
const SUBMIT_INTERVAL_MS = 75;
const MIN_KILLS = 8;

describe("faults: crashes", function () {
  this.timeout(150_000);
  let fleet: NodeFleet | undefined;
  let db: DbInspector | undefined;
  let activeSubmitter: Submitter | undefined;

  afterEach(async function () {
    if (this.currentTest?.state === "failed") {
      const problems = serverProblems();
      if (problems) process.stderr.write(`\n--- node warnings/errors (last 20) ---\n${problems}\n`);
    }
    activeSubmitter?.abort();
    await fleet?.killAll();
    await db?.close();
    fleet = undefined;
    db = undefined;
    activeSubmitter = undefined;
  });

  it("kill -9 of random nodes during a burst: no task lost or stranded, one terminal event each", async () => {
    const tenant = freshTenant("crash");
    const token = mintToken({ tenant });
    // A cluster of its own (database and Redis prefix): no other test's node takes these tasks, and this fleet's
    // fast reconciler does not requeue other files' tasks (on the run's database it would see them with no job on
    // this prefix's queues).
    const database = await isolatedDatabase("crash");
    fleet = new NodeFleet("crash", { ...FAULT_NODE_ENV, DATABASE_URL: database, REDIS_PREFIX: `${TEST_REDIS_PREFIX}-crash` });
    await Promise.all([fleet.add(), fleet.add()]);
    db = new DbInspector(database);
    const nodes = fleet;

    // Every tenth task runs for a second: about one is running on each node at any moment, so kills land on running
    // tasks (checked below), not only on submissions.
    // A run a kill cuts short counts as an attempt, and BullMQ fails a job that stalled more than twice
    // (maxStalledCount 2): with three attempts a task survives two kills of its runs, so every task must complete
    // unless one task is hit by three of the run's kills. With two, a task hit twice failed as its policy says.
    const jobs: SubmitJob[] = idempotencyKeys("crash", TASKS).map((key, i) => ({
      key,
      body:
        i % 10 === 9
          ? { type: "sleep", payload: { ms: 1000 }, maxAttempts: 3 }
          : i % 4 === 3
            ? { type: "sleep", payload: { ms: 50 + Math.floor(Math.random() * 251) }, maxAttempts: 3 }
            : { type: "echo", payload: { i }, maxAttempts: 3 },
    }));
    const submitter = (activeSubmitter = new Submitter({ token, urls: () => nodes.urls() }));
    const started = Date.now();
    let burstDone = false;
    const burst = submitter.burst(jobs, { concurrency: IN_FLIGHT, intervalMs: SUBMIT_INTERVAL_MS }).finally(() => (burstDone = true));
    const killTimes: number[] = [];
    const chaos = (async () => {
      while (!burstDone || nodes.kills < MIN_KILLS) {
        await sleep(1000 + Math.random() * 1500);
        killTimes.push(Date.now() - started);
        // During a wave (the victim has submissions in flight; waits up to 1 s for one), at a random point of a
        // typical request's handling: kills between requests, or before a request reached the node, test less.
        await nodes.killRandomAndReplace({
          busy: (url) => submitter.inFlightTo(url) > 0,
          jitterMs: () => Math.random() * submitter.medianLatencyMs(),
        });
      }
    })();
    await Promise.all([burst, chaos]);
    const burstMs = Date.now() - started;
    console.log(
      `      burst: ${submitter.summary()} in ${burstMs} ms; ${nodes.kills} kill -9 (${nodes.busyKills} with a submission in flight) at ${killTimes.map((t) => (t / 1000).toFixed(1)).join(", ")} s`,
    );

    const settle = await waitForSettled(db, tenant, { timeoutMs: 90_000, stallMs: 20_000 });
    console.log(`      settle: ${settle.settled ? "all terminal" : `not settled: ${settle.reason}`} after ${settle.waitedMs} ms`);
    console.log(`      ${await reconciledSummary(nodes.urls())}`);
    const report = await checkTaskInvariants(db, tenant, submitter.acceptedIds(), "crash: kill -9 during a burst", { graceMs: 6000 });

    // A task a kill cut short: started by a killed node's embedded worker, completed by another worker.
    const killedWorkers = new Set(nodes.history.filter((h) => h.killedAt !== undefined).map((h) => `embedded@${h.nodeId}`));
    const runs = await db.taskRuns(tenant);
    const completedBy = new Map(runs.filter((r) => r.type === "task.completed").map((r) => [r.room, r.workerId]));
    const cutShort = new Set(
      runs
        .filter((r) => r.type === "task.started" && killedWorkers.has(r.workerId ?? "") && completedBy.get(r.room) !== r.workerId)
        .map((r) => r.room),
    );
    console.log(`      ${cutShort.size} task(s) were running on a node when it was killed and completed elsewhere`);

    const problems = [...report.problems, ...submitter.problems(), ...nodes.unexpectedExits().map((e) => `node died by itself: ${e}`)];
    if (nodes.kills < MIN_KILLS) problems.push(`only ${nodes.kills} kill(s)`);
    // Echo and sleep tasks do not fail on their own: a task that failed or was cancelled was lost to a crash.
    if (report.statusCounts.completed !== TASKS) problems.push(`not every task completed: ${JSON.stringify(report.statusCounts)}`);
    if (cutShort.size === 0) problems.push("no kill hit a running task: the burst tested only kills around submissions");
    if (problems.length > 0) assert.fail(`${report.summary}\n${problems.join("\n")}`);
    assert.equal(report.accepted, TASKS);
  });
});
