// `npm run bench [-- --quick] [-- --scenarios idle,fanout,latency,publish,sharding,tasks,replay]`
//
// Starts Switchyard nodes (`node --import tsx src/main.ts`), a bare Socket.IO + @socket.io/redis-adapter
// baseline (scripts/bench/baseline-server.ts) with the same transport settings, a bare BullMQ worker for the
// tasks scenario (scripts/bench/bullmq-worker.ts), and separate load-generator
// processes (scripts/bench/load-client.ts: raw Engine.IO/WebSocket clients that authenticate and subscribe
// exactly like dashboards), measures both in the same run, prints one table, and writes one JSON file per
// scenario to bench/results/<scenario>-<quick|full>.json. Everything it creates (processes, the database
// switchyard_bench_<rand>, Redis keys under bench-<rand>) is removed at the end. Progress goes to stderr,
// the table to stdout. No thresholds are asserted: exit 0 when every scenario ran.
//
// The scenarios are in scripts/bench/scenarios/, what they share in suite.ts (scripts/bench/README.md: "Where the code is").

import path from "node:path";
import { BenchRun } from "./bench-run.js";
import { formatTable, machineInfo, now } from "./lib.js";
import { HELP, SCENARIOS, SIZE, SIZES, USAGE, type Scenario } from "./options.js";
import { LoadClient, repoRoot } from "./procs.js";
import { fanoutScenario } from "./scenarios/fanout.js";
import { idleScenario } from "./scenarios/idle.js";
import { latencyScenario } from "./scenarios/latency.js";
import { publishScenario } from "./scenarios/publish.js";
import { replayScenario } from "./scenarios/replay.js";
import { shardingScenario } from "./scenarios/sharding.js";
import { tasksScenario } from "./scenarios/tasks.js";
import { RESULTS_DIR, Suite } from "./suite.js";

if (HELP) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const startedAt = now();
function log(message: string): void {
  const t = ((now() - startedAt) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[bench ${t}s] ${message}\n`);
}

// The logs of a run go to bench/results/tmp/<id>, the name they had before BenchRun, which docs and habits know.
const run = new BenchRun({ tag: "bench", log, logDirName: (id) => id });
const LOG_DIR = run.logDir;
const suite = new Suite(run, log);
const { rows } = suite;
const failures: string[] = [];

// ---------------------------------------------------------------------------------------------- main

async function cleanup(): Promise<void> {
  log("cleaning up");
  await Promise.allSettled([...suite.clients, ...(suite.publisher ? [suite.publisher] : [])].map((c) => c.stop()));
  await run.cleanup();
}

let cleaningUp: Promise<void> | undefined;
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    interrupted = true;
    log(`${signal}: stopping`);
    cleaningUp ??= cleanup();
    void cleaningUp.finally(() => process.exit(130));
  });
}

async function main(): Promise<void> {
  log(`run ${run.id} (${SIZE}): scenarios ${SCENARIOS.join(", ")}; logs in ${path.relative(repoRoot, LOG_DIR)}`);
  await run.ensureServices();
  // The migrations take a while (Prisma's JS schema engine): start the baseline and the load generators meanwhile.
  const clients = (suite.clients = Array.from({ length: SIZES.loadClients }, (_, i) =>
    LoadClient.spawn(`load-${i}`, run.logFile(`load-${i}`)),
  ));
  const publisher = (suite.publisher = LoadClient.spawn("publisher", run.logFile("publisher")));
  const switchyardReady = run.setupDatabase().then(() => {
    log(`database ${run.databaseName} ready`);
    return run.startSwitchyard(suite.switchyardEnv(), "a");
  });
  const baselineReady = run.startBaseline("a");
  // Both settle before either is used, so a failure of one still lets cleanup() stop the other.
  const [sw, base] = await Promise.allSettled([switchyardReady, baselineReady]);
  if (sw.status === "fulfilled") suite.nodeA = sw.value;
  if (base.status === "fulfilled") suite.baseA = base.value;
  if (sw.status === "rejected") throw sw.reason;
  if (base.status === "rejected") throw base.reason;
  await Promise.all([...clients, publisher].map((c) => c.ready));
  log(
    `switchyard ${suite.nodeA!.url} (pid ${suite.nodeA!.pid}), baseline ${suite.baseA!.url} (pid ${suite.baseA!.pid}), ${clients.length} load clients + 1 publisher`,
  );

  const scenarios: Record<Scenario, (s: Suite) => Promise<void>> = {
    sharding: shardingScenario,
    idle: idleScenario,
    fanout: fanoutScenario,
    latency: latencyScenario,
    publish: publishScenario,
    tasks: tasksScenario,
    replay: replayScenario,
  };
  for (const name of SCENARIOS) {
    if (interrupted) break;
    const t0 = now();
    log(`=== ${name}`);
    try {
      await scenarios[name](suite);
    } catch (error) {
      failures.push(`${name}: ${(error as Error).message}`);
      log(`scenario ${name} FAILED: ${(error as Error).stack ?? String(error)}`);
      rows.push({
        scenario: name,
        metric: "FAILED",
        switchyard: "-",
        baseline: "-",
        ratio: "-",
        notes: (error as Error).message.split("\n")[0]!.slice(0, 120),
      });
      await suite.closeSockets().catch(() => undefined);
      await Promise.allSettled([suite.nodeB?.stop(), suite.baseB?.stop(), suite.bareWorker?.stop()]);
      suite.nodeB = suite.baseB = suite.bareWorker = undefined;
    }
    log(`=== ${name} done in ${((now() - t0) / 1000).toFixed(1)} s`);
  }
}

let exitCode = 0;
try {
  await main();
} catch (error) {
  failures.push((error as Error).message);
  log(`FAILED: ${(error as Error).stack ?? String(error)}`);
} finally {
  cleaningUp ??= cleanup();
  await cleaningUp;
}
if (failures.length > 0) exitCode = 1;

const elapsed = (now() - startedAt) / 1000;
const m = machineInfo();
process.stdout.write(
  `\nSwitchyard bench (${SIZE}) — ${m.cpuCount}x ${m.cpuModel}, ${(m.totalMemBytes / 2 ** 30).toFixed(0)} GiB, node ${m.node}, ${elapsed.toFixed(0)} s\n` +
    "Ratios are Switchyard / baseline measured in the same run (load generators share the 2 cores: compare ratios, not absolutes).\n\n",
);
process.stdout.write(
  formatTable(
    ["scenario", "metric", "switchyard", "baseline", "ratio", "notes"],
    rows.map((r) => [r.scenario, r.metric, r.switchyard, r.baseline, r.ratio, r.notes]),
  ) + "\n",
);
if (suite.notes.length > 0) process.stdout.write("\n" + suite.notes.map((n) => `* ${n}`).join("\n") + "\n");
if (failures.length > 0) {
  process.stdout.write(
    `\nFAILED (logs kept in ${path.relative(repoRoot, LOG_DIR)}):\n${failures.map((f) => `  ${f.split("\n")[0]}`).join("\n")}\n`,
  );
} else {
  run.removeLogs();
}
process.stdout.write(`results: ${path.relative(repoRoot, RESULTS_DIR)}/<scenario>-${SIZE}.json\n`);
process.exit(exitCode);
