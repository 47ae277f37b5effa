import assert from "node:assert/strict";
import type { Envelope } from "../src/client/index.js";
import { decodeCursor } from "../src/protocol/cursor.js";
import { connect, EventRecorder, sleep, subscribe } from "./support/clients.js";
import { freshTenant, TEST_REDIS_PREFIX } from "./support/env.js";
import { eventually } from "./support/faults.js";
import { api } from "./support/http.js";
import { isolatedDatabase } from "./support/isolation.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { mintToken } from "./support/tokens.js";
import { openClient } from "./support/tracked.js";

const seqOf = (e: Envelope): number => decodeCursor(e.cursor)!.seq;

/** Opens a client helper and collects what it delivers. */
async function helper(urls: string[], token: string, room: string) {
  const client = openClient({ urls, namespace: "pools", token, socketOptions: { transports: ["websocket"] } });
  const delivered: Envelope[] = [];
  const resets: string[] = [];
  client.onReset((_room, reason) => resets.push(reason));
  await client.subscribe(room, (event) => delivered.push(event));
  return { client, delivered, resets };
}

async function until(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function assertConsecutive(events: Envelope[], count: number): void {
  const seqs = events.map(seqOf);
  assert.equal(seqs.length, count, `expected ${count} events, got ${seqs.length}`);
  for (let i = 1; i < seqs.length; i++)
    assert.equal(seqs[i], seqs[i - 1]! + 1, `gap or disorder at ${i}: ${seqs.slice(Math.max(0, i - 3), i + 2).join(",")}`);
  assert.equal(new Set(events.map((e) => e.id)).size, count, "each event once");
}

/** desiredWorkers of the marker event: above anything the tests publish otherwise (the API allows up to 10,000). */
const MARKER = 9999;
const isMarker = (e: Envelope): boolean => e.type === "pool.scaling" && (e.data as { to?: number }).to === MARKER;

/**
 * Publishes a marker event after everything else and waits until each list holds it; returns each list's events
 * before it. A room's events arrive in order, so once the marker is in, every event published before it has been
 * delivered (or is missing for good): the check that follows needs no sleep to let stragglers or duplicates in.
 */
async function uptoMarker(url: string, token: string, poolId: string, lists: Envelope[][]): Promise<Envelope[][]> {
  const response = await api(url, "POST", `/api/v1/pools/${poolId}/scale`, { token, body: { desiredWorkers: MARKER } });
  assert.equal(response.status, 202);
  for (const [i, list] of lists.entries()) await until(() => list.some(isMarker), 20_000, `the marker event on subscriber ${i}`);
  return lists.map((list) => list.slice(0, list.findIndex(isMarker)));
}

/** Publishes `count` pool.scaling events through a node's REST API, `concurrency` calls at a time. */
async function publishScaling(url: string, token: string, poolId: string, count: number, concurrency = 1, delayMs = 0): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++;
        const response = await api(url, "POST", `/api/v1/pools/${poolId}/scale`, { token, body: { desiredWorkers: next } });
        assert.equal(response.status, 202);
        if (delayMs) await sleep(delayMs);
      }
    }),
  );
}

describe("no event lost", () => {
  let nodeA: ServerProcess;
  let nodeB: ServerProcess;
  beforeEach(async () => {
    [nodeA, nodeB] = await Promise.all([startServer({ NODE_ID: "nel-a" }), startServer({ NODE_ID: "nel-b" })]);
  });
  afterEach(async () => {
    await Promise.all([nodeA.kill(), nodeB.stop()]);
  });

  async function newPool(token: string): Promise<string> {
    return (await api(nodeB.url, "POST", "/api/v1/pools", { token, body: { name: "stream" } })).body.pool.id as string;
  }

  it("concurrent publishers on two nodes into one room: every subscriber sees strictly consecutive sequence numbers", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const poolId = await newPool(token);
    const room = `pool:${poolId}`;
    const subscribers = await Promise.all([helper([nodeA.url], token, room), helper([nodeB.url], token, room)]);
    await Promise.all([publishScaling(nodeA.url, token, poolId, 60, 6), publishScaling(nodeB.url, token, poolId, 60, 6)]);
    const [first, second] = await uptoMarker(
      nodeA.url,
      token,
      poolId,
      subscribers.map((s) => s.delivered),
    );
    for (const delivered of [first!, second!]) assertConsecutive(delivered, 120);
    assert.deepEqual(
      first!.map((e) => e.id),
      second!.map((e) => e.id),
      "both saw the same order",
    );
  });

  it("disconnect, 50 events, resubscribe with after: exactly the 50 in order, then live ones", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const poolId = await newPool(token);
    const room = `pool:${poolId}`;
    const first = await connect(nodeA.url, "pools", { token });
    const ack = await subscribe(first, room);
    first.close();
    await publishScaling(nodeB.url, token, poolId, 50, 5);
    const again = await connect(nodeA.url, "pools", { token });
    const seen = new EventRecorder(again);
    const resumed = await subscribe(again, room, ack.cursor);
    assert.equal(resumed.replayed, 50);
    await publishScaling(nodeB.url, token, poolId, 3);
    const [events] = await uptoMarker(nodeB.url, token, poolId, [seen.events]);
    assertConsecutive(events!, 53);
    assert.equal(seqOf(events![0]!), decodeCursor(ack.cursor)!.seq + 1);
  });

  it("events published while a client reconnects and resubscribes are neither lost nor duplicated", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const poolId = await newPool(token);
    const s = await helper([nodeA.url], token, `pool:${poolId}`);
    const publishing = publishScaling(nodeB.url, token, poolId, 120, 3, 5);
    for (let i = 0; i < 3; i++) {
      await sleep(150);
      // Drop the connection only once it is up again: closing an engine that is still opening (a reconnect attempt
      // in progress, slow on a busy machine) leaves socket.io-client waiting for its 20 s connect timeout, as no
      // real network drop does (that surfaces as a transport error), and the wait below gave up first.
      await until(() => s.client.socket.connected, 15_000, "the client to be connected again");
      // A dropped connection: socket.io-client reconnects and the helper resubscribes with its cursor.
      s.client.socket.io.engine.close();
    }
    await publishing;
    const [delivered] = await uptoMarker(nodeB.url, token, poolId, [s.delivered]);
    assertConsecutive(delivered!, 120);
    assert.deepEqual(s.resets, []);
  });

  it("failover: node A is killed -9 under a steady stream published via node B; clients end with every event once, in order", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const poolId = await newPool(token);
    const room = `pool:${poolId}`;
    const clients = await Promise.all(Array.from({ length: 3 }, () => helper([nodeA.url, nodeB.url], token, room)));
    let published = 0;
    const total = 150;
    const publisher = (async () => {
      while (published < total) {
        await api(nodeB.url, "POST", `/api/v1/pools/${poolId}/scale`, { token, body: { desiredWorkers: published } });
        published++;
        await sleep(10);
      }
    })();
    await until(() => published >= 40, 10_000, "stream under way");
    const atKill = clients.map((c) => c.delivered.length);
    const publishedAtKill = published;
    const reconnectedAt: number[] = [];
    for (const [i, c] of clients.entries()) c.client.socket.once("connect", () => (reconnectedAt[i] = published));
    await nodeA.kill();
    await publisher;
    const delivered = await uptoMarker(
      nodeB.url,
      token,
      poolId,
      clients.map((c) => c.delivered),
    );
    for (const [i, c] of clients.entries()) {
      assertConsecutive(delivered[i]!, total);
      assert.deepEqual(c.resets, []);
    }
    const inFlight = clients.map((_, i) => (reconnectedAt[i] ?? total) - atKill[i]!);
    // Reported, not asserted: how many events each client had not yet received when A died and got afterwards
    // from history on B.
    console.log(
      `      failover: published ${publishedAtKill} before the kill; events in flight per client (missed while reconnecting): ${inFlight.join(", ")}`,
    );
  });

  it("a cursor older than retention gets CURSOR_EXPIRED; the history keeps the newest events", async () => {
    // Its own database and Redis prefix: retention trims every room of the database it runs on (five events a room
    // would break other files' tests), and its lock is per deployment.
    const database = await isolatedDatabase("retention");
    const node = await startServer({
      EVENT_RETENTION_PER_ROOM: "5",
      EVENT_RETENTION_INTERVAL_MS: "300",
      DATABASE_URL: database,
      REDIS_PREFIX: `${TEST_REDIS_PREFIX}-retention`,
    });
    try {
      const token = mintToken({ tenant: freshTenant() });
      const socket = await connect(node.url, "pools", { token });
      const ack = await subscribe(socket, "pools");
      socket.close();
      for (let i = 0; i < 12; i++) await api(node.url, "POST", "/api/v1/pools", { token, body: { name: `p${i}` } });
      // Retention runs every 300 ms: wait for a pass after the last event. Nothing is published after these, so once
      // the room is down to five it stays as it is.
      let history = await api(node.url, "GET", "/api/v1/events?namespace=pools&room=pools&limit=100", { token });
      const trimmed = await eventually(async () => {
        history = await api(node.url, "GET", "/api/v1/events?namespace=pools&room=pools&limit=100", { token });
        // A read that lands while a retention pass holds the rows (a 503 past DEPENDENCY_TIMEOUT_MS on a busy
        // machine) is read again; the assertions below say what the last answer was.
        return history.status === 200 && history.body.items.length <= 5;
      }, 20_000);
      assert.equal(history.status, 200, JSON.stringify(history.body));
      assert.ok(trimmed, `the room still holds ${history.body.items.length} events`);
      assert.equal(history.body.items.length, 5);
      assert.deepEqual(
        history.body.items.map((e: { data: { pool: { name: string } } }) => e.data.pool.name),
        ["p7", "p8", "p9", "p10", "p11"],
      );
      const again = await connect(node.url, "pools", { token });
      const expired = await subscribe(again, "pools", ack.cursor);
      assert.equal(expired.error?.code, "CURSOR_EXPIRED");
      const old = await api(node.url, "GET", `/api/v1/events?namespace=pools&room=pools&after=${ack.cursor}`, { token });
      assert.equal(old.status, 410);
      assert.equal(old.body.error.code, "CURSOR_EXPIRED");
    } finally {
      await node.stop();
    }
  });
});
