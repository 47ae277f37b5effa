import assert from "node:assert/strict";
import { connect, EventRecorder, sleep, subscribe } from "./support/clients.js";
import { freshTenant } from "./support/env.js";
import { api, type ApiResponse } from "./support/http.js";
import { sharedServer } from "./support/shared.js";
import { mintToken } from "./support/tokens.js";
import { startServer, type ServerProcess } from "./support/server.js";

describe("cursors, replay and history", () => {
  let server: ServerProcess;
  before(async () => {
    server = await sharedServer();
  });

  async function createPools(token: string, names: string[]): Promise<void> {
    for (const name of names) assert.equal((await api(server.url, "POST", "/api/v1/pools", { token, body: { name } })).status, 201);
  }

  it("replays the events missed since a cursor, in order, before live ones", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const first = await connect(server.url, "pools", { token });
    const ack = await subscribe(first, "pools");
    first.close();
    await createPools(token, ["p1", "p2", "p3"]);
    const again = await connect(server.url, "pools", { token });
    const seen = new EventRecorder(again);
    const resumed = await subscribe(again, "pools", ack.cursor);
    assert.equal(resumed.ok, true);
    assert.equal(resumed.replayed, 3);
    await createPools(token, ["p4"]);
    await seen.until((e) => e.length === 4);
    assert.deepEqual(
      seen.events.map((e) => (e.data as { pool: { name: string } }).pool.name),
      ["p1", "p2", "p3", "p4"],
    );
    const seqs = seen.events.map((e) => Number(e.cursor.split("-")[1]));
    assert.deepEqual(seqs, [seqs[0]!, seqs[0]! + 1, seqs[0]! + 2, seqs[0]! + 3]);
  });

  it("refuses a cursor of another epoch with CURSOR_EXPIRED and a cursor ahead of the room with BAD_REQUEST, leaving the room unjoined", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const socket = await connect(server.url, "pools", { token });
    const seen = new EventRecorder(socket);
    const expired = await subscribe(socket, "pools", "zzzzzzzzzz-000000000000");
    assert.equal(expired.ok, false);
    assert.equal(expired.error?.code, "CURSOR_EXPIRED");
    const epoch = (await api(server.url, "GET", "/api/v1/events?namespace=pools&room=pools", { token })).body.head.split("-")[0];
    const ahead = await subscribe(socket, "pools", `${epoch}-000000000999`);
    assert.equal(ahead.error?.code, "BAD_REQUEST");
    await createPools(token, ["unheard"]);
    await sleep(300);
    assert.equal(seen.events.length, 0, "a refused subscribe leaves the socket out of the room");
  });

  it("serves a room's history after a cursor, tenant-scoped", async () => {
    const token = mintToken({ tenant: freshTenant() });
    await createPools(token, ["a", "b", "c"]);
    const all = await api(server.url, "GET", "/api/v1/events?namespace=pools&room=pools", { token });
    assert.equal(all.status, 200);
    assert.deepEqual(
      all.body.items.map((e: { type: string }) => e.type),
      ["pool.created", "pool.created", "pool.created"],
    );
    const after = await api(server.url, "GET", `/api/v1/events?namespace=pools&room=pools&after=${all.body.items[0].cursor}&limit=1`, {
      token,
    });
    assert.equal(after.body.items.length, 1);
    assert.equal(after.body.items[0].data.pool.name, "b");
    assert.equal(after.body.hasMore, true);
    const other = await api(server.url, "GET", "/api/v1/events?namespace=pools&room=pools", {
      token: mintToken({ tenant: freshTenant() }),
    });
    assert.deepEqual(other.body.items, []);
    const invalid = await api(server.url, "GET", "/api/v1/events?namespace=pools&room=tasks", { token });
    assert.equal(invalid.body.error.code, "INVALID_ROOM");
    const noNs = await api(server.url, "GET", "/api/v1/events?room=pools", { token });
    assert.equal(noNs.status, 400);
  });

  it("lets many sockets subscribe to a brand-new room at once", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const sockets = await Promise.all(Array.from({ length: 20 }, () => connect(server.url, "tasks", { token })));
    const acks = await Promise.all(sockets.flatMap((s) => [subscribe(s, "tasks"), subscribe(s, "pool:default")]));
    assert.deepEqual(
      acks.filter((a) => !a.ok),
      [],
    );
    assert.equal(new Set(acks.filter((a) => a.room === "tasks").map((a) => a.cursor)).size, 1);
  });
});

describe("MAX_RESPONSE_BYTES: history pages and lists bounded in bytes", () => {
  let node: ServerProcess;
  before(async () => {
    node = await startServer({ MAX_RESPONSE_BYTES: "130000", EMBEDDED_WORKER: "false" });
  });
  after(async () => {
    await node?.stop();
  });

  it("stops a page early at the byte bound, with hasMore and its cursor; following the cursors gives every event once, in order", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const big = "x".repeat(60_000);
    for (let n = 1; n <= 7; n++) {
      const published = await api(node.url, "POST", "/api/v1/events", {
        token,
        body: { namespace: "tasks", room: "tasks", type: "bulk.blob", data: { n, big } },
      });
      assert.equal(published.status, 202, JSON.stringify(published.body));
    }
    const seen: number[] = [];
    let after: string | undefined;
    for (let pages = 1; ; pages++) {
      assert.ok(pages <= 7, "every page moves on");
      const page = await api(node.url, "GET", `/api/v1/events?namespace=tasks&room=tasks&limit=1000${after ? `&after=${after}` : ""}`, {
        token,
      });
      assert.equal(page.status, 200, JSON.stringify(page.body).slice(0, 300));
      const items = page.body.items as Array<{ data: { n: number } }>;
      // Two events of 60 KB fit in 130,000 bytes, a third does not.
      assert.ok(items.length >= 1 && items.length <= 2, `a page of ${items.length}`);
      assert.ok(Buffer.byteLength(JSON.stringify(items.map((e) => e.data))) <= 130_000);
      seen.push(...items.map((e) => e.data.n));
      after = page.body.nextCursor as string;
      if (!page.body.hasMore) break;
    }
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7]);
  });

  /** Follows a list's cursors to its end; each page's body is within the bound and moves on. */
  async function readList(token: string, path: string): Promise<Array<{ id: string }>> {
    const items: Array<{ id: string }> = [];
    let cursor: string | null = null;
    for (let pages = 1; ; pages++) {
      assert.ok(pages <= 100, "every page moves on");
      const page: ApiResponse = await api(node.url, "GET", `${path}?limit=200${cursor ? `&cursor=${cursor}` : ""}`, { token });
      assert.equal(page.status, 200, JSON.stringify(page.body).slice(0, 300));
      assert.ok(
        Buffer.byteLength(JSON.stringify(page.body)) <= 130_000,
        `${path}: a page of ${Buffer.byteLength(JSON.stringify(page.body))} bytes`,
      );
      assert.ok(page.body.items.length >= 1);
      items.push(...(page.body.items as Array<{ id: string }>));
      cursor = page.body.nextCursor as string | null;
      if (!cursor) return items;
    }
  }

  it("ends task, schedule and pool pages early at the byte bound; following the cursors lists each once", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const big = "y".repeat(50_000);
    const tasks: string[] = [];
    for (let n = 0; n < 6; n++) {
      const submitted = await api(node.url, "POST", "/api/v1/tasks", { token, body: { type: "echo", payload: { n, big } } });
      assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
      tasks.push(submitted.body.task.id as string);
    }
    // Small tasks after big ones: a page holds many of them, and the big ones still come two to a page.
    for (let n = 0; n < 30; n++)
      tasks.push((await api(node.url, "POST", "/api/v1/tasks", { token, body: { type: "echo", payload: { n } } })).body.task.id as string);
    const listedTasks = await readList(token, "/api/v1/tasks");
    assert.deepEqual(listedTasks.map((t) => t.id).sort(), [...tasks].sort());

    const schedules: string[] = [];
    for (let n = 0; n < 4; n++) {
      const created = await api(node.url, "POST", "/api/v1/schedules", {
        token,
        body: { name: `big-${n}`, task: { type: "echo", payload: { big } }, every: 3_600_000 },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body).slice(0, 300));
      schedules.push(created.body.schedule.id as string);
    }
    assert.deepEqual((await readList(token, "/api/v1/schedules")).map((s) => s.id).sort(), [...schedules].sort());

    const pools: string[] = [];
    for (let n = 0; n < 110; n++) {
      const created = await api(node.url, "POST", "/api/v1/pools", { token, body: { name: `pool-${n}`, description: "d".repeat(1000) } });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      pools.push(created.body.pool.id as string);
    }
    const listedPools = await readList(token, "/api/v1/pools");
    // The tenant's default pool was made by its first task.
    assert.deepEqual(listedPools.map((p) => p.id).sort(), [...pools, "default"].sort());
  });
});
