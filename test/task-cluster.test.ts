import assert from "node:assert/strict";
import { connect, EventRecorder, subscribe } from "./support/clients.js";
import { freshTenant, TEST_REDIS_PREFIX } from "./support/env.js";

const CLUSTER_PREFIX = `${TEST_REDIS_PREFIX}-taskcluster`;
// On the run's database, a reconciler here would find other files' tasks with no job on this prefix's queues and
// requeue them here: it stays idle (nothing in this file needs it; a killed node's task comes back through BullMQ).
const CLUSTER_ENV = { REDIS_PREFIX: CLUSTER_PREFIX, RECONCILE_INTERVAL_MS: "3600000" };
import { api } from "./support/http.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { submitTask, waitForTask } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";

describe("tasks across nodes", () => {
  let nodeA: ServerProcess;
  let nodeB: ServerProcess;
  before(async () => {
    // Only A executes tasks; B only takes requests and serves sockets. A cluster of its own (Redis prefix), so
    // that no other test's node with an embedded worker takes these tasks.
    [nodeA, nodeB] = await Promise.all([
      startServer({ NODE_ID: "tasks-a", EMBEDDED_WORKER: "true", ...CLUSTER_ENV }),
      startServer({ NODE_ID: "tasks-b", EMBEDDED_WORKER: "false", ...CLUSTER_ENV }),
    ]);
  });
  after(async () => {
    await Promise.all([nodeA.kill(), nodeB.stop()]);
  });

  it("runs a task created through node B on node A's embedded worker, watched from both nodes", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const watchers = await Promise.all(
      [nodeA, nodeB].map(async (node) => {
        const socket = await connect(node.url, "tasks", { token });
        const recorder = new EventRecorder(socket);
        assert.equal((await subscribe(socket, "tasks")).ok, true);
        return recorder;
      }),
    );
    const task = await submitTask(nodeB.url, token, { type: "echo", payload: { via: "B" } });
    for (const recorder of watchers) {
      await recorder.next("task.completed", "tasks", 15_000);
      assert.deepEqual(
        recorder.events.map((e) => e.type),
        ["task.created", "task.queued", "task.assigned", "task.started", "task.completed"],
      );
    }
    const stored = await waitForTask(nodeB.url, token, task.id, ["completed"]);
    assert.equal(stored.workerId, "embedded@tasks-a");
    assert.deepEqual(stored.result, { via: "B" });
  });

  it("when the executing node is killed -9 mid-task, another node's worker retries it and it completes exactly once", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const socket = await connect(nodeB.url, "tasks", { token });
    const seen = new EventRecorder(socket);
    await subscribe(socket, "tasks");
    // A second executing node, up before the task: started after it (seconds on a busy machine), A could finish the
    // 3 s task before the kill. Whichever of A and C takes the task is killed; the other must complete it.
    const nodeC = await startServer({ NODE_ID: "tasks-c", EMBEDDED_WORKER: "true", ...CLUSTER_ENV });
    try {
      const task = await submitTask(nodeB.url, token, { type: "sleep", payload: { ms: 3000 } });
      const started = await seen.next("task.started");
      const runner = (started.data as { task: { workerId: string } }).task.workerId;
      const executing = new Map([nodeA, nodeC].map((node) => [`embedded@${node.nodeId}`, node]));
      assert.ok(executing.has(runner), `started by ${runner}`);
      await executing.get(runner)!.kill();
      const other = [...executing.keys()].find((id) => id !== runner);
      const done = await waitForTask(nodeB.url, token, task.id, ["completed", "failed"], 30_000);
      assert.equal(done.status, "completed");
      assert.equal(done.workerId, other);
      assert.equal(done.attempts, 2);
      const history = await api(nodeB.url, "GET", `/api/v1/events?namespace=tasks&room=task:${task.id}&limit=100`, { token });
      const types = history.body.items.map((e: { type: string }) => e.type);
      assert.equal(types.filter((t: string) => t === "task.completed").length, 1, types.join(","));
      assert.equal(types.filter((t: string) => t === "task.assigned").length, 2, types.join(","));
      await seen.until((e) => e.some((x) => x.type === "task.completed"));
      assert.equal(seen.of("task.completed").length, 1);
    } finally {
      await nodeC.stop();
    }
  });
});
