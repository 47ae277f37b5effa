import assert from "node:assert/strict";
import type { ConnectionState, SwitchyardClient } from "../src/client/index.js";
import { freshTenant } from "./support/env.js";
import { eventually } from "./support/faults.js";
import { api } from "./support/http.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { mintToken } from "./support/tokens.js";
import { openClient } from "./support/tracked.js";

/** The client helper's connection state (what the console's indicator shows), against a real node. */

function watch(client: SwitchyardClient): ConnectionState[] {
  const states: ConnectionState[] = [client.state];
  client.onStateChange((state) => states.push(state));
  return states;
}

describe("client helper: connection state", () => {
  let node: ServerProcess;
  before(async () => {
    node = await startServer({ NODE_ID: "client-state" });
  });
  after(async () => {
    await node.stop();
  });

  it("connecting → catching-up → live; a dropped connection: reconnecting → catching-up → live; close(): disconnected", async () => {
    const client = openClient({
      urls: node.url,
      namespace: "tasks",
      token: mintToken({ tenant: freshTenant() }),
      socketOptions: { transports: ["websocket"] },
    });
    const states = watch(client);
    await client.subscribe("tasks", () => undefined);
    assert.deepEqual(states, ["connecting", "catching-up", "live"]);
    client.socket.io.engine.close();
    assert.ok(await eventually(() => states.length >= 6, 20_000, 20), `the reconnect's states: ${states.join(", ")}`);
    assert.deepEqual(states.slice(3), ["reconnecting", "catching-up", "live"]);
    assert.equal(client.state, "live");
    client.close();
    assert.equal(client.state, "disconnected");
    assert.equal(states.at(-1), "disconnected");
  });

  it("a refused token ends in disconnected (socket.io-client does not retry it)", async () => {
    const client = openClient({
      urls: node.url,
      namespace: "tasks",
      token: mintToken({ tenant: freshTenant(), ttl: -60 }),
      socketOptions: { transports: ["websocket"] },
    });
    client.onError(() => undefined);
    const states = watch(client);
    await assert.rejects(
      client.subscribe("tasks", () => undefined),
      (error: Error & { data?: { code?: string } }) => error.data?.code === "TOKEN_EXPIRED",
    );
    assert.deepEqual(states, ["connecting", "disconnected"]);
    client.close();
  });

  it('subscribe with after "0" delivers the room from its first stored event, in order, then live', async () => {
    const token = mintToken({ tenant: freshTenant() });
    for (const name of ["first", "second", "third"])
      assert.equal((await api(node.url, "POST", "/api/v1/pools", { token, body: { name } })).status, 201);
    const client = openClient({ urls: node.url, namespace: "pools", token, socketOptions: { transports: ["websocket"] } });
    const names: string[] = [];
    const cursors: string[] = [];
    const subscribed = await client.subscribe(
      "pools",
      (event) => {
        names.push((event.data as { pool: { name: string } }).pool.name);
        cursors.push(event.cursor);
      },
      { after: "0" },
    );
    assert.equal(subscribed.replayed, 3);
    assert.equal((await api(node.url, "POST", "/api/v1/pools", { token, body: { name: "fourth" } })).status, 201);
    assert.ok(await eventually(() => names.length === 4, 10_000, 20), `delivered: ${names.join(", ")}`);
    assert.deepEqual(names, ["first", "second", "third", "fourth"]);
    assert.deepEqual(
      cursors.map((c) => Number(c.split("-")[1])),
      [1, 2, 3, 4],
    );
    client.close();
  });

  it("subscribe with an after that is not a cursor rejects at once with BAD_REQUEST", async () => {
    const client = openClient({
      urls: node.url,
      namespace: "tasks",
      token: mintToken({ tenant: freshTenant() }),
      socketOptions: { transports: ["websocket"] },
    });
    await assert.rejects(
      client.subscribe("tasks", () => undefined, { after: "not-a-cursor" }),
      (error: Error & { code?: string }) => error.code === "BAD_REQUEST",
    );
    await client.subscribe("tasks", () => undefined);
    assert.equal(client.state, "live");
    client.close();
  });
});
