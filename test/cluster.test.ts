import assert from "node:assert/strict";
import { connect, EventRecorder, subscribe } from "./support/clients.js";
import { freshTenant } from "./support/env.js";
import { api } from "./support/http.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { mintToken } from "./support/tokens.js";

describe("two nodes sharing Redis", () => {
  let nodeA: ServerProcess;
  let nodeB: ServerProcess;
  before(async () => {
    [nodeA, nodeB] = await Promise.all([startServer({ NODE_ID: "cluster-a" }), startServer({ NODE_ID: "cluster-b" })]);
  });
  after(async () => {
    await Promise.all([nodeA.stop(), nodeB.stop()]);
  });

  it("delivers a pool.created published through node B to a subscriber on node A", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const onA = await connect(nodeA.url, "pools", { token });
    const seen = new EventRecorder(onA);
    assert.equal((await subscribe(onA, "pools")).ok, true);
    const created = await api(nodeB.url, "POST", "/api/v1/pools", { token, body: { name: "from-b" } });
    assert.equal(created.status, 201);
    const event = await seen.next("pool.created", "pools");
    assert.equal((event.data as { pool: { id: string } }).pool.id, created.body.pool.id);
  });

  it("delivers to subscribers on both nodes, each once, with the same id and cursor", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const onA = await connect(nodeA.url, "pools", { token });
    const onB = await connect(nodeB.url, "pools", { token, transports: ["polling"] });
    const seenA = new EventRecorder(onA);
    const seenB = new EventRecorder(onB);
    await subscribe(onA, "pools");
    await subscribe(onB, "pools");
    await api(nodeA.url, "POST", "/api/v1/pools", { token, body: { name: "p1" } });
    await api(nodeB.url, "POST", "/api/v1/pools", { token, body: { name: "p2" } });
    await seenA.until((e) => e.length === 2);
    await seenB.until((e) => e.length === 2);
    assert.deepEqual(seenA.events.map((e) => [e.id, e.cursor]).sort(), seenB.events.map((e) => [e.id, e.cursor]).sort());
  });

  it("keeps tenants apart across nodes", async () => {
    const tokenA = mintToken({ tenant: freshTenant() });
    const tokenB = mintToken({ tenant: freshTenant() });
    const socket = await connect(nodeA.url, "pools", { token: tokenA });
    const seen = new EventRecorder(socket);
    await subscribe(socket, "pools");
    await api(nodeB.url, "POST", "/api/v1/pools", { token: tokenB, body: { name: "other" } });
    await api(nodeB.url, "POST", "/api/v1/pools", { token: tokenA, body: { name: "mine" } });
    await seen.next("pool.created");
    assert.equal(seen.events.length, 1);
    assert.equal((seen.events[0]!.data as { pool: { name: string } }).pool.name, "mine");
  });
});
