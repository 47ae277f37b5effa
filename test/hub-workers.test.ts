import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { connect, EventRecorder, sleep, subscribe } from "./support/clients.js";
import { freshTenant } from "./support/env.js";
import { api } from "./support/http.js";
import { PYTHON, pythonSocketIoAvailable } from "./support/python.js";
import { startServer, startWorker, type ServerProcess, type WorkerProcess } from "./support/server.js";
import { submitTask, waitForTask, type TaskView } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";
import { skipBecause } from "./support/skip.js";

/** A Redis no worker can reach: a hub-mode worker must not need one. */
const NOWHERE = { REDIS_URL: "redis://127.0.0.1:1", REDIS_PREFIX: "nowhere" };

async function createPool(url: string, token: string, name: string): Promise<string> {
  const response = await api(url, "POST", "/api/v1/pools", { token, body: { name } });
  assert.equal(response.status, 201, JSON.stringify(response.body));
  return response.body.pool.id as string;
}

/** The task's stored events of one type (its room's history). */
async function eventsOf(url: string, token: string, taskId: string, type: string): Promise<number> {
  const response = await api(url, "GET", `/api/v1/events?namespace=tasks&room=task:${taskId}&limit=1000`, { token });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return (response.body.items as Array<{ type: string }>).filter((e) => e.type === type).length;
}

function hubWorker(tenant: string, poolId: string, urls: string[], id: string, env: Record<string, string> = {}): WorkerProcess {
  return startWorker({
    token: mintToken({ tenant, permissions: ["pools:work"], poolId }),
    poolId,
    urls,
    env: { ...NOWHERE, WORKER_ID: id, ...env },
  });
}

describe("jobs through the hub: workers that need only a URL and a token", function () {
  this.timeout(90_000);
  let nodeA: ServerProcess;
  let nodeB: ServerProcess;
  before(async () => {
    // The tasks go to pools of their own: only the workers under test take them (embedded workers serve default pools).
    [nodeA, nodeB] = await Promise.all([
      startServer({ NODE_ID: "hub-a", AUTOSCALE_INTERVAL_MS: "300" }),
      startServer({ NODE_ID: "hub-b", AUTOSCALE_INTERVAL_MS: "300" }),
    ]);
  });
  after(async () => {
    await Promise.all([nodeA?.stop(), nodeB?.stop()]);
  });

  it("a worker whose REDIS_URL points nowhere runs its pool's tasks; a worker token never receives another pool's job", async () => {
    const tenant = freshTenant();
    const token = mintToken({ tenant });
    const [gpu, cpu] = [await createPool(nodeA.url, token, "gpu"), await createPool(nodeA.url, token, "cpu")];
    const workers = [hubWorker(tenant, gpu, [nodeA.url], "w-gpu"), hubWorker(tenant, cpu, [nodeB.url], "w-cpu")];
    await Promise.all(workers.map((w) => w.connected()));
    const submitted: Array<{ pool: string; task: TaskView }> = [];
    for (let i = 0; i < 6; i++) {
      for (const pool of [gpu, cpu])
        submitted.push({ pool, task: await submitTask(nodeB.url, token, { type: "echo", poolId: pool, payload: { i, pool } }) });
    }
    for (const { pool, task } of submitted) {
      const done = await waitForTask(nodeA.url, token, task.id, ["completed", "failed"]);
      assert.equal(done.status, "completed", JSON.stringify(done));
      assert.deepEqual(done.result, { i: (task.payload as { i: number }).i, pool });
      assert.equal(done.workerId, pool === gpu ? "w-gpu" : "w-cpu", "only the pool's own worker ran it");
    }
    for (const worker of workers) {
      assert.doesNotMatch(worker.logs(), /ECONNREFUSED|redis unavailable/i, "the worker never tried Redis");
      assert.match(worker.logs(), /"mode":"hub"/);
    }
    await Promise.all(workers.map((w) => w.stop()));
    for (const worker of workers) assert.match(worker.logs(), /"msg":"stopped"/, "a clean stop says so");
  });

  it("refuses malformed hub messages with BAD_REQUEST, dashboards with FORBIDDEN, caps a worker's credit, and keeps serving", async () => {
    const tenant = freshTenant();
    const token = mintToken({ tenant });
    const pool = await createPool(nodeA.url, token, "strict");
    const worker = await connect(nodeA.url, "pools", {
      auth: { token: mintToken({ tenant, permissions: ["pools:work"], poolId: pool }), worker: { id: "w-raw" } },
    });
    await new Promise<void>((resolve) => worker.once("worker.welcome", () => resolve()));
    const ask = (event: string, payload: unknown) =>
      worker.timeout(5000).emitWithAck(event, payload) as Promise<{
        ok: boolean;
        error?: { code: string };
        credit?: number;
        accepted?: boolean;
      }>;
    for (const payload of [{ credit: 0 }, { credit: 1001 }, { credit: "3" }, { credit: 1.5 }, {}, null]) {
      assert.equal((await ask("worker.credit", payload)).error?.code, "BAD_REQUEST", JSON.stringify(payload));
    }
    for (const payload of [{}, { taskId: 7, result: 1 }, { taskId: "t", error: { retryable: true } }]) {
      assert.equal((await ask("task.done", payload)).error?.code, "BAD_REQUEST", JSON.stringify(payload));
    }
    assert.equal((await ask("task.progress", { taskId: "t", progress: 101 })).error?.code, "BAD_REQUEST");
    // An outcome or progress for a run the node never gave this connection changes nothing.
    assert.deepEqual(await ask("task.done", { taskId: "not-mine", result: { forged: true } }), { ok: true, accepted: false });
    assert.deepEqual(await ask("task.progress", { taskId: "not-mine", progress: 50 }), { ok: true, accepted: false });
    // Credit accumulates up to the cap, however often it is granted.
    assert.equal((await ask("worker.credit", { credit: 1000 })).credit, 1000);
    assert.equal((await ask("worker.credit", { credit: 1000 })).credit, 1000);
    worker.close();
    const dashboard = await connect(nodeA.url, "pools", { token, transports: ["websocket"] });
    const refused = (await dashboard.timeout(5000).emitWithAck("worker.credit", { credit: 1 })) as {
      ok: boolean;
      error?: { code: string };
    };
    assert.equal(refused.error?.code, "FORBIDDEN");
    dashboard.close();
    assert.equal((await api(nodeA.url, "GET", "/health", {})).status, 200);
  });

  it("kill -9 of a worker mid-run: the job goes back to the queue and another worker finishes it, once", async () => {
    const tenant = freshTenant();
    const token = mintToken({ tenant });
    const pool = await createPool(nodeA.url, token, "batch");
    const first = hubWorker(tenant, pool, [nodeA.url], "w-first", { WORKER_CONCURRENCY: "1" });
    await first.connected();
    const task = await submitTask(nodeA.url, token, { type: "sleep", poolId: pool, payload: { ms: 4000 } });
    const started = await waitForTask(nodeA.url, token, task.id, ["started"]);
    assert.equal(started.workerId, "w-first");
    const second = hubWorker(tenant, pool, [nodeB.url], "w-second", { WORKER_CONCURRENCY: "1" });
    await second.connected();
    await first.kill();
    const done = await waitForTask(nodeA.url, token, task.id, ["completed", "failed"], 30_000);
    assert.equal(done.status, "completed", JSON.stringify(done));
    assert.equal(done.workerId, "w-second");
    assert.equal(await eventsOf(nodeA.url, token, task.id, "task.completed"), 1);
    await second.stop();
  });

  it("kill -9 of the hub node that holds a worker's job: the lock lapses and the job completes once, through the other node", async () => {
    const nodeC = await startServer({ NODE_ID: "hub-c" });
    try {
      const tenant = freshTenant();
      const token = mintToken({ tenant });
      const pool = await createPool(nodeB.url, token, "edge");
      // Connected to C first; it moves to B when C dies.
      const worker = hubWorker(tenant, pool, [nodeC.url, nodeB.url], "w-edge", { WORKER_CONCURRENCY: "1" });
      await worker.connected();
      const task = await submitTask(nodeB.url, token, { type: "sleep", poolId: pool, payload: { ms: 2500 } });
      await waitForTask(nodeB.url, token, task.id, ["started"]);
      await nodeC.kill();
      await worker.connected(2);
      const done = await waitForTask(nodeB.url, token, task.id, ["completed", "failed"], 45_000);
      assert.equal(done.status, "completed", JSON.stringify(done));
      assert.equal(await eventsOf(nodeB.url, token, task.id, "task.completed"), 1);
      assert.ok(done.attempts >= 2, `the run cut short counts as started (${done.attempts})`);
      await worker.stop();
    } finally {
      await nodeC.kill();
    }
  });

  it("the agent keeps a pool's size on its host: 0 → 2 workers, restarts one killed with kill -9, scales down to 1", async () => {
    const tenant = freshTenant();
    const token = mintToken({ tenant });
    const pool = await createPool(nodeA.url, token, "fleet");
    let output = "";
    const agent = spawn(process.execPath, ["--import", "tsx", "src/worker/agent.ts", "--pool", pool], {
      env: {
        PATH: process.env.PATH ?? "",
        ...NOWHERE,
        WORKER_TOKEN: mintToken({ tenant, permissions: ["pools:work"], poolId: pool }),
        SWITCHYARD_URL: `${nodeA.url},${nodeB.url}`,
        WORKER_ID: "fleet",
        AGENT_POLL_MS: "200",
        SHUTDOWN_TIMEOUT_MS: "10000",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    agent.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    agent.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => agent.once("exit", resolve));
    const workersOf = async (): Promise<Array<[string, string]>> => {
      const body = (await api(nodeA.url, "GET", `/api/v1/pools/${pool}`, { token })).body as {
        pool: { workers: Array<{ id: string; status: string }> };
      };
      return body.pool.workers.map((w) => [w.id, w.status] as [string, string]).sort();
    };
    const until = async (predicate: () => Promise<boolean> | boolean, what: string): Promise<void> => {
      for (let i = 0; i < 300; i++) {
        if (await predicate()) return;
        await sleep(100);
      }
      throw new Error(`timed out waiting for ${what}; workers ${JSON.stringify(await workersOf())}\n${output.slice(-3000)}`);
    };
    const started = (slot: number): number[] =>
      [...output.matchAll(/\{[^\n]*"msg":"worker started"[^\n]*\}/g)]
        .map((m) => JSON.parse(m[0]) as { slot: number; pid: number })
        .filter((l) => l.slot === slot)
        .map((l) => l.pid);
    try {
      await until(() => output.includes("agent started"), "the agent");
      assert.deepEqual(await workersOf(), [], "desiredWorkers 0: nothing runs");
      assert.equal((await api(nodeA.url, "POST", `/api/v1/pools/${pool}/scale`, { token, body: { desiredWorkers: 2 } })).status, 202);
      await until(
        async () =>
          JSON.stringify(await workersOf()) ===
          JSON.stringify([
            ["fleet-0", "idle"],
            ["fleet-1", "idle"],
          ]),
        "two idle workers",
      );

      const [pid] = started(1);
      process.kill(pid!, "SIGKILL");
      await until(() => started(1).length === 2, "slot 1 restarted");
      assert.match(output, /"msg":"worker exited; restarting"/);
      const task = await submitTask(nodeB.url, token, { type: "echo", poolId: pool, payload: { fleet: true } });
      assert.equal((await waitForTask(nodeA.url, token, task.id, ["completed", "failed"])).status, "completed");

      assert.equal((await api(nodeA.url, "POST", `/api/v1/pools/${pool}/scale`, { token, body: { desiredWorkers: 1 } })).status, 202);
      await until(() => /"slot":1,[^\n]*"msg":"worker stopped"/.test(output), "slot 1 drained and stopped");
      await until(
        async () => (await workersOf()).filter(([, status]) => status !== "offline" && status !== "draining").length === 1,
        "one worker left",
      );
      assert.equal(started(1).length, 2, "a worker scaled away is not restarted");
    } finally {
      agent.kill("SIGTERM");
      const code = await Promise.race([exited, sleep(15_000).then(() => "timeout" as const)]);
      if (code === "timeout") agent.kill("SIGKILL");
      assert.equal(code, 0, output.slice(-2000));
    }
  });

  it("autoscaling: with targetQueuedPerWorker the hub sets desiredWorkers from the queue, within minWorkers and maxWorkers, as pool.scaling", async () => {
    const tenant = freshTenant();
    const token = mintToken({ tenant });
    const refused = await api(nodeA.url, "POST", "/api/v1/pools", {
      token,
      body: { name: "bad", minWorkers: 4, maxWorkers: 2, targetQueuedPerWorker: 2 },
    });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error.details[0].field, "minWorkers");
    const created = await api(nodeA.url, "POST", "/api/v1/pools", {
      token,
      body: { name: "elastic", minWorkers: 1, maxWorkers: 3, targetQueuedPerWorker: 2 },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const pool = created.body.pool.id as string;
    assert.deepEqual([created.body.pool.minWorkers, created.body.pool.maxWorkers, created.body.pool.targetQueuedPerWorker], [1, 3, 2]);
    const socket = await connect(nodeB.url, "pools", { token, transports: ["websocket"] });
    const seen = new EventRecorder(socket);
    await subscribe(socket, `pool:${pool}`);
    const scalings = (): Array<[number, number]> =>
      seen.of("pool.scaling").map((e) => [(e.data as { from: number }).from, (e.data as { to: number }).to]);

    // No queue: the minimum.
    await seen.until(() => scalings().length === 1, 15_000, "scaled to the minimum");
    assert.deepEqual(scalings(), [[0, 1]]);
    // Nobody serves the pool: 5 tasks wait, ceil(5 / 2) = 3 workers; 5 more, still 3 (the maximum).
    const tasks = [];
    for (let i = 0; i < 5; i++) tasks.push(await submitTask(nodeA.url, token, { type: "echo", poolId: pool }));
    await seen.until(() => scalings().length === 2, 15_000, "scaled up");
    for (let i = 0; i < 5; i++) tasks.push(await submitTask(nodeA.url, token, { type: "echo", poolId: pool }));
    // A PATCH that would put the maximum below the minimum is refused, and changes nothing.
    assert.equal((await api(nodeA.url, "PATCH", `/api/v1/pools/${pool}`, { token, body: { maxWorkers: 0 } })).status, 400);
    for (const task of tasks) assert.equal((await api(nodeA.url, "POST", `/api/v1/tasks/${task.id}/cancel`, { token })).status, 200);
    await seen.until(() => scalings().length === 3, 15_000, "scaled back down");
    assert.deepEqual(scalings(), [
      [0, 1],
      [1, 3],
      [3, 1],
    ]);
    const view = (await api(nodeA.url, "GET", `/api/v1/pools/${pool}`, { token })).body.pool as {
      desiredWorkers: number;
      maxWorkers: number;
    };
    assert.deepEqual([view.desiredWorkers, view.maxWorkers], [1, 3]);
    socket.close();
  });

  it("a worker written in Python from the protocol document alone completes tasks (examples/python-worker)", async function () {
    if (!pythonSocketIoAvailable()) {
      skipBecause(this, "python-socketio is missing (apt-get install -y python3-socketio python3-websocket)");
    }
    const tenant = freshTenant();
    const token = mintToken({ tenant });
    const pool = await createPool(nodeA.url, token, "python");
    let output = "";
    const child: ChildProcess = spawn(PYTHON, ["examples/python-worker/worker.py"], {
      env: {
        PATH: process.env.PATH ?? "",
        SWITCHYARD_URL: nodeA.url,
        WORKER_TOKEN: mintToken({ tenant, permissions: ["pools:work"], poolId: pool }),
        WORKER_ID: "py-1",
        WORKER_CONCURRENCY: "2",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    try {
      for (let i = 0; i < 100 && !output.includes("registered"); i++) await sleep(100);
      assert.match(output, /registered/, output);
      const tasks = [
        await submitTask(nodeA.url, token, { type: "py.upper", poolId: pool, payload: { text: "switchyard" } }),
        await submitTask(nodeA.url, token, { type: "echo", poolId: pool, payload: { from: "python" } }),
        await submitTask(nodeA.url, token, { type: "py.upper", poolId: pool, payload: { text: 42 }, maxAttempts: 3 }),
      ];
      const [upper, echo, bad] = await Promise.all(tasks.map((t) => waitForTask(nodeA.url, token, t.id, ["completed", "failed"])));
      assert.deepEqual(upper!.result, { text: "SWITCHYARD", by: "py-1" });
      assert.equal(upper!.workerId, "py-1");
      assert.deepEqual(echo!.result, { from: "python" });
      assert.equal(bad!.status, "failed", "a non-retryable error fails at once");
      assert.equal(bad!.attempts, 1);
      assert.match(bad!.error!.message, /expects/);
    } finally {
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(5000)]);
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});
