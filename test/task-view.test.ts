import assert from "node:assert/strict";
import { applyTaskEvent, type TaskEventView, type TaskView } from "../src/protocol/views.js";
import { connect, EventRecorder, subscribe } from "./support/clients.js";
import { freshTenant } from "./support/env.js";
import { api } from "./support/http.js";
import { sharedServer } from "./support/shared.js";
import { submitTask, waitForTask } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";

// Task events are written by PostgreSQL in the statement that changes the task (taskViewSql), REST answers are
// built in JavaScript (serializeTask): the two must describe a task identically. An event leaves out the task's
// unbounded fields except the one it is about (payload in task.created, result in task.completed).
describe("task views", () => {
  it("the task in a task event is exactly the task REST returns", async () => {
    const server = await sharedServer();
    const token = mintToken({ tenant: freshTenant() });
    const submitted = await submitTask(server.url, token, {
      type: "echo",
      payload: { n: 1.5, s: 'ü"x', nested: [null, { a: true }] },
      priority: 70,
      maxAttempts: 2,
      timeoutMs: 5000,
    });
    const done = await waitForTask(server.url, token, submitted.id, ["completed"]);
    const history = await api(server.url, "GET", `/api/v1/events?namespace=tasks&room=task:${submitted.id}`, { token });
    const events = history.body.items as Array<{ type: string; data: { task: TaskEventView } }>;
    assert.deepEqual(
      events.map((e) => e.type),
      ["task.created", "task.queued", "task.assigned", "task.started", "task.completed"],
    );
    const without = <K extends keyof TaskView>(task: TaskView, ...keys: K[]) =>
      Object.fromEntries(Object.entries(task).filter(([k]) => !(keys as string[]).includes(k)));
    assert.deepEqual(events.at(-1)!.data.task, without(done, "payload"));
    assert.deepEqual(events[1]!.data.task, { ...without(submitted, "payload", "result"), status: "queued" });
    assert.deepEqual(events[0]!.data.task, { ...without(submitted, "result"), status: "created", queuedAt: null });
    for (const event of events.slice(1, 4)) assert.ok(!("payload" in event.data.task) && !("result" in event.data.task), event.type);
    // Folded in order, the events give exactly the task REST returns.
    const folded = events.reduce<TaskView | undefined>((view, event) => applyTaskEvent(view, event.data.task), undefined);
    assert.deepEqual(folded, done);
    // Assignment and start are one statement (a claim); task.assigned still shows the task as it was assigned.
    assert.deepEqual(events[2]!.data.task, { ...(events[3]!.data.task as object), status: "assigned", attempts: 0, startedAt: null });
    assert.equal((events[3]!.data.task as { workerId: string }).workerId, done.workerId);
  });

  it("a pools:read token reads no task payload, result or error through /pools (history or live)", async () => {
    const server = await sharedServer();
    const tenant = freshTenant();
    const token = mintToken({ tenant });
    const poolsOnly = mintToken({ tenant, permissions: ["pools:read"] });
    const socket = await connect(server.url, "pools", { token: poolsOnly });
    const live = new EventRecorder(socket);
    assert.equal((await subscribe(socket, "pool:default")).ok, true);
    const secret = "sk_live_do_not_show";
    const done = await waitForTask(
      server.url,
      token,
      (await submitTask(server.url, token, { type: "echo", payload: { apiKey: secret } })).id,
      ["completed"],
    );
    await live.next("task.assigned");
    const failed = await waitForTask(
      server.url,
      token,
      (await submitTask(server.url, token, { type: "fail", payload: { message: secret, retryable: false } })).id,
      ["failed"],
    );
    await live.until((events) => events.filter((e) => e.type === "task.assigned").length === 2);
    const history = await api(server.url, "GET", "/api/v1/events?namespace=pools&room=pool:default", { token: poolsOnly });
    assert.equal(history.status, 200);
    const seen = JSON.stringify([history.body.items, live.events]);
    assert.ok(seen.includes(done.id) && seen.includes(failed.id), "the pool's task.assigned events are there");
    assert.ok(!seen.includes(secret), `no payload, result or error text through /pools: ${seen.slice(0, 300)}`);
    // The same token cannot read the task itself.
    assert.equal((await api(server.url, "GET", `/api/v1/tasks/${done.id}`, { token: poolsOnly })).status, 403);
  });
});
