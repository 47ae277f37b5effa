import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import pg from "pg";
import type { Socket } from "socket.io-client";
import { createPrisma } from "../src/db/client.js";
import { EventLogReader } from "../src/events/event-log-reader.js";
import { connect, EventRecorder, request, sleep, subscribe, type SubscribeResult } from "./support/clients.js";
import { freshTenant, TEST_DATABASE_URL, TEST_REDIS_PREFIX } from "./support/env.js";
import { api, roomHistory } from "./support/http.js";
import { RawSocket } from "./support/raw-socket.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { sharedServer } from "./support/shared.js";
import { submitTask } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";
import { scrape, total } from "./support/metrics.js";
import { prismaSql } from "../src/db/sql.js";

const MiB = 1024 * 1024;

/** The peak resident set size (VmHWM) of a process, in bytes. */
function peakRss(pid: number): number {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!match) throw new Error(`no VmHWM for ${pid}`);
  return Number(match[1]) * 1024;
}

/** switchyard_slow_consumer_disconnects_total of a node, summed per reason. */
async function slowConsumerDisconnects(node: ServerProcess): Promise<Record<string, number>> {
  const text = (await api<string>(node.url, "GET", "/metrics")).body;
  const counts: Record<string, number> = {};
  for (const [, labels, value] of text.matchAll(/^switchyard_slow_consumer_disconnects_total\{([^}]*)\} (\S+)$/gm)) {
    const reason = /reason="([^"]*)"/.exec(labels!)?.[1] ?? "";
    counts[reason] = (counts[reason] ?? 0) + Number(value);
  }
  return counts;
}
const sum = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0);

/** Polls `check` until it holds; fails after `timeoutMs` (a generous bound, not a performance threshold). */
async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

async function within<T>(what: string, promise: Promise<T>, timeoutMs = 90_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** subscribe with a long ack timeout (replays of megabytes). */
async function subscribeSlowly(socket: Socket, room: string, after?: string): Promise<SubscribeResult> {
  return (await socket.timeout(60_000).emitWithAck("subscribe", after === undefined ? { room } : { room, after })) as SubscribeResult;
}

const seqOf = (cursor: string): number => Number(cursor.split("-")[1]);

describe("slow consumers and bounded replay", function () {
  this.timeout(240_000);
  let db: pg.Client;
  const tenants: string[] = [];

  before(async () => {
    db = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await db.connect();
  });
  afterEach(async () => {
    // Rows written straight into the log (the per-run database is dropped at the end as well).
    for (const tenant of tenants.splice(0)) {
      await db.query(`DELETE FROM "RoomEvent" WHERE "tenantId" = $1`, [tenant]);
      await db.query(`DELETE FROM "Event" WHERE "tenantId" = $1`, [tenant]);
      await db.query(`DELETE FROM "RoomSequence" WHERE "tenantId" = $1`, [tenant]);
    }
  });
  after(async () => {
    await db.end();
  });

  /**
   * Stores `count` events of about `bytes` of data each in one room, straight into the log's tables (much faster
   * than publishing them), numbered 1..count under a fresh epoch; returns the cursor before the first one.
   */
  async function seedRoom(tenant: string, namespace: string, room: string, count: number, bytes: number): Promise<string> {
    if (!tenants.includes(tenant)) tenants.push(tenant);
    const epoch = randomBytes(5).toString("hex");
    await db.query(`INSERT INTO "RoomSequence" ("tenantId", "namespace", "room", "seq", "epoch") VALUES ($1, $2, $3, $4, $5)`, [
      tenant,
      namespace,
      room,
      count,
      epoch,
    ]);
    await db.query(
      `WITH events AS (
         INSERT INTO "Event" ("id", "tenantId", "type", "data", "ts", "targets", "seqs")
         SELECT gen_random_uuid()::text, $1, 'task.progress',
                jsonb_build_object('n', g, 'blob', repeat(md5(g::text), greatest(1, $5::int / 32))), now(), ARRAY[$2 || '|' || $3], ARRAY[g]
           FROM generate_series(1, $4::int) AS g
         RETURNING "id", "seqs"[1] AS seq
       )
       INSERT INTO "RoomEvent" ("tenantId", "namespace", "room", "seq", "eventId") SELECT $1, $2, $3, seq, "id" FROM events`,
      [tenant, namespace, room, count, bytes],
    );
    return `${epoch}-000000000000`;
  }

  it("EventLogReader.readAfter bounds a page by the bytes of its events' data, and always returns the first event", async () => {
    const tenant = freshTenant("bytes");
    await seedRoom(tenant, "tasks", "tasks", 10, 10_000);
    const { rows } = await db.query<{ size: number }>(
      `SELECT octet_length("data"::text) AS size FROM "Event" WHERE "tenantId" = $1 ORDER BY "seqs"[1]`,
      [tenant],
    );
    const size = rows.map((r) => Number(r.size));
    const prisma = createPrisma(TEST_DATABASE_URL);
    try {
      const log = new EventLogReader(prisma, prismaSql(prisma));
      const seqs = async (after: number, limit: number, maxBytes?: number): Promise<number[]> =>
        (await log.readAfter(tenant, "tasks", "tasks", after, limit, maxBytes)).map((e) => e.seq);
      assert.deepEqual(await seqs(0, 500), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      // Exactly three events fit in the sum of the first three sizes; one byte less and only two do.
      const three = size[0]! + size[1]! + size[2]!;
      assert.deepEqual(await seqs(0, 500, three), [1, 2, 3]);
      assert.deepEqual(await seqs(0, 500, three - 1), [1, 2]);
      assert.deepEqual(await seqs(0, 2, three), [1, 2], "the row limit still applies");
      assert.deepEqual(await seqs(4, 500, 1), [5], "the first event always fits");
      assert.deepEqual(await seqs(8, 500, 10 * MiB), [9, 10]);
      assert.deepEqual(await seqs(10, 500, 10 * MiB), []);
      const [event] = await log.readAfter(tenant, "tasks", "tasks", 0, 1, MiB);
      assert.ok(event!.ts instanceof Date);
      assert.equal((event!.data as { n: number }).n, 1);
      assert.equal(typeof event!.eventId, "string");
      assert.equal(event!.type, "task.progress");
    } finally {
      await prisma.$disconnect();
    }
  });

  it("a client that asks for 40 replays of a 115 MB room and stops reading is closed; the node stays up, serves others and its memory stays bounded", async () => {
    const node = await startServer({ SLOW_CONSUMER_TIMEOUT_MS: "5000" });
    try {
      const tenant = freshTenant("attack");
      // 2400 events of 48 KB: about 115 MB of event data in one room.
      const after = await seedRoom(tenant, "tasks", "tasks", 2400, 48_000);
      const bystanderToken = mintToken({ tenant: freshTenant("bystander") });
      const bystander = await connect(node.url, "pools", { token: bystanderToken });
      const seen = new EventRecorder(bystander);
      assert.equal((await subscribe(bystander, "pools")).ok, true);

      const attacker = await RawSocket.connect(node.url, "/tasks", mintToken({ tenant }));
      for (let i = 0; i < 40; i++) void attacker.emitWithAck("subscribe", { room: "tasks", after });
      attacker.pause();

      // While the node is being asked for 40 replays, it still serves others.
      assert.equal((await api(node.url, "POST", "/api/v1/pools", { token: bystanderToken, body: { name: "during" } })).status, 201);
      const during = await seen.next("pool.created", "pools", 30_000);
      assert.equal((during.data as { pool: { name: string } }).pool.name, "during");

      await until(
        "the node to close the paused client as a slow consumer",
        async () => (await slowConsumerDisconnects(node)).read_timeout === 1,
      );
      // Once it reads again, the client finds its connection closed by the server.
      attacker.resume();
      await within("the attacker's connection to close", attacker.closed);

      assert.equal((await api(node.url, "GET", "/health")).status, 200);
      assert.equal((await api(node.url, "POST", "/api/v1/pools", { token: bystanderToken, body: { name: "after" } })).status, 201);
      await seen.until(
        (events) => events.some((e) => (e.data as { pool: { name: string } }).pool.name === "after"),
        30_000,
        "pool.created after",
      );
      assert.equal(bystander.connected, true);
      assert.equal(node.process.exitCode, null, "the node is still running");

      const peak = peakRss(node.process.pid!);
      process.stdout.write(
        `      peak RSS of the node under the replay attack: ${(peak / MiB).toFixed(0)} MiB (VmHWM); disconnects: ${JSON.stringify(await slowConsumerDisconnects(node))}\n`,
      );
      assert.ok(peak < 1.5 * 1024 * MiB, `peak RSS ${(peak / MiB).toFixed(0)} MiB`);
    } finally {
      await node.stop();
    }
  });

  it("with a small MAX_SOCKET_BUFFER_BYTES, a reading client still gets a replay of events larger than the limit's pages, in order; a paused one is closed", async () => {
    const node = await startServer({ MAX_SOCKET_BUFFER_BYTES: "65536", SLOW_CONSUMER_TIMEOUT_MS: "5000" });
    try {
      const tenant = freshTenant("small");
      const token = mintToken({ tenant });
      // Each event is bigger than a page's byte budget (half the limit): every page holds exactly one. 1000 of them
      // (48 MB) are more than the kernel's socket buffers can take for the paused client below.
      const after = await seedRoom(tenant, "tasks", "tasks", 1000, 48_000);
      const reader = await connect(node.url, "tasks", { token });
      const seen = new EventRecorder(reader);
      const ack = await subscribeSlowly(reader, "tasks", after);
      assert.equal(ack.ok, true, JSON.stringify(ack));
      assert.equal(ack.replayed, 1000);
      assert.deepEqual(
        seen.events.map((e) => seqOf(e.cursor)),
        Array.from({ length: 1000 }, (_, i) => i + 1),
      );
      assert.equal(sum(await slowConsumerDisconnects(node)), 0, "a client that reads is never closed");

      const paused = await RawSocket.connect(node.url, "/tasks", token);
      void paused.emitWithAck("subscribe", { room: "tasks", after });
      paused.pause();
      await until("the node to close the paused client", async () => sum(await slowConsumerDisconnects(node)) >= 1);
      paused.resume();
      await within("the paused client's connection to close", paused.closed);
      assert.equal(reader.connected, true);
    } finally {
      await node.stop();
    }
  });

  it("a busy room: a client that reads slowly falls behind and gets every event once, in order, without a reconnect; sockets that read nothing are closed after SLOW_CONSUMER_TIMEOUT_MS", async () => {
    // A Redis prefix of its own: every node of the run serves every tenant's `default` pool, so with the run's
    // prefix another node could run some of these tasks, and its events would reach this node through Redis.
    // Raw clients can see events of two publishing nodes out of order (docs/architecture.md, Known limitations);
    // this test is about one node's readers, so all its events come from this node.
    const node = await startServer({ REDIS_PREFIX: `${TEST_REDIS_PREFIX}-slow`, SLOW_CONSUMER_TIMEOUT_MS: "4000" });
    try {
      const tenant = freshTenant("busy");
      const token = mintToken({ tenant });
      const reader = await connect(node.url, "tasks", { token });
      const seen = new EventRecorder(reader);
      const ack = await subscribe(reader, "tasks");
      assert.equal(ack.ok, true);
      // Reads in short bursts: 10 ms of every second, a few MB (what the kernel buffered) each time, while the room
      // fills at about 10 MB/s.
      const slow = await RawSocket.connect(node.url, "/tasks", token);
      assert.equal(((await slow.emitWithAck("subscribe", { room: "tasks" })) as { ok: boolean }).ok, true);
      let slowClosed = false;
      void slow.closed.then(() => (slowClosed = true));
      let reading = true;
      const sipping = (async () => {
        while (reading) {
          slow.pause();
          await sleep(990);
          slow.resume();
          await sleep(10);
        }
      })();
      const paused = await Promise.all(
        Array.from({ length: 3 }, async () => {
          const socket = await RawSocket.connect(node.url, "/tasks", token);
          assert.deepEqual(((await socket.emitWithAck("subscribe", { room: "tasks" })) as { ok: boolean }).ok, true);
          socket.pause();
          return socket;
        }),
      );

      // Each echo task publishes created, queued, assigned, started and completed to `tasks`, each carrying the
      // 300 KB payload (completed twice: payload and result): about 1.8 MB per task and subscriber, 54 MB for 30.
      const payload = { blob: "x".repeat(300_000) };
      const ids: string[] = [];
      for (let i = 0; i < 30; i++) ids.push((await submitTask(node.url, token, { type: "echo", payload })).id);
      await seen.until(
        (events) =>
          ids.every((id) => events.some((e) => e.type === "task.completed" && (e.data as { task: { id: string } }).task.id === id)),
        120_000,
        "every task.completed",
      );
      // The sockets that read nothing are closed once they have read nothing for SLOW_CONSUMER_TIMEOUT_MS.
      await until("the three paused sockets to be closed", async () => ((await slowConsumerDisconnects(node)).read_timeout ?? 0) >= 3);
      for (const socket of paused) socket.resume();
      await within("the paused sockets' connections to close", Promise.all(paused.map((s) => s.closed)));

      // The whole history after the subscribers' cursor (pages of at most MAX_RESPONSE_BYTES: these events are big).
      const history = await roomHistory(node.url, token, "tasks", "tasks", ack.cursor);
      assert.equal(history.length, ids.length * 5);
      const cursors = history.map((e) => e.cursor);
      try {
        await until("the slow reader to have read every event", () => slow.events.length >= cursors.length || slowClosed, 120_000);
      } finally {
        reading = false;
        await sipping;
      }
      slow.resume();
      await sleep(500);
      assert.deepEqual(
        slow.events.map((e) => e.cursor),
        cursors,
        "the slow reader: every event once, in order",
      );
      assert.equal(slowClosed, false, "the slow reader was never disconnected");
      assert.equal(reader.connected, true);
      assert.deepEqual(
        seen.events.filter((e) => e.room === "tasks").map((e) => e.cursor),
        cursors,
      );
      const behind = total([await scrape(node.url)], "switchyard_slow_readers_total");
      // The three paused sockets fell behind once each; the slow reader at least once more.
      assert.ok(behind >= 4, `connections fell behind ${behind} times`);
      const disconnects = await slowConsumerDisconnects(node);
      assert.equal(disconnects.read_timeout, 3, JSON.stringify(disconnects));
      assert.equal(sum(disconnects), 3, JSON.stringify(disconnects));
      process.stdout.write(
        `      connections fell behind ${behind} times; peak RSS of the node ${(peakRss(node.process.pid!) / MiB).toFixed(0)} MiB\n`,
      );
    } finally {
      await node.stop();
    }
  });

  it("a second subscribe with after for the same room supersedes the first (SUPERSEDED), and the second delivers every event once, in order", async () => {
    const server = await sharedServer();
    const tenant = freshTenant("supersede");
    const token = mintToken({ tenant });
    const after = await seedRoom(tenant, "tasks", "tasks", 300, 20_000);
    const socket = await connect(server.url, "tasks", { token });
    const seen = new EventRecorder(socket);
    const [first, second] = await Promise.all([subscribeSlowly(socket, "tasks", after), subscribeSlowly(socket, "tasks", after)]);
    assert.equal(first.ok, false, JSON.stringify(first));
    assert.equal(first.error?.code, "SUPERSEDED");
    assert.equal(second.ok, true, JSON.stringify(second));
    assert.equal(second.replayed, 300);
    const seqs = seen.events.map((e) => seqOf(e.cursor));
    // What the first sent before it stopped (if anything) is a prefix; the second's replay is all 300, in order.
    const firstSent = seqs.length - 300;
    assert.ok(firstSent >= 0 && firstSent < 300, `received ${seqs.length}`);
    assert.deepEqual(
      seqs.slice(0, firstSent),
      Array.from({ length: firstSent }, (_, i) => i + 1),
    );
    assert.deepEqual(
      seqs.slice(firstSent),
      Array.from({ length: 300 }, (_, i) => i + 1),
    );

    // The socket stays subscribed: a live event arrives, once.
    const task = await submitTask(server.url, token, { type: "echo", payload: { hello: 1 } });
    await seen.until((events) => events.some((e) => e.type === "task.completed"), 30_000, "task.completed");
    const created = seen.events.filter((e) => e.type === "task.created");
    assert.equal(created.length, 1);
    assert.equal((created[0]!.data as { task: { id: string } }).task.id, task.id);
    assert.equal(seqOf(created[0]!.cursor), 301);
  });

  it("unsubscribe stops a replay of the room under way (SUPERSEDED), and the socket stays out of the room", async () => {
    const server = await sharedServer();
    const tenant = freshTenant("unsub");
    const token = mintToken({ tenant });
    // Big enough (about 96 MB) that the replay is still under way when the unsubscribe arrives.
    const after = await seedRoom(tenant, "tasks", "tasks", 2000, 48_000);
    const socket = await connect(server.url, "tasks", { token });
    const seen = new EventRecorder(socket);
    const subscribing = subscribeSlowly(socket, "tasks", after);
    await seen.until((events) => events.length > 0, 30_000, "the first replayed event");
    assert.equal((await request<{ ok: boolean }>(socket, "unsubscribe", { room: "tasks" })).ok, true);
    const ack = await subscribing;
    assert.equal(ack.error?.code, "SUPERSEDED", JSON.stringify(ack));
    const replayed = seen.events.length;
    assert.ok(replayed < 2000, `received ${replayed}`);

    const watcher = await connect(server.url, "tasks", { token });
    const watched = new EventRecorder(watcher);
    assert.equal((await subscribe(watcher, "tasks")).ok, true);
    await submitTask(server.url, token, { type: "echo", payload: {} });
    await watched.next("task.completed", "tasks", 30_000);
    await sleep(300);
    assert.deepEqual(seen.events.slice(replayed), [], "nothing reaches the unsubscribed socket");
  });

  it("replays of different rooms on one socket run one after the other", async () => {
    const server = await sharedServer();
    const tenant = freshTenant("lanes");
    const token = mintToken({ tenant });
    const socket = await connect(server.url, "tasks", { token });
    // pool:default exists once the tenant does: the first subscribe to it creates both.
    assert.equal((await subscribeSlowly(socket, "pool:default")).ok, true);
    socket.close();
    await db.query(`DELETE FROM "RoomEvent" WHERE "tenantId" = $1 AND "namespace" = 'tasks'`, [tenant]);
    await db.query(`DELETE FROM "RoomSequence" WHERE "tenantId" = $1 AND "namespace" = 'tasks'`, [tenant]);
    const afterTasks = await seedRoom(tenant, "tasks", "tasks", 200, 10_000);
    const afterPool = await seedRoom(tenant, "tasks", "pool:default", 200, 10_000);
    const again = await connect(server.url, "tasks", { token });
    const seen = new EventRecorder(again);
    const acks = await Promise.all([subscribeSlowly(again, "tasks", afterTasks), subscribeSlowly(again, "pool:default", afterPool)]);
    assert.deepEqual(
      acks.map((a) => [a.ok, a.replayed]),
      [
        [true, 200],
        [true, 200],
      ],
    );
    const rooms = seen.events.map((e) => e.room);
    assert.equal(rooms.length, 400);
    // No interleaving: all of one room's replay, then all of the other's.
    assert.equal(new Set(rooms.slice(0, 200)).size, 1, "the first 200 events are of one room");
    assert.equal(new Set(rooms.slice(200)).size, 1, "the last 200 events are of the other room");
    assert.notEqual(rooms[0], rooms[200]);
  });
});
