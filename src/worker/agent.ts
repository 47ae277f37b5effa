/**
 * Keeps a pool's size on one worker host:
 *   WORKER_TOKEN=<pools:work jwt> SWITCHYARD_URL=<url> npm run agent -- --pool <poolId> [--handlers ./my-handlers.ts]
 * Reads the pool's `desiredWorkers` from the hub (GET /api/v1/pools/:id, which a pool's own worker token may read)
 * every AGENT_POLL_MS, and keeps that many worker processes (`src/worker/main.ts`, hub mode) running here: starts
 * them, restarts one that exits (with a growing pause while they keep failing), and stops the extra ones (SIGTERM:
 * they drain) when the pool is scaled down. Each slot's worker keeps its id across restarts (`<agent id>-<slot>`),
 * so a restart does not add a worker to the pool's list.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { hostname } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createLogger } from "../observability/logger.js";
import { loadWorkerConfig, WorkerConfigError, type WorkerConfig } from "./config.js";

/** Restart pauses: 1 s, doubling to 30 s while a slot's worker keeps exiting; back to 1 s once one ran for a minute. */
const RESTART_MIN_MS = 1_000;
const RESTART_MAX_MS = 30_000;
const STEADY_MS = 60_000;

interface Slot {
  index: number;
  child: ChildProcess | undefined;
  startedAt: number;
  failures: number;
  restartTimer: NodeJS.Timeout | undefined;
  /** Scaled away: stopping, not to be restarted. */
  retired: boolean;
}

function readConfig(): { worker: WorkerConfig; pollMs: number } {
  try {
    const worker = loadWorkerConfig();
    const pollMs = Number(process.env.AGENT_POLL_MS ?? 2000);
    if (!Number.isInteger(pollMs) || pollMs < 100) throw new WorkerConfigError(["AGENT_POLL_MS: must be an integer ≥ 100"]);
    return { worker, pollMs };
  } catch (error) {
    if (error instanceof WorkerConfigError) {
      for (const problem of error.problems) process.stderr.write(`agent config error: ${problem}\n`);
      process.exit(78);
    }
    throw error;
  }
}

const { worker: config, pollMs } = readConfig();
const agentId =
  config.workerId ??
  hostname()
    .replace(/[^A-Za-z0-9_-]/g, "_")
    .slice(0, 100);
const logger = createLogger({ level: config.logLevel, nodeId: `agent:${agentId}`, format: config.logFormat });
// The worker next to this file, run the way this agent runs (compiled, or TypeScript through tsx).
const self = fileURLToPath(import.meta.url);
const workerMain = self.replace(/agent\.([cm]?[jt]s)$/, "main.$1");
const passThrough = parseArgs({
  args: process.argv.slice(2),
  options: { pool: { type: "string" }, handlers: { type: "string" } },
  strict: false,
}).values;

const slots: Slot[] = [];
let desired = 0;
let stopping = false;
let urlIndex = 0;

function startWorker(slot: Slot): void {
  slot.restartTimer = undefined;
  if (stopping || slot.retired) return;
  const args = [...process.execArgv, workerMain, "--pool", config.poolId];
  if (typeof passThrough.handlers === "string") args.push("--handlers", passThrough.handlers);
  const child = spawn(process.execPath, args, {
    env: { ...process.env, WORKER_ID: `${agentId}-${slot.index}` },
    stdio: ["ignore", "inherit", "inherit"],
  });
  slot.child = child;
  slot.startedAt = Date.now();
  logger.info({ slot: slot.index, pid: child.pid, workerId: `${agentId}-${slot.index}` }, "worker started");
  child.once("exit", (code, signal) => {
    slot.child = undefined;
    if (stopping || slot.retired) {
      logger.info({ slot: slot.index, code, signal }, "worker stopped");
      return;
    }
    slot.failures = Date.now() - slot.startedAt >= STEADY_MS ? 0 : slot.failures + 1;
    const delay = Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** Math.max(0, slot.failures - 1));
    logger.warn({ slot: slot.index, code, signal, restartInMs: delay }, "worker exited; restarting");
    slot.restartTimer = setTimeout(() => startWorker(slot), delay);
  });
}

/** Starts or stops workers until this host runs `count` of them (the highest slots go first). */
function resize(count: number): void {
  if (count === desired && slots.filter((s) => !s.retired).length === count) return;
  logger.info({ from: desired, to: count }, "scaling");
  desired = count;
  for (let index = 0; index < count; index++) {
    let slot = slots[index];
    if (!slot) slots[index] = slot = { index, child: undefined, startedAt: 0, failures: 0, restartTimer: undefined, retired: false };
    if (slot.retired) {
      slot.retired = false;
      slot.failures = 0;
    }
    if (!slot.child && !slot.restartTimer) startWorker(slot);
  }
  for (const slot of slots.slice(count)) {
    if (slot.retired) continue;
    slot.retired = true;
    clearTimeout(slot.restartTimer);
    slot.restartTimer = undefined;
    // SIGTERM: the worker drains (finishes its runs, grants no more credit) and exits.
    slot.child?.kill("SIGTERM");
  }
}

/** The pool's wish, as the hub holds it; undefined when the hub cannot be asked now. */
async function desiredWorkers(): Promise<number | undefined> {
  const urls = config.serverUrls;
  for (let tried = 0; tried < urls.length; tried++) {
    const url = urls[urlIndex]!;
    try {
      const response = await fetch(`${url}/api/v1/pools/${encodeURIComponent(config.poolId)}`, {
        headers: { authorization: `Bearer ${config.token}` },
        signal: AbortSignal.timeout(5000),
      });
      const body = (await response.json()) as { pool?: { desiredWorkers?: unknown }; error?: { code: string; message: string } };
      if (response.ok && typeof body.pool?.desiredWorkers === "number") return body.pool.desiredWorkers;
      if (response.status === 401 || response.status === 403 || response.status === 404) {
        logger.fatal({ status: response.status, error: body.error }, "the hub refuses this agent's token for the pool");
        await stop(1);
      }
      logger.warn({ url, status: response.status, error: body.error }, "cannot read the pool now");
    } catch (error) {
      logger.warn({ url, err: (error as Error).message }, "cannot reach the hub now");
    }
    urlIndex = (urlIndex + 1) % urls.length;
  }
  return undefined;
}

async function poll(): Promise<void> {
  if (stopping) return;
  const count = await desiredWorkers();
  if (count !== undefined && !stopping) resize(count);
  setTimeout(() => void poll(), pollMs);
}

async function stop(code = 0): Promise<never> {
  if (!stopping) {
    stopping = true;
    logger.info({ workers: slots.filter((s) => s.child).length }, "stopping: draining the workers");
    for (const slot of slots) {
      clearTimeout(slot.restartTimer);
      slot.child?.kill("SIGTERM");
    }
    await Promise.all(slots.map((slot) => (slot.child ? new Promise((resolve) => slot.child!.once("exit", resolve)) : Promise.resolve())));
    logger.info("stopped");
  }
  process.exit(code);
}

process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => void stop());
logger.info({ agentId, pool: config.poolId, tenant: config.tenantId, pollMs }, "agent started");
void poll();
