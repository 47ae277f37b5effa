import assert from "node:assert/strict";
import { connect, EventRecorder, subscribe } from "./support/clients.js";
import { freshTenant } from "./support/env.js";
import { api } from "./support/http.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { mintToken } from "./support/tokens.js";
import { decodeCursor, encodeCursor } from "../src/protocol/cursor.js";

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

  it("hands a replay over to the live stream with nothing doubled or overtaken while another node publishes (raw client)", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const seqOf = (cursor: string): number => decodeCursor(cursor)!.seq;
    let published = 0;
    let publishing = true;
    let failure: string | undefined;
    // One publisher through node B: its events are numbered and broadcast in order.
    const publisher = (async () => {
      while (publishing) {
        const response = await api(nodeB.url, "POST", "/api/v1/events", {
          token,
          body: { namespace: "tasks", room: "tasks", type: "seam.step", data: { n: published + 1 } },
        });
        if (response.status === 202) published++;
        else failure = `publish answered ${response.status}: ${JSON.stringify(response.body)}`;
      }
    })();
    try {
      while (published < 5 && failure === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
      // Subscribes from a few events back, again and again, each time on a fresh raw socket on node A: the replay
      // catches up while node B keeps publishing, and the socket then goes on live.
      for (let round = 1; round <= 15; round++) {
        assert.equal(failure, undefined);
        const read = await api(nodeA.url, "GET", "/api/v1/events?namespace=tasks&room=tasks&limit=1", { token });
        const head = decodeCursor(read.body.head as string)!;
        const after = encodeCursor({ epoch: head.epoch, seq: Math.max(0, head.seq - 3) });
        const socket = await connect(nodeA.url, "tasks", { token });
        const seen = new EventRecorder(socket);
        const ack = await subscribe(socket, "tasks", after);
        assert.equal(ack.ok, true, JSON.stringify(ack));
        const target = seqOf(ack.cursor!) + 5;
        await seen.until((events) => events.some((e) => seqOf(e.cursor) >= target), 10_000, `round ${round}: events up to ${target}`);
        const seqs = seen.events.map((e) => seqOf(e.cursor));
        assert.deepEqual(
          seqs,
          seqs.map((_, i) => seqOf(after) + 1 + i),
          `round ${round}: each event after the cursor once, in order`,
        );
        socket.close();
      }
    } finally {
      publishing = false;
      await publisher;
    }
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
