import assert from "node:assert/strict";
import { connect, EventRecorder, sleep, subscribe } from "./support/clients.js";
import { freshTenant } from "./support/env.js";
import { api } from "./support/http.js";
import { sharedServer } from "./support/shared.js";
import { mintToken } from "./support/tokens.js";
import type { ServerProcess } from "./support/server.js";

describe("tenant isolation", () => {
  let server: ServerProcess;
  before(async () => {
    server = await sharedServer();
  });

  it("two tenants with identical room names never see each other's events", async () => {
    const [a, b] = [freshTenant("a"), freshTenant("b")];
    const tokenA = mintToken({ tenant: a });
    const tokenB = mintToken({ tenant: b });
    const socketA = await connect(server.url, "pools", { token: tokenA });
    const socketB = await connect(server.url, "pools", { token: tokenB });
    const seenA = new EventRecorder(socketA);
    const seenB = new EventRecorder(socketB);
    for (const socket of [socketA, socketB]) {
      assert.equal((await subscribe(socket, "pools")).ok, true);
      assert.equal((await subscribe(socket, "pool:default")).ok, true);
    }
    await api(server.url, "POST", "/api/v1/pools", { token: tokenA, body: { name: "shared-name" } });
    await api(server.url, "POST", "/api/v1/pools/default/scale", { token: tokenA, body: { desiredWorkers: 3 } });
    await seenA.until((events) => events.length === 3, 5000, "A's three events");
    await api(server.url, "POST", "/api/v1/pools", { token: tokenB, body: { name: "shared-name" } });
    await seenB.until((events) => events.length === 1, 5000, "B's event");
    await sleep(300);
    assert.equal(seenA.events.length, 3, "A sees only its own events");
    assert.equal(seenB.events.length, 1, "B sees only its own event");
    assert.notEqual(
      (seenA.of("pool.created")[0]!.data as { pool: { id: string } }).pool.id,
      (seenB.events[0]!.data as { pool: { id: string } }).pool.id,
    );
  });

  it("a tenant's admin cannot read, scale or subscribe to another tenant's pool", async () => {
    const owner = mintToken({ tenant: freshTenant("owner") });
    const intruder = mintToken({ tenant: freshTenant("intruder"), permissions: ["admin"] });
    const pool = (await api(server.url, "POST", "/api/v1/pools", { token: owner, body: { name: "private" } })).body.pool;
    const get = await api(server.url, "GET", `/api/v1/pools/${pool.id}`, { token: intruder });
    assert.equal(get.status, 404);
    assert.equal(get.body.error.code, "NOT_FOUND");
    const scale = await api(server.url, "POST", `/api/v1/pools/${pool.id}/scale`, { token: intruder, body: { desiredWorkers: 9 } });
    assert.equal(scale.status, 404);
    const list = await api(server.url, "GET", "/api/v1/pools", { token: intruder });
    assert.deepEqual(
      list.body.items.map((p: { id: string }) => p.id),
      ["default"],
    );
    const socket = await connect(server.url, "pools", { token: intruder });
    assert.equal((await subscribe(socket, `pool:${pool.id}`)).error?.code, "NOT_FOUND");
    const tasks = await connect(server.url, "tasks", { token: intruder });
    assert.equal((await subscribe(tasks, `pool:${pool.id}`)).error?.code, "NOT_FOUND");
    // The owner's pool is untouched.
    const mine = await api(server.url, "GET", `/api/v1/pools/${pool.id}`, { token: owner });
    assert.equal(mine.body.pool.desiredWorkers, 0);
  });

  it("ignores a tenant the client tries to name itself", async () => {
    const tenant = freshTenant();
    const other = freshTenant();
    const token = mintToken({ tenant });
    const socket = await connect(server.url, "pools", { token, query: { tenant_id: other }, auth: { token, tenant_id: other } });
    const recorder = new EventRecorder(socket);
    await subscribe(socket, "pools");
    await api(server.url, "POST", "/api/v1/pools", { token: mintToken({ tenant: other }), body: { name: "theirs" } });
    await api(server.url, "POST", "/api/v1/pools", { token, body: { name: "mine", tenant_id: other } }).then((r) =>
      assert.equal(r.status, 400),
    );
    await api(server.url, "POST", "/api/v1/pools", { token, body: { name: "mine" } });
    const event = await recorder.next("pool.created");
    assert.equal((event.data as { pool: { name: string } }).pool.name, "mine");
    await sleep(200);
    assert.equal(recorder.events.length, 1);
  });
});
