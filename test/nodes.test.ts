import assert from "node:assert/strict";
import type { Socket } from "socket.io-client";
import type { NodeView } from "../src/protocol/nodes.js";
import { connect, subscribe } from "./support/clients.js";
import { freshTenant } from "./support/env.js";
import { api } from "./support/http.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { submitTask, waitForTask } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";

/*
 * GET /api/v1/nodes against two real nodes sharing Redis: every live node is listed, with the asking tenant's
 * own sockets and events/s on it, and nothing of any other tenant's.
 */

async function nodes(url: string, token: string): Promise<NodeView[]> {
  const response = await api<{ items: NodeView[] }>(url, "GET", "/api/v1/nodes", { token });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body.items;
}

/** Polls until `check` passes on what the node answers (readings are published every ~2 s). */
async function until(url: string, token: string, check: (items: NodeView[]) => boolean, what: string): Promise<NodeView[]> {
  let items: NodeView[] = [];
  for (let i = 0; i < 100; i++) {
    items = await nodes(url, token);
    if (check(items)) return items;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${what}: ${JSON.stringify(items)}`);
}

describe("GET /api/v1/nodes: the live nodes, with the tenant's own sockets", function () {
  this.timeout(60_000);
  let a: ServerProcess;
  let b: ServerProcess;
  const sockets: Socket[] = [];

  before(async () => {
    [a, b] = await Promise.all([startServer({ NODE_ID: `nodes-a-${process.pid}` }), startServer({ NODE_ID: `nodes-b-${process.pid}` })]);
  });
  after(async () => {
    for (const socket of sockets) socket.close();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it("lists both nodes, counts a tenant's sockets per namespace on each, shows tenant B none of A's, and drops a stopped node", async () => {
    const tenantA = freshTenant("nodes-a");
    const tenantB = freshTenant("nodes-b");
    const adminA = mintToken({ tenant: tenantA });
    const adminB = mintToken({ tenant: tenantB });

    // Tenant A: two /tasks sockets and one /pools socket on node a, one /workflows socket on node b.
    for (const [node, namespace] of [
      [a, "tasks"],
      [a, "tasks"],
      [a, "pools"],
      [b, "workflows"],
    ] as const) {
      sockets.push(await connect(node.url, namespace, { token: adminA }));
    }
    const listed = await until(
      b.url,
      adminA,
      (items) => {
        const onA = items.find((n) => n.nodeId === a.nodeId);
        const onB = items.find((n) => n.nodeId === b.nodeId);
        return onA?.sockets.tasks === 2 && onA.sockets.pools === 1 && onB?.sockets.workflows === 1;
      },
      "tenant A's sockets on both nodes",
    );
    const onA = listed.find((n) => n.nodeId === a.nodeId)!;
    const onB = listed.find((n) => n.nodeId === b.nodeId)!;
    assert.deepEqual(onA.sockets, { pools: 1, tasks: 2, workflows: 0 });
    assert.deepEqual(onB.sockets, { pools: 0, tasks: 0, workflows: 1 });
    assert.equal(onB.self, true, "the answering node says it is itself");
    assert.equal(onA.self, false);
    assert.equal(onA.version, "0.1.0");
    assert.ok(!Number.isNaN(Date.parse(onA.startedAt)));
    assert.ok(onA.totalSockets >= 3, "node-wide totals count every tenant");

    // Tenant B sees both nodes, but none of A's sockets or events.
    const seenByB = await nodes(a.url, adminB);
    for (const id of [a.nodeId, b.nodeId]) {
      const node = seenByB.find((n) => n.nodeId === id);
      assert.ok(node, `B sees node ${id}`);
      assert.deepEqual(node.sockets, { pools: 0, tasks: 0, workflows: 0 });
      assert.equal(node.eventsPerSecond, 0);
    }

    // Events delivered to A's subscribed socket on node a count as A's events/s there, never as B's.
    await subscribe(sockets[0]!, "tasks");
    const task = await submitTask(b.url, adminA, { type: "echo" });
    await waitForTask(b.url, adminA, task.id, ["completed"]);
    await until(a.url, adminA, (items) => (items.find((n) => n.nodeId === a.nodeId)?.eventsPerSecond ?? 0) > 0, "A's events/s on node a");
    for (const node of await nodes(a.url, adminB)) assert.equal(node.eventsPerSecond, 0, "B's events/s stays 0");

    // Only admin may look.
    const reader = await api(a.url, "GET", "/api/v1/nodes", {
      token: mintToken({ tenant: tenantA, permissions: ["tasks:read", "pools:read"] }),
    });
    assert.equal(reader.status, 403);

    // A stopped node withdraws its reading: gone from the list at once.
    await b.stop();
    const left = await until(a.url, adminA, (items) => !items.some((n) => n.nodeId === b.nodeId), "node b gone");
    assert.ok(left.some((n) => n.nodeId === a.nodeId));
  });

  it("a killed node disappears once its reading expires", async () => {
    const tenant = freshTenant("nodes-k");
    const token = mintToken({ tenant });
    const killed = await startServer({ NODE_ID: `nodes-k-${process.pid}` });
    await until(a.url, token, (items) => items.some((n) => n.nodeId === killed.nodeId), "the new node listed");
    await killed.kill();
    await until(a.url, token, (items) => !items.some((n) => n.nodeId === killed.nodeId), "the killed node gone");
  });
});
