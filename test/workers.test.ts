import assert from "node:assert/strict";
import type { Socket } from "socket.io-client";
import { connect, EventRecorder, request, sleep, subscribe } from "./support/clients.js";
import { freshTenant } from "./support/env.js";
import { api } from "./support/http.js";
import { startServer, startWorker, type ServerProcess } from "./support/server.js";
import { sharedServer } from "./support/shared.js";
import { submitOnceTypeKnown, submitTask, takeJob, waitForTask } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";
import { scrape, total } from "./support/metrics.js";
import type { Envelope } from "../src/protocol/events.js";

interface WorkerChange {
  poolId: string;
  previous: string | null;
  worker: { id: string; status: string; node: string };
}
const change = (e: Envelope): WorkerChange => e.data as WorkerChange;

async function createPool(url: string, token: string, name: string): Promise<string> {
  const response = await api(url, "POST", "/api/v1/pools", { token, body: { name } });
  assert.equal(response.status, 201);
  return response.body.pool.id as string;
}

async function dashboard(url: string, token: string, room: string): Promise<EventRecorder> {
  const socket = await connect(url, "pools", { token });
  const recorder = new EventRecorder(socket);
  assert.equal((await subscribe(socket, room)).ok, true);
  return recorder;
}

const FAST_PRESENCE = {
  WORKER_HEARTBEAT_INTERVAL_MS: "300",
  WORKER_HEARTBEAT_TIMEOUT_MS: "2000",
  WORKER_DISCONNECT_GRACE_MS: "1000",
};

describe("pool workers", () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServer({ NODE_ID: "workers-main", ...FAST_PRESENCE });
  });
  after(async () => {
    await server.stop();
  });

  it("a dashboard on pool:<id> sees the worker go idle → busy → idle around its task, and task.assigned names it", async () => {
    const tenant = freshTenant();
    const token = mintToken({ tenant });
    const poolId = await createPool(server.url, token, "gpu");
    const seen = await dashboard(server.url, token, `pool:${poolId}`);
    const worker = startWorker({
      token: mintToken({ tenant, permissions: ["pools:work"], poolId }),
      poolId,
      urls: [server.url],
      env: { WORKER_ID: "w-alpha" },
    });
    await seen.until((e) => e.some((x) => x.type === "worker.status_changed" && change(x).worker.status === "idle"), 15_000, "worker idle");
    const task = await submitTask(server.url, token, { type: "sleep", payload: { ms: 600 }, poolId });
    await waitForTask(server.url, token, task.id, ["completed"]);
    const statuses = await seen.until(
      (e) =>
        e
          .filter((x) => x.type === "worker.status_changed")
          .map((x) => change(x).worker.status)
          .join(",") === "idle,busy,idle",
      10_000,
      "idle, busy, idle",
    );
    const assigned = statuses.find((e) => e.type === "task.assigned")!;
    assert.ok(assigned, "task.assigned reaches /pools pool:<id>");
    assert.equal((assigned.data as { task: { id: string; workerId: string } }).task.id, task.id);
    assert.equal((assigned.data as { task: { workerId: string } }).task.workerId, "w-alpha");
    const stored = await waitForTask(server.url, token, task.id, ["completed"]);
    assert.equal(stored.workerId, "w-alpha");
    const aggregate = await seen.next("pool.status_changed", `pool:${poolId}`);
    assert.ok("workers" in (aggregate.data as object) && "queueDepth" in (aggregate.data as object));
    const pool = (await api(server.url, "GET", `/api/v1/pools/${poolId}`, { token })).body.pool;
    assert.deepEqual(
      pool.workers.map((w: { id: string; status: string; node: string }) => [w.id, w.status, w.node]),
      [["w-alpha", "idle", "workers-main"]],
    );
    assert.equal(await worker.stop(), 0);
  });

  it("runs custom task types the worker registered", async () => {
    const tenant = freshTenant();
    const token = mintToken({ tenant });
    const poolId = await createPool(server.url, token, "custom");
    const rejected = await api(server.url, "POST", "/api/v1/tasks", { token, body: { type: "shout", poolId } });
    assert.equal(rejected.status, 400, "unknown before a worker registers it");
    const worker = startWorker({
      token: mintToken({ tenant, permissions: ["pools:work"], poolId }),
      poolId,
      urls: [server.url],
      args: ["--handlers", "examples/handlers.ts"],
    });
    await worker.connected();
    const task = await submitOnceTypeKnown(server.url, token, { type: "shout", poolId, payload: { text: "hello" } });
    const done = await waitForTask(server.url, token, task.id, ["completed", "failed"]);
    assert.equal(done.result, "HELLO");
    const elsewhere = await api(server.url, "POST", "/api/v1/tasks", { token, body: { type: "shout" } });
    assert.equal(elsewhere.status, 400, "registered for its own pool only");
  });

  it("a result it cannot send fails the task with RESULT_INVALID, and messy errors and progress are cleaned, on one connection", async () => {
    const tenant = freshTenant();
    const token = mintToken({ tenant });
    const poolId = await createPool(server.url, token, "awkward");
    const worker = startWorker({
      token: mintToken({ tenant, permissions: ["pools:work"], poolId }),
      poolId,
      urls: [server.url],
      args: ["--handlers", "test/fixtures/awkward-handlers.ts"],
    });
    await worker.connected();
    const run = async (type: string) =>
      waitForTask(
        server.url,
        token,
        (await submitOnceTypeKnown(server.url, token, { type, poolId, maxAttempts: 3 })).id,
        ["completed", "failed"],
        20_000,
      );
    const [surrogate, bigint, huge, messy, progress] = await Promise.all(
      ["lone-surrogate-result", "bigint-result", "huge-result", "messy-error", "messy-progress"].map(run),
    );
    for (const [task, problem] of [
      [surrogate, /the handler's result at text must not contain lone UTF-16 surrogates/],
      [bigint, /the handler's result is not JSON: .*BigInt/],
      [huge, /the handler's result is 2097154 bytes of JSON; the server takes at most 1044480/],
    ] as const) {
      assert.equal(task!.status, "failed", JSON.stringify(task));
      assert.equal(task!.error?.code, "RESULT_INVALID");
      assert.match(task!.error.message, problem);
      assert.equal(task!.attempts, 1, "not retried: the same handler would return the same");
    }
    assert.equal(messy!.status, "failed");
    assert.equal(messy!.error?.code, "HANDLER_ERROR");
    assert.equal(messy!.attempts, 3, "a handler error is retried as usual");
    assert.ok(
      messy!.error.message.startsWith("bad\ufffdnews \ufffd yyy") && messy!.error.message.endsWith("…"),
      messy!.error.message.slice(0, 40),
    );
    assert.equal(messy!.error.message.length, 4000);
    const stack = messy!.error.stack ?? "";
    assert.ok(
      stack.startsWith("Error: bad\ufffdnews") && stack.length === 4000 && !stack.includes("\u0000"),
      `the stack is cleaned and cut too: ${stack.slice(0, 40)}`,
    );
    assert.equal(progress!.status, "completed");
    assert.equal(progress!.result, "done");
    const events = await api(server.url, "GET", `/api/v1/events?namespace=tasks&room=task:${progress!.id}`, { token });
    const reported = (events.body.items as Array<{ type: string; data: { progress?: number; detail?: string } }>).find(
      (e) => e.type === "task.progress",
    );
    assert.equal(reported?.data.progress, 0);
    assert.match(reported?.data.detail ?? "", /^half\ufffddone z+…$/);
    // All of it on the connection it started with: nothing was refused, nothing cut the connection.
    assert.equal((worker.logs().match(/"msg":"connected"/g) ?? []).length, 1, worker.logs());
    assert.equal(worker.process.exitCode, null);
  });

  it("kill -9: the worker becomes offline exactly once, and its in-flight task is retried by another worker", async () => {
    const tenant = freshTenant();
    const token = mintToken({ tenant });
    const poolId = await createPool(server.url, token, "crashy");
    const workToken = mintToken({ tenant, permissions: ["pools:work"], poolId });
    const seen = await dashboard(server.url, token, `pool:${poolId}`);
    // Both workers are up before the task: had the second one started after it (a few seconds on a busy machine),
    // the first could have finished the task before the kill. The one that takes it is killed.
    const workers = new Map(
      ["w-first", "w-second"].map((id) => [id, startWorker({ token: workToken, poolId, urls: [server.url], env: { WORKER_ID: id } })]),
    );
    await Promise.all([...workers.values()].map((w) => w.connected()));
    const tasks = await connect(server.url, "tasks", { token });
    const taskSeen = new EventRecorder(tasks);
    await subscribe(tasks, `pool:${poolId}`);
    const task = await submitTask(server.url, token, { type: "sleep", payload: { ms: 2500 }, poolId });
    const runner = ((await taskSeen.next("task.started")).data as { task: { workerId: string } }).task.workerId;
    const other = runner === "w-first" ? "w-second" : "w-first";
    await workers.get(runner)!.kill();
    const offlineOf = (id: string) => (e: Envelope[]) =>
      e.some((x) => x.type === "worker.status_changed" && change(x).worker.id === id && change(x).worker.status === "offline");
    await seen.until(offlineOf(runner), 20_000, `${runner} offline`);
    const done = await waitForTask(server.url, token, task.id, ["completed", "failed"], 30_000);
    assert.equal(done.status, "completed");
    assert.equal(done.workerId, other);
    // A second offline for the killed worker would come from its disconnect grace or heartbeat timeout running out
    // again. The other worker killed now goes offline through the same timers, started later: once its offline is
    // in, any duplicate would be too.
    await workers.get(other)!.kill();
    await seen.until(offlineOf(other), 20_000, `${other} offline`);
    const runnerChanges = seen.events
      .filter((x) => x.type === "worker.status_changed" && change(x).worker.id === runner)
      .map((x) => change(x).worker.status);
    assert.equal(runnerChanges.filter((status) => status === "offline").length, 1, `offline exactly once: ${runnerChanges.join(", ")}`);
    assert.equal(runnerChanges.at(-1), "offline");
    assert.equal(taskSeen.of("task.completed").length, 1);
  });

  describe("what a worker token may do", () => {
    let shared: ServerProcess;
    before(async () => {
      shared = await sharedServer();
    });

    async function workerSocket(tenant: string, poolId: string, id = "w-sec"): Promise<Socket> {
      const socket = await connect(shared.url, "pools", {
        token: mintToken({ tenant, permissions: ["pools:work"], poolId }),
        auth: { token: mintToken({ tenant, permissions: ["pools:work"], poolId }), worker: { id } },
      });
      await new Promise<void>((resolve) => socket.once("worker.welcome", () => resolve()));
      return socket;
    }

    it("a pools:work token for pool P cannot report for pool Q, nor report Q's tasks, nor subscribe anywhere", async () => {
      const tenant = freshTenant();
      const token = mintToken({ tenant });
      const p = await createPool(shared.url, token, "P");
      const q = await createPool(shared.url, token, "Q");
      const socket = await workerSocket(tenant, p);
      const ok = await request<{ ok: boolean; status: string }>(socket, "worker.status", { status: "busy" });
      assert.deepEqual(ok, { ok: true, status: "busy" });
      const other = await request<{ ok: boolean; error: { code: string } }>(socket, "worker.status", { status: "idle", poolId: q });
      assert.equal(other.error.code, "FORBIDDEN");
      const qTask = await submitTask(shared.url, token, { type: "echo", poolId: q });
      const report = await request<{ ok: boolean; error: { code: string } }>(socket, "task.report", {
        taskId: qTask.id,
        lease: "made-up#1",
        kind: "assigned",
        attempt: 1,
        workerId: "w-sec",
      });
      assert.equal(report.error.code, "FORBIDDEN");
      assert.equal((await waitForTask(shared.url, token, qTask.id, ["queued"])).status, "queued", "Q's task untouched");
      const foreignTask = await submitTask(shared.url, mintToken({ tenant: freshTenant() }), { type: "sleep", payload: { ms: 5000 } });
      const foreign = await request<{ ok: boolean; error: { code: string } }>(socket, "task.report", {
        taskId: foreignTask.id,
        lease: "made-up#1",
        kind: "completed",
        result: 1,
      });
      assert.equal(foreign.error.code, "NOT_FOUND");
      assert.equal((await subscribe(socket, "pools")).error?.code, "FORBIDDEN");
      assert.equal((await subscribe(socket, `pool:${p}`)).error?.code, "FORBIDDEN");
      const bad = await request<{ ok: boolean; error: { code: string } }>(socket, "worker.status", { status: "exploding" });
      assert.equal(bad.error.code, "BAD_REQUEST");
      const badReport = await request<{ ok: boolean; error: { code: string } }>(socket, "task.report", { kind: "completed" });
      assert.equal(badReport.error.code, "BAD_REQUEST");
      const noLease = await request<{ ok: boolean; error: { code: string } }>(socket, "task.report", {
        taskId: qTask.id,
        kind: "cancelled",
      });
      assert.equal(noLease.error.code, "BAD_REQUEST", "a report without a lease is refused");
      // PostgreSQL cannot store NUL characters: refused up front, not a failed write later.
      const nul = await request<{ ok: boolean; error: { code: string } }>(socket, "worker.status", {
        status: "error",
        detail: "bad\u0000byte",
      });
      assert.equal(nul.error.code, "BAD_REQUEST");
      assert.equal((await request<{ ok: boolean }>(socket, "worker.heartbeat", {})).ok, true);
    });

    it("a flood of heartbeats from one worker socket is answered, and writes presence and the database at most once per half interval", async () => {
      const tenant = freshTenant();
      const token = mintToken({ tenant });
      const p = await createPool(shared.url, token, "P");
      const socket = await workerSocket(tenant, p, "w-flood");
      const heartbeats = async () => total([await scrape(shared.url)], "switchyard_worker_heartbeats_total", { outcome: "written" });
      const absorbed = async () => total([await scrape(shared.url)], "switchyard_worker_heartbeats_total", { outcome: "absorbed" });
      const lastHeartbeatAt = async () => {
        const pool = await api(shared.url, "GET", `/api/v1/pools/${p}`, { token });
        const worker = (pool.body.pool.workers as Array<{ id: string; status: string; lastHeartbeatAt: string }>).find(
          (w) => w.id === "w-flood",
        )!;
        assert.equal(worker.status, "idle");
        return Date.parse(worker.lastHeartbeatAt);
      };
      const [writtenBefore, absorbedBefore] = [await heartbeats(), await absorbed()];
      const acks = await Promise.all(
        Array.from({ length: 400 }, () => request<{ ok: boolean; ts: string }>(socket, "worker.heartbeat", {})),
      );
      assert.ok(
        acks.every((ack) => ack.ok && !Number.isNaN(Date.parse(ack.ts))),
        "every heartbeat is answered",
      );
      // The shared node's interval is 5 s: these 400 came within one half interval, so one of them wrote.
      assert.equal((await heartbeats()) - writtenBefore, 1);
      assert.equal((await absorbed()) - absorbedBefore, 399);
      // Half an interval later the next one writes again: a worker heartbeating at its interval writes every time.
      const firstWrite = await lastHeartbeatAt();
      await sleep(2600);
      assert.equal((await request<{ ok: boolean }>(socket, "worker.heartbeat", {})).ok, true);
      assert.equal((await heartbeats()) - writtenBefore, 2);
      assert.ok((await lastHeartbeatAt()) >= firstWrite + 2500, "the database heard the worker again");
    });

    it("a worker token reporting on a task it never took from the queue changes nothing", async () => {
      const tenant = freshTenant();
      const token = mintToken({ tenant });
      const p = await createPool(shared.url, token, "P");
      const task = await submitTask(shared.url, token, { type: "echo", poolId: p, payload: { real: true } });
      const socket = await workerSocket(tenant, p, "w-forger");
      const forged = async (report: Record<string, unknown>) =>
        request<{ ok: boolean; accepted?: boolean; status?: string }>(socket, "task.report", {
          taskId: task.id,
          lease: "guessed-token#1",
          ...report,
        });
      // No worker of P runs, so the job waits in the queue: nobody holds its lock.
      assert.deepEqual(await forged({ kind: "assigned", attempt: 1, workerId: "w-forger" }), {
        ok: true,
        accepted: false,
        status: "queued",
      });
      assert.deepEqual(await forged({ kind: "started", attempt: 1 }), { ok: true, accepted: false, status: "queued" });
      assert.deepEqual(
        await forged({ kind: "started", attempt: 1, workerId: "w-forger" }),
        { ok: true, accepted: false, status: "queued" },
        "a claim needs the job's lock too",
      );
      assert.deepEqual(await forged({ kind: "completed", result: { forged: true } }), { ok: true, accepted: false, status: "queued" });
      assert.deepEqual(await forged({ kind: "failed", attempt: 1, error: { code: "X", message: "forged", retryable: false } }), {
        ok: true,
        accepted: false,
        status: "queued",
      });
      const stored = await waitForTask(shared.url, token, task.id, ["queued"]);
      assert.equal(stored.result, null);
      assert.equal(stored.workerId, null);
      const history = await api(shared.url, "GET", `/api/v1/events?namespace=tasks&room=task:${task.id}`, { token });
      assert.deepEqual(
        history.body.items.map((e: { type: string }) => e.type),
        ["task.created", "task.queued"],
      );
    });

    it("a worker holding the job's lock claims it once: a re-sent claim is acknowledged and stores nothing twice", async () => {
      const tenant = freshTenant();
      const token = mintToken({ tenant });
      const p = await createPool(shared.url, token, "P");
      const task = await submitTask(shared.url, token, { type: "echo", poolId: p });
      const taken = await takeJob(tenant, p, "test-worker:1");
      try {
        assert.equal(taken.job.id, task.id);
        const { lease } = taken;
        const socket = await workerSocket(tenant, p, "w-claims");
        const claim = () =>
          request<{ ok: boolean; accepted: boolean; status: string }>(socket, "task.report", {
            taskId: task.id,
            lease,
            kind: "started",
            attempt: 1,
            workerId: "w-claims",
          });
        assert.deepEqual(await claim(), { ok: true, accepted: true, status: "started" });
        assert.deepEqual(await claim(), { ok: true, accepted: true, status: "started" }, "the same claim again: still ours");
        const other = await request<{ ok: boolean; accepted: boolean }>(socket, "task.report", {
          taskId: task.id,
          lease: "someone-else:1#1",
          kind: "completed",
          result: 1,
        });
        assert.equal(other.accepted, false, "another lease cannot complete it");
        const done = await request<{ ok: boolean; accepted: boolean; status: string }>(socket, "task.report", {
          taskId: task.id,
          lease,
          kind: "completed",
          result: { ok: 1 },
        });
        assert.deepEqual(done, { ok: true, accepted: true, status: "completed" });
        const history = await api(shared.url, "GET", `/api/v1/events?namespace=tasks&room=task:${task.id}`, { token });
        assert.deepEqual(
          history.body.items.map((e: { type: string }) => e.type),
          ["task.created", "task.queued", "task.assigned", "task.started", "task.completed"],
        );
        await taken.job.moveToCompleted({ ok: 1 }, taken.lockToken, false);
      } finally {
        await taken.close();
      }
    });

    it("a dashboard token cannot send worker.status, heartbeats or task reports, even an admin one naming a pool", async () => {
      const tenant = freshTenant();
      const socket = await connect(shared.url, "pools", { token: mintToken({ tenant, permissions: ["admin"], poolId: "default" }) });
      for (const [event, payload] of [
        ["worker.status", { status: "idle" }],
        ["worker.heartbeat", {}],
        ["task.report", { taskId: "x", kind: "cancelled" }],
      ] as const) {
        const ack = await request<{ ok: boolean; error: { code: string } }>(socket, event, payload);
        assert.equal(ack.error.code, "FORBIDDEN", event);
      }
      assert.equal((await subscribe(socket, "pools")).ok, true, "the socket stays usable");
      const pool = await api(shared.url, "GET", "/api/v1/pools/default", { token: mintToken({ tenant }) });
      assert.deepEqual(pool.body.pool.workers, [], "no worker was registered for the dashboard");
    });

    it("a worker whose pool does not exist is told so and disconnected", async () => {
      const tenant = freshTenant();
      const socket = await connect(shared.url, "pools", { token: mintToken({ tenant, permissions: ["pools:work"], poolId: "ghost" }) });
      const rejected = await new Promise<{ code: string }>((resolve) => socket.once("worker.rejected", resolve));
      assert.equal(rejected.code, "NOT_FOUND");
    });
  });
});

describe("worker presence across nodes", () => {
  it("a worker whose node dies reconnects to another node within the grace period without flapping offline", async () => {
    const env = { WORKER_HEARTBEAT_INTERVAL_MS: "300", WORKER_HEARTBEAT_TIMEOUT_MS: "4000", WORKER_DISCONNECT_GRACE_MS: "3000" };
    const [nodeA, nodeB] = await Promise.all([
      startServer({ NODE_ID: "presence-a", ...env }),
      startServer({ NODE_ID: "presence-b", ...env }),
    ]);
    try {
      const tenant = freshTenant();
      const token = mintToken({ tenant });
      const poolId = await createPool(nodeB.url, token, "roaming");
      const seen = await dashboard(nodeB.url, token, `pool:${poolId}`);
      const worker = startWorker({
        token: mintToken({ tenant, permissions: ["pools:work"], poolId }),
        poolId,
        urls: [nodeA.url, nodeB.url],
        env: { WORKER_ID: "w-roam" },
      });
      await worker.connected();
      await seen.until(
        (e) => e.some((x) => x.type === "worker.status_changed" && change(x).worker.node === "presence-a"),
        10_000,
        "worker on A",
      );
      await nodeA.kill();
      await worker.connected(2);
      // Wait past the heartbeat timeout and grace period: no offline may appear.
      await sleep(5000);
      const changes = seen.events.filter((x) => x.type === "worker.status_changed").map((x) => change(x).worker.status);
      assert.ok(!changes.includes("offline"), `no offline flap, saw ${changes.join(",")}`);
      const pool = (await api(nodeB.url, "GET", `/api/v1/pools/${poolId}`, { token })).body.pool;
      assert.equal(pool.workers[0].node, "presence-b");
      assert.notEqual(pool.workers[0].status, "offline");
      // And it still works from B.
      const task = await submitTask(nodeB.url, token, { type: "echo", poolId, payload: 7 });
      assert.equal((await waitForTask(nodeB.url, token, task.id, ["completed"])).result, 7);
    } finally {
      await Promise.all([nodeA.kill(), nodeB.stop()]);
    }
  });
});
