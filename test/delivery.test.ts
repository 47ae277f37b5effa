import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import type { Socket } from "socket.io-client";
import { decodeCursor } from "../src/protocol/cursor.js";
import type { Envelope } from "../src/protocol/events.js";
import { connect, EventRecorder, sleep, subscribe } from "./support/clients.js";
import { freshTenant } from "./support/env.js";
import { api } from "./support/http.js";
import { scrape, total } from "./support/metrics.js";
import { privateRedisUnavailable, startPrivateRedis, type PrivateRedis } from "./support/private-services.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { mintToken } from "./support/tokens.js";
import { PYTHON, pythonSocketIoAvailable } from "./support/python.js";
import { skipBecause } from "./support/skip.js";

const END = "test.end";

/** A python-socketio subscriber (no helper of ours): its events, in arrival order, until the END event. */
function pythonSubscriber(
  url: string,
  token: string,
  room: string,
  after = "",
): { events: Envelope[]; acked: Promise<string>; done: Promise<void> } {
  const child = spawn(PYTHON, ["test/support/python-client.py", url, "/tasks", token, room, "100000", "90", after, END], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const events: Envelope[] = [];
  let buffer = "";
  let stderr = "";
  let onAck: (cursor: string) => void = () => undefined;
  let onFail: (error: Error) => void = () => undefined;
  const acked = new Promise<string>((resolve, reject) => {
    onAck = resolve;
    onFail = reject;
  });
  child.stdout.on("data", (chunk: Buffer) => {
    buffer += chunk.toString();
    let newline: number;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = JSON.parse(buffer.slice(0, newline)) as {
        ack?: { ok: boolean; cursor: string };
        event?: string;
        payload?: Envelope;
        connect_error?: unknown;
      };
      buffer = buffer.slice(newline + 1);
      if (line.ack?.ok) onAck(line.ack.cursor);
      else if (line.ack) onFail(new Error(`python subscribe refused: ${JSON.stringify(line.ack)}`));
      if (line.connect_error) onFail(new Error(`python connect_error: ${JSON.stringify(line.connect_error)}`));
      if (line.payload) events.push(line.payload);
    }
  });
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<void>((resolve, reject) =>
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`python client exited ${code}: ${stderr}`)))),
  );
  return { events, acked, done };
}

const seqOf = (e: Envelope): number => decodeCursor(e.cursor)!.seq;

/** Exactly the events after `from` up to the END event: each once (by id and by cursor), consecutive, in order. */
function assertExactlyOnceInOrder(events: readonly Envelope[], from: string, expected: number, who: string): void {
  const start = decodeCursor(from)!.seq;
  assert.equal(events.length, expected, `${who}: ${events.length} events, expected ${expected}`);
  events.forEach((event, i) => {
    assert.equal(
      seqOf(event),
      start + 1 + i,
      `${who}: event ${i} has cursor ${event.cursor}; around it: ${events
        .slice(Math.max(0, i - 3), i + 3)
        .map(seqOf)
        .join(",")}`,
    );
  });
  assert.equal(new Set(events.map((e) => e.id)).size, events.length, `${who}: an id twice`);
  assert.equal(events[events.length - 1]!.type, END, `${who}: the END event last`);
}

/** Publishes `count` events into the tenant's `tasks` room through a node, `concurrency` requests at a time. */
async function publishMany(url: string, token: string, count: number, concurrency: number, tag: string, pauseMs = 0): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        const response = await api(url, "POST", "/api/v1/events", {
          token,
          body: { namespace: "tasks", room: "tasks", type: "test.tick", data: { tag, i } },
        });
        assert.equal(response.status, 202, JSON.stringify(response.body));
        if (pauseMs) await sleep(pauseMs);
      }
    }),
  );
}

async function publishEnd(url: string, token: string): Promise<void> {
  const response = await api(url, "POST", "/api/v1/events", { token, body: { namespace: "tasks", room: "tasks", type: END, data: {} } });
  assert.equal(response.status, 202);
}

/** Records a raw socket.io-client socket's envelopes until the END event. */
function recordUntilEnd(socket: Socket): { recorder: EventRecorder; ended: () => Promise<Envelope[]> } {
  const recorder = new EventRecorder(socket);
  return { recorder, ended: () => recorder.until((events) => events.some((e) => e.type === END), 60_000, "the END event") };
}

describe("delivery: every Socket.IO client gets each event of its rooms once, in cursor order", function () {
  this.timeout(180_000);
  let redis: PrivateRedis;
  let nodes: ServerProcess[] = [];
  let python = false;

  before(async function () {
    const unavailable = privateRedisUnavailable();
    if (unavailable) {
      skipBecause(this, unavailable);
    }
    python = pythonSocketIoAvailable();
    if (!python)
      console.log(
        "      (python-socketio missing: apt-get install -y python3-socketio python3-websocket; the raw socket.io-client subscribers still run)",
      );
    // A private Redis: the subscriber node's pub/sub connection is killed in it.
    redis = await startPrivateRedis();
    nodes = await Promise.all(["dl-a", "dl-b", "dl-c"].map((id) => startServer({ NODE_ID: id, REDIS_URL: redis.url })));
  });
  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    await redis?.destroy();
  });

  /** Kills node C's Redis pub/sub connection (the adapter's subscriber); ioredis reconnects and resubscribes. */
  function killSubscriberConnection(nodeId: string): number {
    const list = execFileSync("redis-cli", ["-p", String(redis.port), "CLIENT", "LIST"], { encoding: "utf8" });
    const ids = list
      .split("\n")
      .filter((line) => line.includes(` name=${nodeId}:adapter-sub `))
      .map((line) => /\bid=(\d+)/.exec(line)![1]!);
    for (const id of ids) execFileSync("redis-cli", ["-p", String(redis.port), "CLIENT", "KILL", "ID", id]);
    return ids.length;
  }

  /** A raw socket.io-client subscriber and (when installed) a python-socketio one, both on `url`, from the room's head. */
  async function twoSubscribers(url: string, token: string) {
    const socket = await connect(url, "tasks", { token, transports: ["websocket"] });
    const raw = recordUntilEnd(socket);
    const ack = await subscribe(socket, "tasks");
    const py = python ? pythonSubscriber(url, token, "tasks") : undefined;
    const pyCursor = await py?.acked;
    return {
      raw,
      /** Both got exactly `expected` events after their subscribe's cursor, the END event last. */
      async assertExactlyOnce(expected: number): Promise<Envelope[]> {
        const events = await raw.ended();
        assertExactlyOnceInOrder(events, ack.cursor!, expected, "socket.io-client");
        if (py) {
          await py.done;
          assertExactlyOnceInOrder(py.events, pyCursor!, expected, "python-socketio");
        }
        socket.close();
        return events;
      },
    };
  }

  it("events published concurrently through two nodes reach raw subscribers on a third node once each, in cursor order", async () => {
    const [a, b, c] = nodes as [ServerProcess, ServerProcess, ServerProcess];
    const token = mintToken({ tenant: freshTenant() });
    const subscribers = await twoSubscribers(c.url, token);
    await Promise.all([publishMany(a.url, token, 200, 6, "a"), publishMany(b.url, token, 200, 6, "b")]);
    await publishEnd(a.url, token);
    await subscribers.assertExactlyOnce(401);
  });

  it("the same while the subscriber's node has its Redis pub/sub connection killed mid-stream: the node fills what it missed from the log", async () => {
    const [a, b, c] = nodes as [ServerProcess, ServerProcess, ServerProcess];
    const token = mintToken({ tenant: freshTenant() });
    const subscribers = await twoSubscribers(c.url, token);
    const raw = subscribers.raw;
    const filledBefore = total([await scrape(c.url)], "switchyard_delivery_gap_events_total", { namespace: "tasks" });

    const publishing = Promise.all([publishMany(a.url, token, 300, 4, "a", 2), publishMany(b.url, token, 300, 4, "b", 2)]);
    let kills = 0;
    for (let i = 0; i < 4; i++) {
      await sleep(250);
      kills += killSubscriberConnection(c.nodeId);
    }
    await publishing;
    assert.ok(kills >= 4, `killed node C's pub/sub connection ${kills} times`);

    // A room that goes quiet right after the node lost its subscription: nothing later reveals the gap, the
    // node's own look at the room's head (after the reconnect, and every ROOM_CHECK_INTERVAL_MS) does.
    killSubscriberConnection(c.nodeId);
    await publishMany(a.url, token, 5, 5, "quiet");
    await raw.recorder.until(
      (events) => events.filter((e) => (e.data as { tag?: string }).tag === "quiet").length === 5,
      30_000,
      "the 5 events published while the subscription was down",
    );

    await publishEnd(b.url, token);
    await subscribers.assertExactlyOnce(606);
    const filled = total([await scrape(c.url)], "switchyard_delivery_gap_events_total", { namespace: "tasks" }) - filledBefore;
    console.log(`      node C read ${filled} events from the log that its pub/sub connection missed (${kills + 1} kills)`);
    assert.ok(filled > 0, "the kills made node C miss broadcasts, and it read them from the log");
  });

  it("across the replay/live seam: subscribes with `after` while two nodes publish get each event after the cursor once, in order", async () => {
    const [a, b, c] = nodes as [ServerProcess, ServerProcess, ServerProcess];
    const token = mintToken({ tenant: freshTenant() });
    const first = await connect(c.url, "tasks", { token, transports: ["websocket"] });
    const start = (await subscribe(first, "tasks")).cursor!;
    first.close();
    await publishMany(a.url, token, 30, 3, "before");

    const publishing = Promise.all([publishMany(a.url, token, 200, 3, "a", 3), publishMany(b.url, token, 200, 3, "b", 3)]);
    const subscribers: Array<{ socket: Socket; ended: () => Promise<Envelope[]>; replayed: number }> = [];
    const pythons: Array<ReturnType<typeof pythonSubscriber>> = [];
    for (let i = 0; i < 6; i++) {
      await sleep(60);
      const socket = await connect(c.url, "tasks", { token, transports: ["websocket"] });
      const { ended } = recordUntilEnd(socket);
      const ack = await subscribe(socket, "tasks", start);
      assert.equal(ack.ok, true);
      subscribers.push({ socket, ended, replayed: ack.replayed ?? 0 });
      if (python && i % 2 === 0) pythons.push(pythonSubscriber(c.url, token, "tasks", start));
    }
    await publishing;
    await publishEnd(b.url, token);

    for (const [i, s] of subscribers.entries()) {
      const events = await s.ended();
      assertExactlyOnceInOrder(events, start, 431, `subscriber ${i} (replayed ${s.replayed})`);
      s.socket.close();
    }
    assert.ok(
      subscribers.some((s) => s.replayed > 30),
      "some subscribed while the stream was running",
    );
    for (const [i, py] of pythons.entries()) {
      await py.done;
      assertExactlyOnceInOrder(py.events, start, 431, `python subscriber ${i}`);
    }
  });
});
