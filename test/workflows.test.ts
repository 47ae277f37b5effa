import assert from "node:assert/strict";
import { connect, EventRecorder, subscribe } from "./support/clients.js";
import { freshTenant } from "./support/env.js";
import { api } from "./support/http.js";
import { sharedServer } from "./support/shared.js";
import { mintToken } from "./support/tokens.js";
import type { ServerProcess } from "./support/server.js";
import type { WorkflowWithStepsView } from "../src/protocol/views.js";

type WorkflowView = WorkflowWithStepsView;

describe("workflows", () => {
  let server: ServerProcess;
  before(async () => {
    server = await sharedServer();
  });

  async function watch(token: string) {
    const socket = await connect(server.url, "workflows", { token });
    const seen = new EventRecorder(socket);
    assert.equal((await subscribe(socket, "workflows")).ok, true);
    const tasksSocket = await connect(server.url, "tasks", { token });
    const tasks = new EventRecorder(tasksSocket);
    assert.equal((await subscribe(tasksSocket, "tasks")).ok, true);
    return { seen, tasks };
  }

  async function create(token: string, body: unknown) {
    return api<{ workflow: WorkflowView; error?: { code: string; details: Array<{ field: string; message: string }> } }>(
      server.url,
      "POST",
      "/api/v1/workflows",
      { token, body },
    );
  }

  it("runs a diamond (A → B, A → C, B+C → D) in dependency order", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const { seen, tasks } = await watch(token);
    const response = await create(token, {
      name: "diamond",
      steps: [
        { key: "A", type: "echo", payload: { step: "A" } },
        { key: "B", type: "sleep", payload: { ms: 200 }, dependsOn: ["A"] },
        { key: "C", type: "sleep", payload: { ms: 50 }, dependsOn: ["A"] },
        { key: "D", type: "echo", payload: { step: "D" }, dependsOn: ["B", "C"] },
      ],
    });
    assert.equal(response.status, 202);
    const id = response.body.workflow.id;
    const room = `workflow:${id}`;
    // The workflow's own room, from its first event ("0": it may have started before this subscribe).
    const socket = await connect(server.url, "workflows", { token });
    const inRoom = new EventRecorder(socket);
    assert.equal((await subscribe(socket, room, "0")).ok, true);
    await seen.next("workflow.completed", "workflows", 20_000);
    await inRoom.next("workflow.completed", room, 20_000);
    assert.deepEqual(
      inRoom.events
        .filter((e) => e.room === room)
        .map((e) => e.type)
        .filter((t) => t.startsWith("workflow.")),
      ["workflow.started", ...Array<string>(4).fill("workflow.step_completed"), "workflow.completed"],
      "workflow:<id> holds the workflow's events in order",
    );
    const types = seen.events.map((e) => e.type);
    assert.equal(types[0], "workflow.started");
    const completedSteps = seen.of("workflow.step_completed").map((e) => (e.data as { step: string }).step);
    assert.equal(completedSteps[0], "A");
    assert.equal(completedSteps[3], "D");
    assert.deepEqual(new Set(completedSteps.slice(1, 3)), new Set(["B", "C"]));
    // D's task was created only after both B and C completed.
    const taskEvents = tasks.events.map((e) => ({ type: e.type, step: (e.data as { task?: { stepKey: string } }).task?.stepKey }));
    const dCreated = taskEvents.findIndex((e) => e.type === "task.created" && e.step === "D");
    const bDone = taskEvents.findIndex((e) => e.type === "task.completed" && e.step === "B");
    const cDone = taskEvents.findIndex((e) => e.type === "task.completed" && e.step === "C");
    assert.ok(dCreated > bDone && dCreated > cDone, "D starts after B and C complete");
    assert.equal(taskEvents.filter((e) => e.type === "task.created" && e.step === "D").length, 1, "D runs once");
    const stored = (await api<{ workflow: WorkflowView }>(server.url, "GET", `/api/v1/workflows/${id}`, { token })).body.workflow;
    assert.equal(stored.status, "completed");
    assert.deepEqual(
      stored.steps.map((s) => [s.key, s.status, s.task?.status]),
      [
        ["A", "completed", "completed"],
        ["B", "completed", "completed"],
        ["C", "completed", "completed"],
        ["D", "completed", "completed"],
      ],
    );
    assert.deepEqual(stored.steps[3]!.task!.result, { step: "D" });
  });

  it("fails the workflow when a middle step fails, and D never starts", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const { seen, tasks } = await watch(token);
    const response = await create(token, {
      name: "broken diamond",
      steps: [
        { key: "A", type: "echo" },
        { key: "B", type: "fail", payload: { message: "B broke", retryable: false }, dependsOn: ["A"] },
        // Longer than any run of this test: still running (or queued) when B fails, whatever the machine's pace.
        { key: "C", type: "sleep", payload: { ms: 600_000 }, dependsOn: ["A"] },
        { key: "D", type: "echo", dependsOn: ["B", "C"] },
      ],
    });
    const id = response.body.workflow.id;
    const failed = await seen.next("workflow.failed", "workflows", 20_000);
    assert.equal((failed.data as { step: string }).step, "B");
    const stored = (await api<{ workflow: WorkflowView }>(server.url, "GET", `/api/v1/workflows/${id}`, { token })).body.workflow;
    assert.equal(stored.status, "failed");
    const byKey = Object.fromEntries(stored.steps.map((s) => [s.key, s]));
    assert.equal(byKey.B!.status, "failed");
    assert.equal(byKey.C!.status, "cancelled", "the running sibling is cancelled");
    assert.equal(byKey.D!.status, "cancelled");
    assert.equal(byKey.D!.task, null, "D never got a task");
    await tasks.until((e) => e.some((x) => x.type === "task.cancelled"), 5000, "C's task cancelled");
    assert.equal(seen.of("workflow.completed").length, 0);
  });

  it("cancels a running workflow and what has not finished", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const { seen } = await watch(token);
    const response = await create(token, {
      name: "long",
      steps: [
        { key: "slow", type: "sleep", payload: { ms: 20_000 } },
        { key: "after", type: "echo", dependsOn: ["slow"] },
      ],
    });
    const id = response.body.workflow.id;
    const cancelled = await api<{ workflow: WorkflowView }>(server.url, "POST", `/api/v1/workflows/${id}/cancel`, { token });
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.body.workflow.status, "cancelled");
    await seen.next("workflow.cancelled");
    assert.deepEqual(
      cancelled.body.workflow.steps.map((s) => s.status),
      ["cancelled", "cancelled"],
    );
    assert.equal((await api(server.url, "POST", `/api/v1/workflows/${id}/cancel`, { token })).status, 409);
  });

  it("rejects cycles, unknown dependencies, duplicate keys and unknown types with 400 and details", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const cycle = await create(token, {
      name: "cycle",
      steps: [
        { key: "A", type: "echo", dependsOn: ["C"] },
        { key: "B", type: "echo", dependsOn: ["A"] },
        { key: "C", type: "echo", dependsOn: ["B"] },
      ],
    });
    assert.equal(cycle.status, 400);
    assert.match(cycle.body.error!.details[0]!.message, /cycle/);
    const unknown = await create(token, { name: "x", steps: [{ key: "A", type: "echo", dependsOn: ["Z"] }] });
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.error!.details[0]!.field, "steps.0.dependsOn.0");
    const duplicate = await create(token, {
      name: "x",
      steps: [
        { key: "A", type: "echo" },
        { key: "A", type: "echo" },
      ],
    });
    assert.equal(duplicate.body.error!.details[0]!.field, "steps.1.key");
    const self = await create(token, { name: "x", steps: [{ key: "A", type: "echo", dependsOn: ["A"] }] });
    assert.equal(self.status, 400);
    const badType = await create(token, { name: "x", steps: [{ key: "A", type: "warp" }] });
    assert.equal(badType.body.error!.details[0]!.field, "steps.0.type");
    const empty = await create(token, { name: "x", steps: [] });
    assert.equal(empty.status, 400);
    const list = await api(server.url, "GET", "/api/v1/workflows", { token });
    assert.equal(list.body.items.length, 0, "nothing was stored for rejected workflows");
  });

  it("hides another tenant's workflow on every route and on subscribe", async () => {
    const owner = mintToken({ tenant: freshTenant() });
    const intruder = mintToken({ tenant: freshTenant() });
    const id = (await create(owner, { name: "mine", steps: [{ key: "A", type: "echo" }] })).body.workflow.id;
    assert.equal((await api(server.url, "GET", `/api/v1/workflows/${id}`, { token: intruder })).status, 404);
    assert.equal((await api(server.url, "POST", `/api/v1/workflows/${id}/cancel`, { token: intruder })).status, 404);
    const socket = await connect(server.url, "workflows", { token: intruder });
    assert.equal((await subscribe(socket, `workflow:${id}`)).error?.code, "NOT_FOUND");
  });
});
