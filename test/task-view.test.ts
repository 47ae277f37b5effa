import assert from "node:assert/strict";
import { applyTaskEvent, type TaskEventView, type TaskView } from "../src/protocol/views.js";
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
    const submitted = await submitTask(server.url, token, { type: "echo", payload: { n: 1.5, s: "ü\"x", nested: [null, { a: true }] }, priority: 70, maxAttempts: 2, timeoutMs: 5000 });
    const done = await waitForTask(server.url, token, submitted.id, ["completed"]);
    const history = await api(server.url, "GET", `/api/v1/events?namespace=tasks&room=task:${submitted.id}`, { token });
    const events = history.body.items as Array<{ type: string; data: { task: TaskEventView } }>;
    assert.deepEqual(events.map((e) => e.type), ["task.created", "task.queued", "task.assigned", "task.started", "task.completed"]);
    const without = <K extends keyof TaskView>(task: TaskView, ...keys: K[]) => Object.fromEntries(Object.entries(task).filter(([k]) => !(keys as string[]).includes(k)));
    assert.deepEqual(events.at(-1)!.data.task, without(done, "payload"));
    assert.deepEqual(events[1]!.data.task, { ...without(submitted, "payload", "result"), status: "queued" });
    assert.deepEqual(events[0]!.data.task, { ...without(submitted, "result"), status: "created", queuedAt: null });
    for (const event of events.slice(1, 4)) assert.ok(!("payload" in event.data.task) && !("result" in event.data.task), event.type);
    // Folded in order, the events give exactly the task REST returns.
    const folded = events.reduce<TaskView | undefined>((view, event) => applyTaskEvent(view, event.data.task), undefined);
    assert.deepEqual(folded, done);
    // Assignment and start are one statement (a claim); task.assigned still shows the task as it was assigned.
    assert.deepEqual(events[2]!.data.task, { ...events[3]!.data.task as object, status: "assigned", attempts: 0, startedAt: null });
    assert.equal((events[3]!.data.task as { workerId: string }).workerId, done.workerId);
  });
});
