import assert from "node:assert/strict";
import type { Envelope } from "../src/protocol/events.js";
import type { PoolView } from "../src/protocol/views.js";
import { connect, EventRecorder, sleep, subscribe } from "./support/clients.js";
import { freshTenant } from "./support/env.js";
import { api } from "./support/http.js";
import { isolatedNodeEnv, isolatedPrefix } from "./support/isolation.js";
import { startServer, startWorker, type ServerProcess } from "./support/server.js";
import { submitTask, waitForTask, type TaskView } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";

/**
 * The most tasks running at once, as the stored order of a tasks room tells it: a task runs from its
 * `task.started` (a claim stores it with its assignment) to its terminal event. The room's order is the commit
 * order, and a claim commits after BullMQ made the job active, a finish before BullMQ hears of it: so this is
 * never more than BullMQ's own count of active jobs.
 */
function mostRunning(events: readonly Envelope[], only?: (task: TaskView) => boolean): number {
  const running = new Set<string>();
  let most = 0;
  for (const event of events) {
    const task = (event.data as { task?: TaskView }).task;
    if (!task || (only && !only(task))) continue;
    if (event.type === "task.started") running.add(task.id);
    if (["task.completed", "task.failed", "task.cancelled", "task.retrying"].includes(event.type)) running.delete(task.id);
    most = Math.max(most, running.size);
  }
  return most;
}

describe("pools that can be paused and bounded", () => {
  // Two executing nodes of their own (every node's embedded worker serves every tenant's default pool), so the
  // bounds are proven across nodes and no other test's node runs these tasks.
  const prefix = isolatedPrefix("poolctl");
  let nodes: ServerProcess[];
  before(async () => {
    nodes = await Promise.all(
      ["poolctl-a", "poolctl-b"].map((id) =>
        startServer({ NODE_ID: id, EMBEDDED_WORKER: "true", WORKER_CONCURRENCY: "4", TASK_LOCK_MS: "3000", ...isolatedNodeEnv(prefix) }),
      ),
    );
  });
  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  });

  it("pause: running tasks finish, new ones stay queued until resume; each change is pool.updated; paused is on the view", async () => {
    const token = mintToken({ tenant: freshTenant("pause") });
    const [a, b] = nodes.map((node) => node.url) as [string, string];
    const running = await submitTask(a, token, { type: "sleep", payload: { ms: 800 } });
    await waitForTask(a, token, running.id, ["started"]);
    const pools = await connect(b, "pools", { token });
    const seen = new EventRecorder(pools);
    await subscribe(pools, "pool:default");

    const paused = await api(b, "POST", "/api/v1/pools/default/pause", { token });
    assert.equal(paused.status, 202, JSON.stringify(paused.body));
    assert.equal((paused.body.pool as PoolView).paused, true);
    const updated = await seen.next("pool.updated");
    assert.deepEqual((updated.data as { changed: string[] }).changed, ["paused"]);
    // Pausing again changes nothing and announces nothing.
    assert.equal((await api(a, "POST", "/api/v1/pools/default/pause", { token })).status, 202);

    const waiting = await Promise.all([1, 2, 3].map((n) => submitTask(a, token, { type: "echo", payload: { n } })));
    assert.equal((await waitForTask(a, token, running.id, ["completed"])).status, "completed", "the running task finished");
    await sleep(1000);
    for (const task of waiting) assert.equal((await api(a, "GET", `/api/v1/tasks/${task.id}`, { token })).body.task.status, "queued");
    assert.equal((await api(a, "GET", "/api/v1/pools/default", { token })).body.pool.paused, true);

    const resumed = await api(a, "POST", "/api/v1/pools/default/resume", { token });
    assert.equal(resumed.status, 202);
    assert.equal(resumed.body.pool.paused, false);
    for (const task of waiting) await waitForTask(b, token, task.id, ["completed"]);
    await seen.until((events) => events.filter((e) => e.type === "pool.updated").length === 2);
    assert.deepEqual(
      seen.events.filter((e) => e.type === "pool.updated").map((e) => (e.data as { pool: PoolView }).pool.paused),
      [true, false],
    );
  });

  it("maxConcurrency bounds a pool across every worker and node; null lifts it", async () => {
    const token = mintToken({ tenant: freshTenant("maxconc") });
    const [a, b] = nodes.map((node) => node.url) as [string, string];
    const set = await api(a, "PATCH", "/api/v1/pools/default", { token, body: { maxConcurrency: 2 } });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    assert.equal(set.body.pool.maxConcurrency, 2);
    const socket = await connect(b, "tasks", { token });
    const seen = new EventRecorder(socket);
    await subscribe(socket, "tasks");
    const tasks = await Promise.all(
      Array.from({ length: 8 }, (_, n) => submitTask(n % 2 ? a : b, token, { type: "sleep", payload: { ms: 250 } })),
    );
    for (const task of tasks) await waitForTask(a, token, task.id, ["completed"], 30_000);
    await seen.until((events) => events.filter((e) => e.type === "task.completed").length === 8);
    const most = mostRunning(seen.events);
    assert.ok(most <= 2 && most >= 1, `at most 2 ran at once (saw ${most})`);
    // Both nodes took part: the bound is the pool's, not one worker's.
    const workers = new Set(
      (await Promise.all(tasks.map((t) => api(a, "GET", `/api/v1/tasks/${t.id}`, { token })))).map((r) => r.body.task.workerId),
    );
    assert.ok(workers.size >= 1);

    const lifted = await api(b, "PATCH", "/api/v1/pools/default", { token, body: { maxConcurrency: null } });
    assert.equal(lifted.body.pool.maxConcurrency, null);
    // A pool created with a bound has it from the start.
    const created = await api(a, "POST", "/api/v1/pools", { token, body: { name: "bounded", maxConcurrency: 3 } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.pool.maxConcurrency, 3);
    assert.equal(created.body.pool.paused, false);
  });

  it("refuses maxConcurrency out of range, pause of another tenant's pool, and pause without pools:write, changing nothing", async () => {
    const tenant = freshTenant("poolbad");
    const token = mintToken({ tenant });
    const url = nodes[0]!.url;
    for (const value of [0, -1, 10_001, 1.5, "2", true]) {
      const bad = await api(url, "PATCH", "/api/v1/pools/default", { token, body: { maxConcurrency: value } });
      assert.equal(bad.status, 400, String(value));
      assert.ok(JSON.stringify(bad.body.error).includes("maxConcurrency"), JSON.stringify(bad.body.error));
    }
    const badCreate = await api(url, "POST", "/api/v1/pools", { token, body: { name: "x", maxConcurrency: 0 } });
    assert.equal(badCreate.status, 400);
    assert.ok(JSON.stringify(badCreate.body.error).includes("maxConcurrency"));
    assert.equal((await api(url, "GET", "/api/v1/pools/default", { token })).body.pool.maxConcurrency, null);

    const own = await api(url, "POST", "/api/v1/pools", { token, body: { name: "mine" } });
    const other = mintToken({ tenant: freshTenant("poolbad-other") });
    assert.equal((await api(url, "POST", `/api/v1/pools/${own.body.pool.id}/pause`, { token: other })).status, 404);
    const readOnly = mintToken({ tenant, permissions: ["pools:read"] });
    assert.equal((await api(url, "POST", `/api/v1/pools/${own.body.pool.id}/pause`, { token: readOnly })).status, 403);
    assert.equal((await api(url, "GET", `/api/v1/pools/${own.body.pool.id}`, { token })).body.pool.paused, false);
  });
});

describe("TENANT_MAX_RUNNING_TASKS and fair dispatch", () => {
  const prefix = isolatedPrefix("tenantmax");
  let nodes: ServerProcess[];
  before(async () => {
    nodes = await Promise.all(
      ["tmax-a", "tmax-b"].map((id) =>
        startServer({
          NODE_ID: id,
          EMBEDDED_WORKER: "true",
          WORKER_CONCURRENCY: "4",
          TASK_LOCK_MS: "3000",
          TENANT_MAX_RUNNING_TASKS: "2",
          ...isolatedNodeEnv(prefix),
        }),
      ),
    );
  });
  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  });

  it("bounds a tenant's running tasks across its pools, workers and nodes; another tenant is not held by that backlog", async () => {
    const tenant = freshTenant("tmax");
    const token = mintToken({ tenant });
    const [a, b] = nodes.map((node) => node.url) as [string, string];
    // A second pool, served by a standalone worker: the bound spans pools and kinds of worker.
    const pool = (await api(a, "POST", "/api/v1/pools", { token, body: { name: "second" } })).body.pool as PoolView;
    const worker = startWorker({
      token: mintToken({ tenant, permissions: ["pools:work"], poolId: pool.id, ttl: 3600 }),
      poolId: pool.id,
      urls: [b],
      env: { REDIS_PREFIX: prefix, WORKER_ID: "w-tmax", WORKER_CONCURRENCY: "4" },
    });
    try {
      await worker.connected();
      const socket = await connect(a, "tasks", { token });
      const seen = new EventRecorder(socket);
      await subscribe(socket, "tasks");
      const backlog = await Promise.all(
        Array.from({ length: 10 }, (_, n) =>
          submitTask(n % 2 ? a : b, token, { type: "sleep", payload: { ms: 300 }, ...(n % 3 === 0 ? { poolId: pool.id } : {}) }),
        ),
      );

      // Another tenant's task, submitted behind that backlog, completes while the backlog still waits.
      const otherToken = mintToken({ tenant: freshTenant("tmax-other") });
      const other = await submitTask(b, otherToken, { type: "echo", payload: {} });
      await waitForTask(b, otherToken, other.id, ["completed"], 15_000);
      const states = await Promise.all(backlog.map((t) => api(a, "GET", `/api/v1/tasks/${t.id}`, { token })));
      assert.ok(
        states.some((r) => r.body.task.status === "queued"),
        "the other tenant did not wait for this tenant's backlog",
      );

      for (const task of backlog) await waitForTask(a, token, task.id, ["completed"], 30_000);
      await seen.until((events) => events.filter((e) => e.type === "task.completed").length === backlog.length, 15_000);
      const most = mostRunning(seen.events);
      assert.ok(most <= 2 && most >= 1, `at most 2 of the tenant's tasks ran at once (saw ${most})`);
      // Attempts stay exact: waiting for a slot is not a run.
      for (const state of states) assert.ok((await waitForTask(a, token, state.body.task.id, ["completed"])).attempts === 1);
    } finally {
      await worker.stop();
    }
  });
});
