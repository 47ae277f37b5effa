import assert from "node:assert/strict";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import pg from "pg";
import { RedisKeys } from "../src/jobs/redis-keys.js";
import { connect, EventRecorder, sleep, subscribe } from "./support/clients.js";
import { freshTenant, TEST_REDIS_PREFIX, TEST_REDIS_URL } from "./support/env.js";
import { api } from "./support/http.js";
import { sharedServer } from "./support/shared.js";
import { submitTask, waitForTask } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";
import { isolatedDatabase, isolatedPrefix } from "./support/isolation.js";
import { startServer, type ServerProcess } from "./support/server.js";

describe("tasks", () => {
  let server: ServerProcess;
  before(async () => {
    server = await sharedServer();
  });

  async function watcher(token: string, room: string) {
    const socket = await connect(server.url, "tasks", { token });
    const recorder = new EventRecorder(socket);
    const ack = await subscribe(socket, room);
    assert.equal(ack.ok, true, JSON.stringify(ack));
    return recorder;
  }

  it("runs an echo task through its whole lifecycle, seen in order by a subscriber and stored to match", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const seen = await watcher(token, "tasks");
    const task = await submitTask(server.url, token, { type: "echo", payload: { hello: "world" } });
    assert.equal(task.status, "queued");
    const events = await seen.until((e) => e.some((x) => x.type === "task.completed"), 10_000, "task.completed");
    assert.deepEqual(
      events.map((e) => e.type),
      ["task.created", "task.queued", "task.assigned", "task.started", "task.completed"],
    );
    const cursors = events.map((e) => e.cursor);
    assert.deepEqual([...cursors].sort(), cursors, "cursors increase");
    const stored = (await api(server.url, "GET", `/api/v1/tasks/${task.id}`, { token })).body.task;
    const final = (events.at(-1)!.data as { task: Record<string, unknown> }).task;
    assert.equal(stored.status, "completed");
    assert.deepEqual(stored.result, { hello: "world" });
    assert.equal(stored.attempts, 1);
    assert.match(stored.workerId, /^embedded@/);
    // An event carries the task without its big fields, except the one it is about: the result in task.completed.
    const { payload, ...slim } = stored;
    assert.deepEqual(final, slim);
    const created = (events[0]!.data as { task: Record<string, unknown> }).task;
    assert.deepEqual(created.payload, payload, "task.created carries the payload");
    for (const event of events.slice(1)) {
      assert.ok(!("payload" in (event.data as { task: object }).task), `${event.type} carries no payload`);
    }
  });

  it("numbers a task's events in order where the outbox ids gain a digit (999 → 1000)", async function () {
    // A database to migrate and a node to start first.
    this.timeout(90_000);
    // The outbox ids of task.created and task.queued straddle the next power of ten: ordered as text, they swapped.
    // A database and node of its own: moving the run's sequence would change the ids other files' nodes write.
    const database = await isolatedDatabase("outbox");
    const db = new pg.Client({ connectionString: database });
    await db.connect();
    try {
      const { rows } = await db.query<{ last: string }>(`SELECT last_value::text AS last FROM "Outbox_id_seq"`);
      const next = 10n ** BigInt(rows[0]!.last.length);
      await db.query(`SELECT setval('"Outbox_id_seq"', $1::bigint)`, [String(next - 2n)]);
    } finally {
      await db.end();
    }
    const node = await startServer({ NODE_ID: "tasks-outbox", DATABASE_URL: database, REDIS_PREFIX: isolatedPrefix("outbox") });
    try {
      const token = mintToken({ tenant: freshTenant() });
      const task = await submitTask(node.url, token, { type: "echo" });
      await waitForTask(node.url, token, task.id, ["completed"]);
      const history = await api(node.url, "GET", `/api/v1/events?namespace=tasks&room=task:${task.id}`, { token });
      assert.deepEqual(
        history.body.items.map((e: { type: string }) => e.type),
        ["task.created", "task.queued", "task.assigned", "task.started", "task.completed"],
      );
    } finally {
      await node.stop();
    }
  });

  it("delivers a task's events to task:<id> and pool:<poolId> too, and task.assigned to /pools", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const seenPool = await watcher(token, "pool:default");
    const poolsSocket = await connect(server.url, "pools", { token });
    const poolsSeen = new EventRecorder(poolsSocket);
    await subscribe(poolsSocket, "pool:default");
    const task = await submitTask(server.url, token, { type: "sleep", payload: { ms: 1500 } });
    const byTask = await watcher(token, `task:${task.id}`);
    await byTask.next("task.completed", `task:${task.id}`);
    // sleep reports progress in ten steps; the worker throttles them (one per 250 ms, the last kept), so how many
    // arrive depends on the machine's pace: never more than the ten, and the last always.
    const progress = byTask.of("task.progress").map((e) => (e.data as { progress: number }).progress);
    assert.ok(progress.length >= 1 && progress.length <= 10, `progress: ${progress.join(",")}`);
    assert.deepEqual(
      [...progress].sort((a, b) => a - b),
      progress,
      "progress only grows",
    );
    assert.equal(progress.at(-1), 100);
    await seenPool.next("task.completed", "pool:default");
    const assigned = await poolsSeen.next("task.assigned", "pool:default");
    const assignedInTasks = await seenPool.next("task.assigned", "pool:default");
    assert.equal(assigned.id, assignedInTasks.id, "one event: the same id in /pools and /tasks");
    assert.equal((assigned.data as { task: { id: string; workerId: string } }).task.id, task.id);
    assert.match((assigned.data as { task: { workerId: string } }).task.workerId, /^embedded@/);
  });

  it("retries a failing task with task.retrying, then fails it with attempts counted", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const seen = await watcher(token, "tasks");
    const task = await submitTask(server.url, token, { type: "fail", payload: { message: "boom" }, maxAttempts: 3 });
    await seen.next("task.failed");
    const types = seen.events.map((e) => e.type);
    assert.equal(types.filter((t) => t === "task.retrying").length, 2);
    assert.equal(types.filter((t) => t === "task.started").length, 3);
    assert.equal(types.at(-1), "task.failed");
    const stored = await waitForTask(server.url, token, task.id, ["failed"]);
    assert.equal(stored.attempts, 3);
    assert.equal(stored.error?.message, "boom");
    assert.match(stored.error?.stack ?? "", /^Error: boom\n\s+at .*handlers\.[jt]s/, "the handler's stack, to find the failing line");
  });

  it("fails a non-retryable failure at once", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const task = await submitTask(server.url, token, { type: "fail", payload: { message: "fatal", retryable: false }, maxAttempts: 5 });
    const stored = await waitForTask(server.url, token, task.id, ["failed"]);
    assert.equal(stored.attempts, 1);
    assert.equal(stored.error?.retryable, false);
  });

  it("enforces timeoutMs: the handler is aborted and the task fails with TIMEOUT", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const task = await submitTask(server.url, token, { type: "sleep", payload: { ms: 10_000 }, timeoutMs: 300 });
    const stored = await waitForTask(server.url, token, task.id, ["failed"]);
    assert.equal(stored.error?.code, "TIMEOUT");
    // Shorter than the sleep it was given: the handler was aborted, not waited for.
    const ranMs = Date.parse(stored.finishedAt!) - Date.parse(stored.startedAt!);
    assert.ok(ranMs < 10_000, `the sleep was cut short: it ran ${ranMs} ms`);
  });

  it("cancels a running task: the handler is aborted and the task ends cancelled", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const seen = await watcher(token, "tasks");
    const task = await submitTask(server.url, token, { type: "sleep", payload: { ms: 20_000 } });
    await seen.next("task.started");
    const cancelled = await api(server.url, "POST", `/api/v1/tasks/${task.id}/cancel`, { token });
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.body.task.status, "cancelled");
    await seen.next("task.cancelled");
    await sleep(500);
    const stored = await waitForTask(server.url, token, task.id, ["cancelled"]);
    assert.equal(stored.status, "cancelled");
    assert.equal(seen.of("task.completed").length, 0);
    assert.equal(seen.of("task.cancelled").length, 1);
    const again = await api(server.url, "POST", `/api/v1/tasks/${task.id}/cancel`, { token });
    assert.equal(again.status, 409);
  });

  it("cancels a queued task: its job is removed and never runs", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const pool = (await api(server.url, "POST", "/api/v1/pools", { token, body: { name: "no-workers" } })).body.pool;
    const seen = await watcher(token, "tasks");
    // A pool without any worker: the task stays queued until cancelled.
    const task = await submitTask(server.url, token, { type: "echo", poolId: pool.id });
    const cancelled = await api(server.url, "POST", `/api/v1/tasks/${task.id}/cancel`, { token });
    assert.equal(cancelled.body.task.status, "cancelled");
    await seen.next("task.cancelled");
    assert.deepEqual(
      seen.events.map((e) => e.type),
      ["task.created", "task.queued", "task.cancelled"],
    );
  });

  it("runs higher priority first", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const pool = (await api(server.url, "POST", "/api/v1/pools", { token, body: { name: "prio" } })).body.pool;
    const low = await submitTask(server.url, token, { type: "echo", poolId: pool.id, priority: 1 });
    const high = await submitTask(server.url, token, { type: "echo", poolId: pool.id, priority: 99 });
    const list = await api(server.url, "GET", `/api/v1/tasks?poolId=${pool.id}&status=queued`, { token });
    assert.deepEqual(new Set(list.body.items.map((t: { id: string }) => t.id)), new Set([low.id, high.id]));
    // The order in which BullMQ will hand the jobs out is the proof.
    const connection = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    const queue = new Queue(RedisKeys.queueName(tenantOf(token), pool.id), { connection, prefix: new RedisKeys(TEST_REDIS_PREFIX).bull });
    try {
      const jobs = await queue.getJobs(["prioritized"], 0, 10, true);
      assert.deepEqual(
        jobs.map((j) => j.id),
        [high.id, low.id],
      );
    } finally {
      await queue.close();
      connection.disconnect();
    }
  });

  it("answers the same Idempotency-Key with the same task, even under 20 parallel requests", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const body = { type: "echo", payload: { n: 1 } };
    const responses = await Promise.all(
      Array.from({ length: 20 }, () =>
        api(server.url, "POST", "/api/v1/tasks", { token, body, headers: { "idempotency-key": "order-42" } }),
      ),
    );
    assert.deepEqual(new Set(responses.map((r) => r.status)), new Set([202]));
    const ids = new Set(responses.map((r) => r.body.task.id));
    assert.equal(ids.size, 1);
    const list = await api(server.url, "GET", "/api/v1/tasks", { token });
    assert.equal(list.body.items.length, 1);
    const conflict = await api(server.url, "POST", "/api/v1/tasks", {
      token,
      body: { type: "echo", payload: { n: 2 } },
      headers: { "idempotency-key": "order-42" },
    });
    assert.equal(conflict.status, 409);
  });

  it("lists tasks newest first with filters and cursor pagination", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await submitTask(server.url, token, { type: "echo", payload: { i } })).id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { status: number; body: { items: Array<{ id: string }>; nextCursor: string | null } } = await api(
        server.url,
        "GET",
        `/api/v1/tasks?limit=2${cursor ? `&cursor=${cursor}` : ""}`,
        { token },
      );
      assert.equal(page.status, 200);
      seen.push(...page.body.items.map((t: { id: string }) => t.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    assert.deepEqual(seen, [...ids].reverse());
    await waitForTask(server.url, token, ids[4]!, ["completed"]);
    const completed = await api(server.url, "GET", "/api/v1/tasks?status=completed", { token });
    assert.ok(completed.body.items.every((t: { status: string }) => t.status === "completed"));
    const bad = await api(server.url, "GET", "/api/v1/tasks?status=exploded", { token });
    assert.equal(bad.status, 400);
  });

  it("validates submissions: unknown type, wrong types, unknown pool, another tenant's pool", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const unknownType = await api(server.url, "POST", "/api/v1/tasks", { token, body: { type: "teleport" } });
    assert.equal(unknownType.status, 400);
    assert.equal(unknownType.body.error.details[0].field, "type");
    const wrong = await api(server.url, "POST", "/api/v1/tasks", { token, body: { type: "echo", priority: "high", maxAttempts: 0 } });
    assert.equal(wrong.status, 400);
    assert.deepEqual(wrong.body.error.details.map((d: { field: string }) => d.field).sort(), ["maxAttempts", "priority"]);
    const noPool = await api(server.url, "POST", "/api/v1/tasks", { token, body: { type: "echo", poolId: "nope" } });
    assert.equal(noPool.status, 404);
    const otherToken = mintToken({ tenant: freshTenant() });
    const theirPool = (await api(server.url, "POST", "/api/v1/pools", { token: otherToken, body: { name: "theirs" } })).body.pool;
    const foreign = await api(server.url, "POST", "/api/v1/tasks", { token, body: { type: "echo", poolId: theirPool.id } });
    assert.equal(foreign.status, 404);
    const forbidden = await api(server.url, "POST", "/api/v1/tasks", {
      token: mintToken({ tenant: freshTenant(), permissions: ["tasks:read"] }),
      body: { type: "echo" },
    });
    assert.equal(forbidden.status, 403);
  });

  it("hides another tenant's task on every route and on subscribe", async () => {
    const owner = mintToken({ tenant: freshTenant() });
    const intruder = mintToken({ tenant: freshTenant() });
    const task = await submitTask(server.url, owner, { type: "echo" });
    assert.equal((await api(server.url, "GET", `/api/v1/tasks/${task.id}`, { token: intruder })).status, 404);
    assert.equal((await api(server.url, "POST", `/api/v1/tasks/${task.id}/cancel`, { token: intruder })).status, 404);
    const socket = await connect(server.url, "tasks", { token: intruder });
    assert.equal((await subscribe(socket, `task:${task.id}`)).error?.code, "NOT_FOUND");
    const history = await api(server.url, "GET", `/api/v1/events?namespace=tasks&room=task:${task.id}`, { token: intruder });
    assert.equal(history.status, 404);
  });
});

function tenantOf(token: string): string {
  return (JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()) as { tenant_id: string }).tenant_id;
}
