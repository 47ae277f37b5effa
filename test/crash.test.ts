import assert from "node:assert/strict";
import { freshTenant, TEST_DATABASE_URL, TEST_REDIS_PREFIX } from "./support/env.js";
import { FAULT_NODE_ENV, idempotencyKeys, NodeFleet, reconciledSummary, sleep, Submitter, type SubmitJob } from "./support/faults.js";
import { checkTaskInvariants, waitForSettled } from "./support/invariants.js";
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
    // A cluster of its own (Redis prefix): no other test's node takes these tasks.
    fleet = new NodeFleet("crash", { ...FAULT_NODE_ENV, REDIS_PREFIX: `${TEST_REDIS_PREFIX}-crash` });
    await Promise.all([fleet.add(), fleet.add()]);
    db = new DbInspector(TEST_DATABASE_URL);
    const nodes = fleet;

    const jobs: SubmitJob[] = idempotencyKeys("crash", TASKS).map((key, i) => ({
      key,
      body:
        i % 4 === 3
          ? { type: "sleep", payload: { ms: 50 + Math.floor(Math.random() * 251) }, maxAttempts: 2 }
          : { type: "echo", payload: { i }, maxAttempts: 2 },
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

    const problems = [...report.problems, ...submitter.problems(), ...nodes.unexpectedExits().map((e) => `node died by itself: ${e}`)];
    if (nodes.kills < MIN_KILLS) problems.push(`only ${nodes.kills} kill(s)`);
    if (problems.length > 0) assert.fail(`${report.summary}\n${problems.join("\n")}`);
    assert.equal(report.accepted, TASKS);
  });
});
