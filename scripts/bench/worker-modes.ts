// `npx tsx scripts/bench/worker-modes.ts [--concurrency 1,16,64] [--seconds 5] [--warmup 2]`
//
// Jobs through the hub against a worker that takes them from BullMQ itself: echo tasks in a closed loop (N in flight,
// POST /api/v1/tasks to a pool → its task.completed on a `tasks` socket) served by one standalone worker (concurrency
// 64) in hub mode, then by the same worker in direct mode (--direct), and, as the bare peer, the same loop through
// bare BullMQ (Queue.add → a Worker in its own process → QueueEvents) on the same Redis. One node, no embedded
// worker. Prints tasks/s and p50/p99 per mode and concurrency, and the ratios hub/direct and hub/bare. The database
// (switchyard_modes_<rand>) and Redis keys (modes-<rand>) it creates are removed at the end. No thresholds: the
// figures go to docs/performance.md.

import { spawn, type ChildProcess } from "node:child_process";
import jwt from "jsonwebtoken";
import { benchRun, LIMITS_OUT_OF_REACH } from "./bench-run.js";
import { formatTable, HttpClient, human, mintToken } from "./lib.js";
import { LoadClient, repoRoot } from "./procs.js";

interface LoopResult {
  tasksPerSecond: number;
  latency: { p50: number; p99: number; max: number };
  completed: number;
  failed: number;
  errors: string[];
}

const option = (name: string, fallback: string): string => {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1]! : fallback;
};
const CONCURRENCY = option("--concurrency", "1,16,64").split(",").map(Number);
const SECONDS = Number(option("--seconds", "5"));
const WARMUP = Number(option("--warmup", "2"));
const WORKER_CONCURRENCY = 64;

await benchRun({ tag: "modes" }, async (run) => {
  const { redisUrl, secret, prefix, log } = run;
  let worker: ChildProcess | undefined;
  const client = LoadClient.spawn("loop", run.logFile("loop"));
  try {
    const node = await run.startSwitchyard({ ...LIMITS_OUT_OF_REACH, EMBEDDED_WORKER: "false", WORKER_EVENTS_PER_SECOND: "100000" });
    await client.ready;
    const token = mintToken(secret, "modes");
    const http = new HttpClient(node.url, 2);
    const created = JSON.parse(
      (await http.request("POST", "/api/v1/pools", { name: "echo" }, { authorization: `Bearer ${token}` })).body,
    ) as { pool: { id: string } };
    const poolId = created.pool.id;
    const workerToken = jwt.sign(
      { sub: "modes-worker", tenant_id: "modes", permissions: ["pools:work"], pool_id: poolId, exp: Math.floor(Date.now() / 1000) + 3600 },
      secret,
    );

    const startWorker = async (mode: "hub" | "direct"): Promise<ChildProcess> => {
      const child = spawn(
        process.execPath,
        ["--import", "tsx", "src/worker/main.ts", "--pool", poolId, ...(mode === "direct" ? ["--direct"] : [])],
        {
          cwd: repoRoot,
          env: {
            PATH: process.env.PATH ?? "",
            WORKER_TOKEN: workerToken,
            SWITCHYARD_URL: node.url,
            REDIS_URL: redisUrl,
            REDIS_PREFIX: prefix,
            WORKER_CONCURRENCY: String(WORKER_CONCURRENCY),
            WORKER_ID: `modes-${mode}`,
            LOG_LEVEL: "warn",
          },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let output = "";
      child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
      // Ready when the pool lists it idle.
      for (let i = 0; i < 200; i++) {
        const pool = JSON.parse(
          (await http.request("GET", `/api/v1/pools/${poolId}`, undefined, { authorization: `Bearer ${token}` })).body,
        ) as { pool: { workers: Array<{ id: string; status: string }> } };
        if (pool.pool.workers.some((w) => w.id === `modes-${mode}` && w.status === "idle")) return child;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      throw new Error(`the ${mode} worker did not come up:\n${output}`);
    };
    const stopWorker = async (child: ChildProcess): Promise<void> => {
      child.kill("SIGTERM");
      await new Promise((resolve) => child.once("exit", resolve));
    };

    const results: Record<string, Record<number, LoopResult>> = { hub: {}, direct: {}, bare: {} };
    const loop = { durationMs: SECONDS * 1000, warmupMs: WARMUP * 1000 };
    for (const mode of ["hub", "direct"] as const) {
      worker = await startWorker(mode);
      for (const concurrency of CONCURRENCY) {
        const result = await client.call<LoopResult>("tasks", { url: node.url, token, poolId, concurrency, ...loop });
        results[mode]![concurrency] = result;
        log(
          `${mode} ${concurrency} in flight: ${human(result.tasksPerSecond)} tasks/s, p50/p99 ${result.latency.p50.toFixed(1)}/${result.latency.p99.toFixed(1)} ms${result.failed ? `, ${result.failed} failed: ${result.errors[0]}` : ""}`,
        );
      }
      await stopWorker(worker);
      worker = undefined;
    }
    const bareQueue = "pool.modes.bare";
    const bare = await run.startBareWorker(bareQueue, WORKER_CONCURRENCY);
    for (const concurrency of CONCURRENCY) {
      const result = await client.call<LoopResult>("bullmqTasks", {
        redisUrl,
        prefix: run.barePrefix,
        queue: bareQueue,
        concurrency,
        ...loop,
      });
      results.bare![concurrency] = result;
      log(
        `bare BullMQ ${concurrency} in flight: ${human(result.tasksPerSecond)} tasks/s, p50/p99 ${result.latency.p50.toFixed(1)}/${result.latency.p99.toFixed(1)} ms`,
      );
    }
    await bare.stop();

    const rows = CONCURRENCY.map((c) => {
      const [hub, direct, peer] = [results.hub![c]!, results.direct![c]!, results.bare![c]!];
      return [
        String(c),
        `${human(hub.tasksPerSecond)} (${hub.latency.p50.toFixed(0)}/${hub.latency.p99.toFixed(0)})`,
        `${human(direct.tasksPerSecond)} (${direct.latency.p50.toFixed(0)}/${direct.latency.p99.toFixed(0)})`,
        `${human(peer.tasksPerSecond)} (${peer.latency.p50.toFixed(0)}/${peer.latency.p99.toFixed(0)})`,
        `${(hub.tasksPerSecond / direct.tasksPerSecond).toFixed(2)}x, p99 ${(hub.latency.p99 / direct.latency.p99).toFixed(2)}x`,
        `${(hub.tasksPerSecond / peer.tasksPerSecond).toFixed(3)}x`,
      ];
    });
    process.stdout.write(
      `\nEcho tasks, closed loop, ${SECONDS} s each (+${WARMUP} s warm-up), one standalone worker of concurrency ${WORKER_CONCURRENCY}; tasks/s (p50/p99 ms)\n\n` +
        formatTable(["in flight", "hub mode", "direct mode", "bare BullMQ", "hub / direct", "hub / bare"], rows) +
        "\n",
    );
  } finally {
    // The standalone worker is not one of the processes procs.ts knows of.
    if (worker) worker.kill("SIGKILL");
    await client.stop().catch(() => undefined);
  }
});
