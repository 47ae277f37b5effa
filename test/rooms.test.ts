import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { connect, EventRecorder, request, sleep, subscribe } from "./support/clients.js";
import { freshTenant } from "./support/env.js";
import { api } from "./support/http.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { sharedServer } from "./support/shared.js";
import { mintToken } from "./support/tokens.js";

describe("rooms", () => {
  let server: ServerProcess;
  before(async () => {
    server = await sharedServer();
  });

  it("acknowledges every collection room of each namespace with a cursor", async () => {
    const token = mintToken({ tenant: freshTenant(), permissions: ["pools:read", "tasks:read", "workflows:read"] });
    for (const [namespace, room] of [
      ["pools", "pools"],
      ["tasks", "tasks"],
      ["workflows", "workflows"],
      ["pools", "pool:default"],
      ["tasks", "pool:default"],
    ] as const) {
      const socket = await connect(server.url, namespace, { token });
      const ack = await subscribe(socket, room);
      assert.equal(ack.ok, true, `${namespace} ${room}: ${JSON.stringify(ack)}`);
      assert.equal(ack.room, room);
      assert.match(ack.cursor ?? "", /^[a-z0-9]+-\d{12}$/);
    }
  });

  it("delivers pool.created as the contract's envelope to pools, then pool.scaling to pool:<id>", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const socket = await connect(server.url, "pools", { token });
    const recorder = new EventRecorder(socket);
    const ack = await subscribe(socket, "pools");
    const created = await api(server.url, "POST", "/api/v1/pools", { token, body: { name: "gpu", desiredWorkers: 2 } });
    assert.equal(created.status, 201);
    const pool = created.body.pool;
    const event = await recorder.next("pool.created", "pools");
    assert.deepEqual(Object.keys(event).sort(), ["cursor", "data", "id", "room", "ts", "type"]);
    assert.equal(event.type, "pool.created");
    assert.equal(event.room, "pools");
    assert.ok(event.cursor > ack.cursor!, "cursor increases within the room");
    assert.ok(!Number.isNaN(Date.parse(event.ts)));
    assert.deepEqual((event.data as { pool: unknown }).pool, pool);

    assert.equal((await subscribe(socket, `pool:${pool.id}`)).ok, true);
    const scaled = await api(server.url, "POST", `/api/v1/pools/${pool.id}/scale`, { token, body: { desiredWorkers: 5 } });
    assert.equal(scaled.status, 202);
    const scaling = await recorder.next("pool.scaling", `pool:${pool.id}`);
    assert.deepEqual({ from: (scaling.data as { from: number }).from, to: (scaling.data as { to: number }).to }, { from: 2, to: 5 });
    // The same event in two subscribed rooms: once per room, same id, each with its room's cursor.
    const inPools = await recorder.next("pool.scaling", "pools");
    assert.equal(inPools.id, scaling.id);
  });

  it("refuses names that are not rooms of the namespace with INVALID_ROOM", async () => {
    const socket = await connect(server.url, "tasks", { token: mintToken({ tenant: freshTenant() }) });
    for (const room of [
      "pools",
      "workflows",
      "task:",
      "task:a b",
      "task:../x",
      "tenant:other|tasks",
      "tasks ",
      "",
      ":x",
      "x".repeat(500),
    ]) {
      const ack = await subscribe(socket, room);
      assert.equal(ack.ok, false, room);
      assert.equal(ack.error?.code, "INVALID_ROOM", room);
    }
  });

  it("refuses rooms without the namespace's read permission with FORBIDDEN", async () => {
    const socket = await connect(server.url, "tasks", {
      token: mintToken({ tenant: freshTenant(), permissions: ["pools:read", "tasks:write"] }),
    });
    const ack = await subscribe(socket, "tasks");
    assert.equal(ack.error?.code, "FORBIDDEN");
  });

  it("answers NOT_FOUND for resources the tenant does not have", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const tasks = await connect(server.url, "tasks", { token });
    assert.equal((await subscribe(tasks, `task:${randomUUID()}`)).error?.code, "NOT_FOUND");
    assert.equal((await subscribe(tasks, "pool:nope")).error?.code, "NOT_FOUND");
    const workflows = await connect(server.url, "workflows", { token });
    assert.equal((await subscribe(workflows, `workflow:${randomUUID()}`)).error?.code, "NOT_FOUND");
  });

  it("stops delivering a room's events after unsubscribe", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const socket = await connect(server.url, "pools", { token });
    const recorder = new EventRecorder(socket);
    await subscribe(socket, "pools");
    await api(server.url, "POST", "/api/v1/pools", { token, body: { name: "one" } });
    await recorder.next("pool.created");
    assert.deepEqual(await request(socket, "unsubscribe", { room: "pools" }), { ok: true, room: "pools" });
    await api(server.url, "POST", "/api/v1/pools", { token, body: { name: "two" } });
    await sleep(300);
    assert.equal(recorder.of("pool.created").length, 1);
  });

  it("rate-limits room operations per socket with RATE_LIMITED, and recovers", async () => {
    const node = await startServer({ SOCKET_EVENTS_PER_SECOND: "5" });
    try {
      const socket = await connect(node.url, "tasks", { token: mintToken({ tenant: freshTenant() }) });
      const acks = await Promise.all(Array.from({ length: 20 }, () => subscribe(socket, "tasks")));
      const limited = acks.filter((a) => a.error?.code === "RATE_LIMITED").length;
      assert.ok(limited >= 10, `expected most of 20 rapid subscribes to be limited, got ${limited}`);
      await sleep(1200);
      assert.equal((await subscribe(socket, "tasks")).ok, true);
    } finally {
      await node.stop();
    }
  });
});
