import assert from "node:assert/strict";
import { connect, EventRecorder, subscribe } from "./support/clients.js";
import { freshTenant } from "./support/env.js";
import { api } from "./support/http.js";
import { sharedServer } from "./support/shared.js";
import { mintToken } from "./support/tokens.js";
import type { EventEnvelope } from "../src/protocol/events.js";
import type { PoolView } from "../src/protocol/views.js";

describe("pool updates", () => {
  it("PATCH renames, describes and resizes a pool; pool.updated names what changed, once", async () => {
    const server = await sharedServer();
    const token = mintToken({ tenant: freshTenant() });
    const pool = (await api<{ pool: PoolView }>(server.url, "POST", "/api/v1/pools", { token, body: { name: "gpu" } })).body.pool;
    assert.equal(pool.description, null);
    const socket = await connect(server.url, "pools", { token });
    const recorder = new EventRecorder(socket);
    assert.equal((await subscribe(socket, `pool:${pool.id}`)).ok, true);
    assert.equal((await subscribe(socket, "pools")).ok, true);

    const patched = await api<{ pool: PoolView }>(server.url, "PATCH", `/api/v1/pools/${pool.id}`, {
      token,
      body: { name: "gpu-large", description: "A100s", desiredWorkers: 4 },
    });
    assert.equal(patched.status, 200);
    assert.deepEqual(
      { ...patched.body.pool, updatedAt: "" },
      { ...pool, name: "gpu-large", description: "A100s", desiredWorkers: 4, updatedAt: "" },
    );
    const event = (await recorder.next("pool.updated", `pool:${pool.id}`)) as EventEnvelope<"pool.updated">;
    assert.deepEqual(event.data, { pool: patched.body.pool, changed: ["name", "description", "desiredWorkers"] });
    await recorder.next("pool.updated", "pools");

    // The same PATCH again changes nothing and announces nothing.
    const again = await api<{ pool: PoolView }>(server.url, "PATCH", `/api/v1/pools/${pool.id}`, {
      token,
      body: { name: "gpu-large", description: "A100s" },
    });
    assert.equal(again.status, 200);
    const history = await api(server.url, "GET", `/api/v1/events?namespace=pools&room=pool:${pool.id}`, { token });
    assert.deepEqual(
      history.body.items.map((e: { type: string }) => e.type),
      ["pool.created", "pool.updated"],
    );
    const cleared = await api<{ pool: PoolView }>(server.url, "PATCH", `/api/v1/pools/${pool.id}`, { token, body: { description: null } });
    assert.equal(cleared.body.pool.description, null);
  });

  it("refuses bad updates with a clear error and changes nothing", async () => {
    const server = await sharedServer();
    const tenant = freshTenant();
    const token = mintToken({ tenant });
    const pool = (await api<{ pool: PoolView }>(server.url, "POST", "/api/v1/pools", { token, body: { name: "a" } })).body.pool;
    await api(server.url, "POST", "/api/v1/pools", { token, body: { name: "b" } });
    const patch = (body: unknown, as = token, id = pool.id) => api(server.url, "PATCH", `/api/v1/pools/${id}`, { token: as, body });
    assert.equal((await patch({})).status, 400, "nothing to change");
    assert.equal((await patch({ name: "" })).status, 400);
    assert.equal((await patch({ desiredWorkers: -1 })).status, 400);
    assert.equal((await patch({ tenantId: "other" })).status, 400, "unknown fields are refused");
    assert.equal((await patch({ description: "nul\u0000" })).status, 400);
    assert.equal((await patch({ name: "b" })).status, 409, "another pool has that name");
    assert.equal((await patch({ name: "c" }, mintToken({ tenant, permissions: ["pools:read"] }))).status, 403);
    assert.equal((await patch({ name: "c" }, mintToken({ tenant: freshTenant() }))).status, 404, "another tenant's pool does not exist");
    assert.equal((await patch({ name: "c" }, token, "no-such-pool")).status, 404);
    const after = await api<{ pool: PoolView }>(server.url, "GET", `/api/v1/pools/${pool.id}`, { token });
    assert.equal(after.body.pool.name, "a");
    const history = await api(server.url, "GET", `/api/v1/events?namespace=pools&room=pool:${pool.id}`, { token });
    assert.deepEqual(
      history.body.items.map((e: { type: string }) => e.type),
      ["pool.created"],
    );
  });
});
