import assert from "node:assert/strict";
import pg from "pg";
import { decodeCursor } from "../src/protocol/cursor.js";
import type { Envelope } from "../src/protocol/events.js";
import { TASK_STATUSES } from "../src/protocol/tasks.js";
import { connect, EventRecorder, sleep, subscribe } from "./support/clients.js";
import { freshTenant, TEST_DATABASE_URL } from "./support/env.js";
import { api } from "./support/http.js";
import { sharedServer } from "./support/shared.js";
import { submitTask, waitForTask, type TaskView } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";

/** The operator's side of tasks: retrying one, exact counts per status, and the list's filters. */
describe("operating tasks: retry, counts, filters", () => {
  let url: string;
  before(async () => {
    url = (await sharedServer()).url;
  });

  /** A pool no worker serves: its tasks stay queued. */
  async function unservedPool(token: string): Promise<string> {
    const pool = await api(url, "POST", "/api/v1/pools", { token, body: { name: `unserved-${Math.random().toString(36).slice(2, 8)}` } });
    assert.equal(pool.status, 201, JSON.stringify(pool.body));
    return pool.body.pool.id as string;
  }

  it("retries a failed task: task.retried then task.queued, attempts start over, retries counted, and it runs again", async () => {
    const token = mintToken({ tenant: freshTenant("retry") });
    const task = await submitTask(url, token, { type: "fail", payload: { message: "boom", retryable: false } });
    const failed = await waitForTask(url, token, task.id, ["failed"]);
    assert.equal(failed.attempts, 1);
    assert.equal(failed.retries, 0);

    const socket = await connect(url, "tasks", { token });
    const seen = new EventRecorder(socket);
    await subscribe(socket, `task:${task.id}`);
    const retried = await api(url, "POST", `/api/v1/tasks/${task.id}/retry`, { token });
    assert.equal(retried.status, 202, JSON.stringify(retried.body));
    const view = retried.body.task as TaskView;
    assert.equal(view.status, "queued");
    assert.equal(view.attempts, 0);
    assert.equal(view.retries, 1);
    assert.equal(view.error, null);
    assert.equal(view.finishedAt, null);

    const again = await waitForTask(url, token, task.id, ["failed"]);
    assert.equal(again.attempts, 1, "attempts start over");
    assert.equal(again.retries, 1);
    await seen.next("task.failed");
    assert.deepEqual(
      seen.events.map((e) => e.type),
      ["task.retried", "task.queued", "task.assigned", "task.started", "task.failed"],
    );
    assert.equal((seen.events[0]!.data as { task: TaskView }).task.retries, 1);

    const history = await api(url, "GET", `/api/v1/events?namespace=tasks&room=task:${task.id}`, { token });
    assert.deepEqual(
      (history.body.items as Envelope[]).map((e) => e.type),
      [
        "task.created",
        "task.queued",
        "task.assigned",
        "task.started",
        "task.failed",
        "task.retried",
        "task.queued",
        "task.assigned",
        "task.started",
        "task.failed",
      ],
    );
  });

  it("retries a task cancelled while it ran once its run has stopped, and it completes", async () => {
    const token = mintToken({ tenant: freshTenant("retry-cancel") });
    const task = await submitTask(url, token, { type: "sleep", payload: { ms: 1500 } });
    await waitForTask(url, token, task.id, ["started"]);
    assert.equal((await api(url, "POST", `/api/v1/tasks/${task.id}/cancel`, { token })).status, 200);
    // The cancelled run may still hold its job for a moment: that retry is a 409 saying so, and changes nothing.
    let retried = await api(url, "POST", `/api/v1/tasks/${task.id}/retry`, { token });
    for (let i = 0; retried.status === 409 && i < 50; i++) {
      assert.equal(retried.body.error.code, "INVALID_STATE");
      assert.equal((await api(url, "GET", `/api/v1/tasks/${task.id}`, { token })).body.task.status, "cancelled");
      await sleep(100);
      retried = await api(url, "POST", `/api/v1/tasks/${task.id}/retry`, { token });
    }
    assert.equal(retried.status, 202, JSON.stringify(retried.body));
    const done = await waitForTask(url, token, task.id, ["completed"]);
    assert.equal(done.retries, 1);
    assert.equal(done.error, null);
  });

  it("refuses a retry of a task in any other state (409 INVALID_STATE), of another tenant's task (404), and without tasks:write (403)", async () => {
    const tenant = freshTenant("retry-refused");
    const token = mintToken({ tenant });
    const completed = await submitTask(url, token, { type: "echo", payload: { n: 1 } });
    await waitForTask(url, token, completed.id, ["completed"]);
    const refused = await api(url, "POST", `/api/v1/tasks/${completed.id}/retry`, { token });
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, "INVALID_STATE");
    assert.match(refused.body.error.message, /completed/);

    const queued = await submitTask(url, token, { type: "echo", poolId: await unservedPool(token) });
    const open = await api(url, "POST", `/api/v1/tasks/${queued.id}/retry`, { token });
    assert.equal(open.status, 409);
    assert.equal((await api(url, "GET", `/api/v1/tasks/${queued.id}`, { token })).body.task.retries, 0, "nothing changed");

    const other = await api(url, "POST", `/api/v1/tasks/${completed.id}/retry`, { token: mintToken({ tenant: freshTenant("other") }) });
    assert.equal(other.status, 404);
    const readOnly = await api(url, "POST", `/api/v1/tasks/${completed.id}/retry`, {
      token: mintToken({ tenant, permissions: ["tasks:read"] }),
    });
    assert.equal(readOnly.status, 403);
    assert.equal((await api(url, "POST", `/api/v1/tasks/not-a-task/retry`, { token })).status, 404);
  });

  it("bulk-retries the failed tasks a filter finds: each announced as if retried alone, and each runs again", async () => {
    const token = mintToken({ tenant: freshTenant("bulk-retry") });
    const failed = await Promise.all(
      [1, 2, 3].map((n) => submitTask(url, token, { type: "fail", payload: { message: `x${n}`, retryable: false } })),
    );
    const done = await submitTask(url, token, { type: "echo", payload: {} });
    for (const task of failed) await waitForTask(url, token, task.id, ["failed"]);
    await waitForTask(url, token, done.id, ["completed"]);

    const socket = await connect(url, "tasks", { token });
    const seen = new EventRecorder(socket);
    await subscribe(socket, "tasks");
    const bulk = await api(url, "POST", "/api/v1/tasks/bulk", { token, body: { action: "retry", filter: { type: "fail" } } });
    assert.equal(bulk.status, 202, JSON.stringify(bulk.body));
    assert.deepEqual(bulk.body, { matched: 3, changed: 3 });
    for (const task of failed) {
      const again = await waitForTask(url, token, task.id, ["failed"]);
      assert.equal(again.retries, 1);
    }
    await seen.until(() => seen.events.filter((e) => e.type === "task.failed").length === 3);
    for (const task of failed) {
      const own = seen.events.filter((e) => (e.data as { task: TaskView }).task.id === task.id).map((e) => e.type);
      assert.deepEqual(own, ["task.retried", "task.queued", "task.assigned", "task.started", "task.failed"], task.id);
    }
    // A completed task is not retried: nothing matches a filter for it.
    const none = await api(url, "POST", "/api/v1/tasks/bulk", { token, body: { action: "retry", filter: { status: "completed" } } });
    assert.deepEqual(none.body, { matched: 0, changed: 0 });
    assert.equal((await api(url, "GET", `/api/v1/tasks/${done.id}`, { token })).body.task.status, "completed");
  });

  it("bulk-cancels the open tasks of a pool, each with its own task.cancelled; other pools' tasks are untouched", async () => {
    const token = mintToken({ tenant: freshTenant("bulk-cancel") });
    const pool = await unservedPool(token);
    const other = await unservedPool(token);
    const queued = await Promise.all([1, 2, 3, 4].map((n) => submitTask(url, token, { type: "echo", poolId: pool, payload: { n } })));
    const kept = await submitTask(url, token, { type: "echo", poolId: other });
    const socket = await connect(url, "tasks", { token });
    const seen = new EventRecorder(socket);
    await subscribe(socket, `pool:${pool}`);

    const bulk = await api(url, "POST", "/api/v1/tasks/bulk", {
      token,
      body: { action: "cancel", filter: { poolId: pool, status: "queued" } },
    });
    assert.equal(bulk.status, 202, JSON.stringify(bulk.body));
    assert.deepEqual(bulk.body, { matched: 4, changed: 4 });
    await seen.until(() => seen.events.filter((e) => e.type === "task.cancelled").length === 4);
    assert.deepEqual(
      new Set(seen.events.filter((e) => e.type === "task.cancelled").map((e) => (e.data as { task: TaskView }).task.id)),
      new Set(queued.map((t) => t.id)),
    );
    const counts = await api(url, "GET", `/api/v1/tasks/counts?poolId=${pool}`, { token });
    assert.equal(counts.body.counts.cancelled, 4);
    assert.equal((await api(url, "GET", `/api/v1/tasks/${kept.id}`, { token })).body.task.status, "queued");
    // Cancelled tasks can then be retried in bulk, back on their queue.
    const retried = await api(url, "POST", "/api/v1/tasks/bulk", { token, body: { action: "retry", filter: { poolId: pool } } });
    assert.deepEqual(retried.body, { matched: 4, changed: 4 });
    assert.equal((await api(url, "GET", `/api/v1/tasks/counts?poolId=${pool}`, { token })).body.counts.queued, 4);
  });

  it("refuses a bulk call with a bad body or over its cap (400 naming the field), changing nothing", async () => {
    const tenant = freshTenant("bulk-bad");
    const token = mintToken({ tenant });
    const pool = await unservedPool(token);
    const task = await submitTask(url, token, { type: "echo", poolId: pool });
    for (const [body, field] of [
      [{ action: "delete", filter: {} }, "action"],
      [{ filter: {} }, "action"],
      [{ action: "cancel", filter: { stauts: "queued" } }, "stauts"],
      [{ action: "cancel", filter: { createdAfter: "yesterday" } }, "filter.createdAfter"],
      [{ action: "cancel", filter: {}, everything: true }, "everything"],
      [{ action: "cancel", filter: { poolId: "a b" } }, "filter.poolId"],
    ] as const) {
      const bad = await api(url, "POST", "/api/v1/tasks/bulk", { token, body });
      assert.equal(bad.status, 400, JSON.stringify(body));
      assert.equal(bad.body.error.code, "BAD_REQUEST");
      assert.ok(JSON.stringify(bad.body.error).includes(field), `${JSON.stringify(body)}: ${JSON.stringify(bad.body.error)}`);
    }
    const readOnly = await api(url, "POST", "/api/v1/tasks/bulk", {
      token: mintToken({ tenant, permissions: ["tasks:read"] }),
      body: { action: "cancel" },
    });
    assert.equal(readOnly.status, 403);
    // Another tenant's bulk call never reaches this tenant's tasks.
    const foreign = await api(url, "POST", "/api/v1/tasks/bulk", {
      token: mintToken({ tenant: freshTenant("bulk-other") }),
      body: { action: "cancel", filter: { poolId: pool } },
    });
    assert.deepEqual(foreign.body, { matched: 0, changed: 0 });
    assert.equal((await api(url, "GET", `/api/v1/tasks/${task.id}`, { token })).body.task.status, "queued");

    // Over the cap: 10,001 failed tasks (stored directly, as a tenant's history would hold them) are refused as a whole.
    const db = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await db.connect();
    try {
      await db.query(
        `INSERT INTO "Task" ("id", "tenantId", "poolId", "type", "status", "priority", "maxAttempts", "attempts", "retries", "createdAt", "updatedAt")
         SELECT gen_random_uuid()::text, $1, $2, 'echo', 'failed', 50, 1, 1, 0, now(), now() FROM generate_series(1, 10001)`,
        [tenant, pool],
      );
      const over = await api(url, "POST", "/api/v1/tasks/bulk", { token, body: { action: "retry", filter: { poolId: pool } } });
      assert.equal(over.status, 400, JSON.stringify(over.body));
      assert.ok(JSON.stringify(over.body.error).includes("filter"));
      assert.equal((await api(url, "GET", `/api/v1/tasks/counts?poolId=${pool}`, { token })).body.counts.failed, 10_001, "nothing changed");
      // Under the cap, a call of several chunks (worked a few at a time) counts every change.
      await db.query(
        `DELETE FROM "Task" WHERE "id" IN (SELECT "id" FROM "Task" WHERE "tenantId" = $1 AND "status" = 'failed' LIMIT 9000)`,
        [tenant],
      );
      const retried = await api(url, "POST", "/api/v1/tasks/bulk", { token, body: { action: "retry", filter: { poolId: pool } } });
      assert.deepEqual(retried.body, { matched: 1001, changed: 1001 });
      const cancelled = await api(url, "POST", "/api/v1/tasks/bulk", { token, body: { action: "cancel", filter: { poolId: pool } } });
      assert.deepEqual(cancelled.body, { matched: 1002, changed: 1002 }, "the 1,001 retried and the one queued before");
      assert.equal((await api(url, "GET", `/api/v1/tasks/counts?poolId=${pool}`, { token })).body.counts.cancelled, 1002);
    } finally {
      await db.query(`DELETE FROM "Task" WHERE "tenantId" = $1 AND "status" IN ('failed', 'cancelled')`, [tenant]);
      await db.end();
    }
  });

  it("counts the tenant's tasks per status exactly, every status named, by pool and by type", async () => {
    const token = mintToken({ tenant: freshTenant("counts") });
    const done = await Promise.all([1, 2, 3].map((n) => submitTask(url, token, { type: "echo", payload: { n } })));
    const failed = await Promise.all(
      [1, 2].map(() => submitTask(url, token, { type: "fail", payload: { message: "x", retryable: false } })),
    );
    const pool = await unservedPool(token);
    await Promise.all([1, 2].map(() => submitTask(url, token, { type: "echo", poolId: pool })));
    for (const task of done) await waitForTask(url, token, task.id, ["completed"]);
    for (const task of failed) await waitForTask(url, token, task.id, ["failed"]);

    const all = await api(url, "GET", "/api/v1/tasks/counts", { token });
    assert.equal(all.status, 200, JSON.stringify(all.body));
    assert.deepEqual(Object.keys(all.body.counts).sort(), [...TASK_STATUSES].sort());
    assert.deepEqual(all.body, {
      counts: { created: 0, queued: 2, assigned: 0, started: 0, retrying: 0, completed: 3, failed: 2, cancelled: 0 },
      total: 7,
    });
    const byPool = await api(url, "GET", `/api/v1/tasks/counts?poolId=${pool}`, { token });
    assert.equal(byPool.body.total, 2);
    assert.equal(byPool.body.counts.queued, 2);
    const byType = await api(url, "GET", "/api/v1/tasks/counts?type=fail", { token });
    assert.equal(byType.body.total, 2);
    assert.equal(byType.body.counts.failed, 2);

    const unknown = await api(url, "GET", "/api/v1/tasks/counts?stauts=failed", { token });
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.error.code, "BAD_REQUEST");
    assert.equal((await api(url, "GET", "/api/v1/tasks/counts?poolId=a%20b", { token })).status, 400);
  });

  it("lists with filters by type, creation time and id prefix; unknown or malformed filters are a 400 naming the field", async () => {
    const token = mintToken({ tenant: freshTenant("filters") });
    const first = await submitTask(url, token, { type: "echo", payload: { n: 1 } });
    await sleep(20);
    const between = new Date().toISOString();
    await sleep(20);
    const second = await submitTask(url, token, { type: "fail", payload: { message: "x", retryable: false } });
    const third = await submitTask(url, token, { type: "echo", payload: { n: 3 } });

    const ids = async (query: string): Promise<string[]> => {
      const page = await api(url, "GET", `/api/v1/tasks?${query}`, { token });
      assert.equal(page.status, 200, JSON.stringify(page.body));
      return (page.body.items as TaskView[]).map((t) => t.id);
    };
    assert.deepEqual(await ids("type=fail"), [second.id]);
    assert.deepEqual(await ids("type=echo"), [third.id, first.id]);
    assert.deepEqual(await ids(`createdAfter=${encodeURIComponent(between)}`), [third.id, second.id]);
    assert.deepEqual(await ids(`createdBefore=${encodeURIComponent(between)}`), [first.id]);
    assert.deepEqual(await ids(`q=${second.id.slice(0, 13)}`), [second.id]);
    assert.deepEqual(await ids(`q=${second.id.slice(0, 13).toUpperCase()}`), [second.id]);
    // Pagination still holds under a filter.
    const page = await api(url, "GET", "/api/v1/tasks?type=echo&limit=1", { token });
    assert.deepEqual(
      page.body.items.map((t: TaskView) => t.id),
      [third.id],
    );
    assert.deepEqual(await ids(`type=echo&limit=1&cursor=${page.body.nextCursor}`), [first.id]);

    for (const [query, field] of [
      ["stauts=failed", "query"],
      ["createdAfter=yesterday", "createdAfter"],
      ["q=not%20an%20id", "q"],
      ["type=%2F%2F", "type"],
    ] as const) {
      const bad = await api(url, "GET", `/api/v1/tasks?${query}`, { token });
      assert.equal(bad.status, 400, query);
      assert.equal(bad.body.error.code, "BAD_REQUEST");
      assert.ok(
        JSON.stringify(bad.body.error).includes(field === "query" ? "stauts" : field),
        `${query}: ${JSON.stringify(bad.body.error)}`,
      );
    }
  });
});

describe("state with its head, and rooms from the start", () => {
  let url: string;
  before(async () => {
    url = (await sharedServer()).url;
  });

  const seqOf = (cursor: string): number => decodeCursor(cursor)!.seq;

  it("GET of a task returns head; subscribing after it continues exactly where the read left off", async () => {
    const token = mintToken({ tenant: freshTenant("head") });
    const task = await submitTask(url, token, { type: "sleep", payload: { ms: 1200 } });
    await waitForTask(url, token, task.id, ["started"]);
    const read = await api(url, "GET", `/api/v1/tasks/${task.id}`, { token });
    assert.equal(read.status, 200);
    assert.equal(read.body.task.id, task.id);
    const head = read.body.head as string;
    assert.ok(decodeCursor(head), `head is a cursor: ${head}`);

    const socket = await connect(url, "tasks", { token });
    const seen = new EventRecorder(socket);
    const ack = await subscribe(socket, `task:${task.id}`, head);
    assert.equal(ack.ok, true, JSON.stringify(ack));
    await seen.next("task.completed");
    const seqs = seen.events.map((e) => seqOf(e.cursor));
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => seqOf(head) + 1 + i),
      "the events right after head, each once, in order",
    );
    // Everything before head is in what the read showed: the room's whole log is the read's events and these.
    const history = await api(url, "GET", `/api/v1/events?namespace=tasks&room=task:${task.id}`, { token });
    assert.equal(history.body.items.length, seqOf(head) + seen.events.length);
    assert.equal(read.body.task.status, "started");
    assert.ok(
      ["task.started", "task.progress"].includes((history.body.items as Envelope[])[seqOf(head) - 1]!.type),
      "the last event the read includes",
    );
  });

  it("GET of a pool and of a workflow return head; a change after the read comes right after it", async () => {
    const token = mintToken({ tenant: freshTenant("head-pool") });
    const created = await api(url, "POST", "/api/v1/pools", { token, body: { name: "heads" } });
    const poolId = created.body.pool.id as string;
    const read = await api(url, "GET", `/api/v1/pools/${poolId}`, { token });
    assert.equal(read.status, 200);
    assert.equal(read.body.pool.id, poolId);
    const socket = await connect(url, "pools", { token });
    const seen = new EventRecorder(socket);
    assert.equal((await subscribe(socket, `pool:${poolId}`, read.body.head)).ok, true);
    assert.equal((await api(url, "POST", `/api/v1/pools/${poolId}/scale`, { token, body: { desiredWorkers: 3 } })).status, 202);
    const scaling = await seen.next("pool.scaling");
    assert.equal(seqOf(scaling.cursor), seqOf(read.body.head) + 1);
    assert.equal(seen.events.length, 1, "nothing before it repeated");

    const workflow = await api(url, "POST", "/api/v1/workflows", { token, body: { name: "w", steps: [{ key: "a", type: "echo" }] } });
    const readWorkflow = await api(url, "GET", `/api/v1/workflows/${workflow.body.workflow.id}`, { token });
    assert.equal(readWorkflow.status, 200);
    assert.ok(decodeCursor(readWorkflow.body.head));
    // Another tenant's id: 404, and no room is created for it.
    const foreign = await api(url, "GET", `/api/v1/pools/${poolId}`, { token: mintToken({ tenant: freshTenant("other") }) });
    assert.equal(foreign.status, 404);
  });

  it('subscribe { after: "0" } replays a room from its first stored event; GET /api/v1/events?after=0 reads from it too', async () => {
    const token = mintToken({ tenant: freshTenant("from-start") });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await submitTask(url, token, { type: "echo", payload: { i } })).id);
    for (const id of ids) await waitForTask(url, token, id, ["completed"]);
    const socket = await connect(url, "tasks", { token });
    const seen = new EventRecorder(socket);
    const ack = await subscribe(socket, "tasks", "0");
    assert.equal(ack.ok, true, JSON.stringify(ack));
    assert.equal(ack.replayed, 15);
    assert.deepEqual(
      seen.events.map((e) => seqOf(e.cursor)),
      Array.from({ length: 15 }, (_, i) => i + 1),
    );
    assert.equal(seqOf(ack.cursor!), 15);

    const history = await api(url, "GET", "/api/v1/events?namespace=tasks&room=tasks&after=0", { token });
    assert.equal(history.status, 200);
    assert.deepEqual(
      (history.body.items as Envelope[]).map((e) => e.cursor),
      seen.events.map((e) => e.cursor),
    );
    for (const bad of ["00", "x", "-1"]) {
      const refused = await subscribe(socket, "tasks", bad);
      assert.equal(refused.ok, false, bad);
      assert.equal(refused.error?.code, "BAD_REQUEST");
    }
  });
});
