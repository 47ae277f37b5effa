import assert from "node:assert/strict";
import fc from "fast-check";
import { io, type Socket } from "socket.io-client";
import { ERROR_CODES } from "../src/protocol/errors.js";
import { EventRecorder, subscribe } from "./support/clients.js";
import { freshTenant } from "./support/env.js";
import {
  bodyOfSize,
  deepMarker,
  frame,
  FUZZ_MAX_PAYLOAD_BYTES,
  nastyJson,
  restBody,
  restCase,
  sometimes,
  wireFrames,
  type Frame,
  type RestCase,
} from "./support/fuzz-inputs.js";
import { api } from "./support/http.js";
import { RawConnection } from "./support/raw-socket.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { mintToken } from "./support/tokens.js";

// Property-based fuzzing against real server processes (see docs/reliability.md, "Fuzzing"). Replay a failure
// with the seed it printed: FUZZ_SEED=<seed> FUZZ_RUNS=<runs> npx mocha test/fuzz.test.ts
const seed = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const numRuns = Number(process.env.FUZZ_RUNS ?? 1000);
/** How long a connection may take to answer or close; only a failing run waits this long. */
const ANSWER_TIMEOUT_MS = 15_000;
const CODES: ReadonlySet<string> = new Set(ERROR_CODES);

/** An error body of the contract: `{ error: { code, message } }` with a known code. */
function assertCodedError(body: unknown, what: string): void {
  const error = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  assert.ok(
    error && typeof error.code === "string" && CODES.has(error.code),
    `${what}: no coded error in ${JSON.stringify(body)?.slice(0, 300)}`,
  );
  assert.equal(typeof error.message, "string", `${what}: no message`);
}

/** Runs a property with the file's seed and run count; a failure says how to replay it. */
async function check<T>(name: string, arbitrary: fc.Arbitrary<T>, run: (value: T) => Promise<void>, examples: T[]): Promise<void> {
  console.log(`      ${name}: FUZZ_SEED=${seed} FUZZ_RUNS=${numRuns}`);
  try {
    await fc.assert(fc.asyncProperty(arbitrary, run), { seed, numRuns, examples: examples.map((e) => [e] as [T]) });
  } catch (error) {
    (error as Error).message += `\nreplay: FUZZ_SEED=${seed} FUZZ_RUNS=${numRuns} npx mocha test/fuzz.test.ts`;
    throw error;
  }
}

describe("fuzzing: hostile REST bodies and raw Engine.IO/Socket.IO frames", function () {
  this.timeout(900_000);
  let fuzzed: ServerProcess;
  let other: ServerProcess;
  let token: string;
  let workerToken: string;
  let controlToken: string;
  const control: Array<{ socket: Socket; seen: EventRecorder; disconnects: string[] }> = [];
  let pings = 0;
  const tried = { rest: 0, frames: 0, connections: 0, statuses: new Map<number, number>(), outcomes: new Map<string, number>() };
  const count = <K>(map: Map<K, number>, key: K): void => void map.set(key, (map.get(key) ?? 0) + 1);

  before(async () => {
    const env = { MAX_PAYLOAD_BYTES: String(FUZZ_MAX_PAYLOAD_BYTES), LOG_LEVEL: "info" };
    [fuzzed, other] = await Promise.all([startServer({ ...env, NODE_ID: "fuzz-a" }), startServer({ ...env, NODE_ID: "fuzz-b" })]);
    const tenant = freshTenant("fuzz");
    token = mintToken({ tenant });
    // Worker sockets get a pool of their own, which no worker serves: nothing they claim ever runs.
    const pool = await api(fuzzed.url, "POST", "/api/v1/pools", { token, body: { name: "fuzz-workers" } });
    assert.equal(pool.status, 201, JSON.stringify(pool.body));
    workerToken = mintToken({ tenant, permissions: ["pools:work"], poolId: pool.body.pool.id as string, sub: "fuzz-worker" });
    // Bystanders: another tenant's clients on both nodes, subscribed before the fuzzing starts.
    controlToken = mintToken({ tenant: freshTenant("bystander") });
    for (const node of [fuzzed, other]) {
      // Not through the clients helper: its sockets are closed after every test, and these stay for the whole file.
      const socket = io(`${node.url}/tasks`, {
        auth: { token: controlToken },
        transports: ["websocket"],
        reconnection: false,
        forceNew: true,
      });
      await new Promise<void>((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("connect_error", reject);
      });
      const entry = { socket, seen: new EventRecorder(socket), disconnects: [] as string[] };
      socket.on("disconnect", (reason) => entry.disconnects.push(reason));
      assert.equal((await subscribe(socket, "tasks")).ok, true);
      control.push(entry);
    }
  });

  after(async () => {
    const list = <K>(map: Map<K, number>): string =>
      [...map]
        .sort()
        .map(([k, n]) => `${String(k)} ×${n}`)
        .join(", ");
    console.log(
      `      inputs tried: ${tried.rest} REST requests (${list(tried.statuses)}), ${tried.frames} frames on ${tried.connections} raw connections (${list(tried.outcomes)})`,
    );
    for (const { socket } of control) socket.close();
    // The schedules the fuzzing stored (none fires within the run: their periods are an hour and more).
    for (let page = 0; fuzzed && page < 50; page++) {
      const stored = (await api(fuzzed.url, "GET", "/api/v1/schedules?limit=200", { token })).body.items as
        Array<{ id: string }> | undefined;
      if (!stored?.length) break;
      for (const schedule of stored) await api(fuzzed.url, "DELETE", `/api/v1/schedules/${schedule.id}`, { token });
    }
    await Promise.all([fuzzed?.stop(), other?.stop()]);
  });

  /** The fuzzed node is up, and a bystander on each node gets an event published through the fuzzed node afterwards. */
  async function othersUnaffected(): Promise<void> {
    assert.equal(fuzzed.process.exitCode, null, "the fuzzed node exited");
    assert.equal((await api(fuzzed.url, "GET", "/health")).status, 200);
    const n = ++pings;
    const published = await api(fuzzed.url, "POST", "/api/v1/events", {
      token: controlToken,
      body: { namespace: "tasks", room: "tasks", type: "control.ping", data: { n } },
    });
    assert.equal(published.status, 202, JSON.stringify(published.body));
    for (const [i, { seen }] of control.entries()) {
      await seen.until(
        (events) => events.some((e) => e.type === "control.ping" && (e.data as { n: number }).n === n),
        ANSWER_TIMEOUT_MS,
        `bystander on node ${i === 0 ? "A (fuzzed)" : "B"}: control.ping ${n}`,
      );
    }
  }

  it("REST: every POST/PATCH route answers arbitrary bodies, content types and path ids with a coded 4xx or a 2xx, never a 5xx", async () => {
    const send = async (c: RestCase): Promise<void> => {
      tried.rest++;
      const headers: Record<string, string> = { authorization: `Bearer ${token}`, ...c.headers };
      const response = await fetch(`${fuzzed.url}${c.path}`, { method: c.method, headers, body: restBody(c.body) });
      const text = await response.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // Checked below: every answer must be JSON.
      }
      const what = `${c.method} ${c.path.slice(0, 80)} → ${response.status}`;
      count(tried.statuses, response.status);
      assert.ok(response.status < 500, `${what}: ${text.slice(0, 300)}`);
      if (response.status >= 400) assertCodedError(body, what);
      else assert.equal(typeof body, "object", `${what}: ${text.slice(0, 300)}`);
      await othersUnaffected();
    };
    const json = { "content-type": "application/json" };
    await check("REST", restCase, send, [
      { method: "POST", path: "/api/v1/tasks", headers: json, body: { json: { type: "echo", payload: deepMarker(100_000, "array") } } },
      {
        method: "POST",
        path: "/api/v1/events",
        headers: json,
        body: { json: { namespace: "tasks", room: "tasks", type: "fuzz.x", data: deepMarker(100_000, "object") } },
      },
      { method: "POST", path: "/api/v1/tasks", headers: json, body: bodyOfSize(FUZZ_MAX_PAYLOAD_BYTES) },
      { method: "POST", path: "/api/v1/tasks", headers: json, body: bodyOfSize(FUZZ_MAX_PAYLOAD_BYTES + 1) },
      {
        method: "POST",
        path: "/api/v1/workflows",
        headers: json,
        body: { json: JSON.parse('{"name":"w","steps":[{"key":"a","type":"echo","payload":{"__proto__":{"x":1}}}]}') },
      },
      { method: "PATCH", path: "/api/v1/pools/%00", headers: json, body: { json: { name: "a\u0000" } } },
    ]);
  });

  it("Socket.IO: raw frames (bad packet types, namespaces, attachment counts, deep nesting, __proto__, NUL, 10 MB) get a coded ack, or the connection is closed", async () => {
    const socketCase = fc.record({
      nsp: fc.constantFrom("/tasks", "/pools", "/workflows"),
      // On /pools, as a pool worker, with a good hello or any other.
      worker: sometimes(
        fc.oneof({ weight: 3, arbitrary: fc.constant<unknown>({ id: "fuzz-worker", version: "1" }) }, { weight: 1, arbitrary: nastyJson }),
        1,
        3,
      ),
      frames: fc.array(frame, { minLength: 1, maxLength: 4 }),
    });
    type SocketCase = { nsp: string; worker: unknown; frames: Frame[] };
    const run = async ({ nsp: chosen, worker, frames }: SocketCase): Promise<void> => {
      tried.connections++;
      const asWorker = worker !== null;
      const nsp = asWorker ? "/pools" : chosen;
      const conn = await RawConnection.open(fuzzed.url);
      const connectFrame = `40${nsp},${JSON.stringify(asWorker ? { token: workerToken, worker } : { token })}`;
      conn.send(connectFrame);
      assert.equal(
        await conn.waitFor((f) => typeof f === "string" && f.startsWith(`40${nsp},{`), ANSWER_TIMEOUT_MS),
        "frame",
        `not admitted to ${nsp}: ${String(conn.frames[0])}`,
      );

      // Every well-formed event sent with an ack id must be answered, unless the connection is closed; so must the
      // probe. Events after the client's own DISCONNECT are not answered (Socket.IO drops them): the probe then
      // connects again first.
      const expected = new Set<number>();
      // A DISCONNECT packet for the namespace, whichever generator made it (its id, if any, is ignored).
      const disconnect = new RegExp(`^41${nsp},\\d*$`);
      let connected = true;
      for (const f of frames) {
        tried.frames++;
        if (f.kind === "event" && f.ack !== null && connected) expected.add(f.ack);
        for (const wire of wireFrames(f, nsp)) {
          if (typeof wire.data === "string" && disconnect.test(wire.data)) connected = false;
          conn.send(wire.data, { asText: wire.asText });
        }
      }
      const probe = 1_000_001;
      expected.add(probe);
      if (!connected) conn.send(connectFrame);
      conn.send(`42${nsp},${probe}["subscribe",{"room":"${nsp.slice(1)}"}]`);

      const acked = new Map<number, unknown>();
      const ackPrefix = `43${nsp},`;
      const isAck = (f: string | Buffer): boolean => {
        if (typeof f !== "string" || !f.startsWith(ackPrefix)) return false;
        const body = f.slice(ackPrefix.length);
        const bracket = body.indexOf("[");
        acked.set(Number(body.slice(0, bracket)), (JSON.parse(body.slice(bracket)) as unknown[])[0]);
        return [...expected].every((id) => acked.has(id));
      };
      const outcome = await conn.waitFor(isAck, ANSWER_TIMEOUT_MS);
      count(tried.outcomes, outcome === "frame" ? "answered" : outcome);
      assert.notEqual(
        outcome,
        "timeout",
        `neither answered nor closed: waiting for acks ${[...expected].filter((id) => !acked.has(id)).join(", ")}; received ${conn.frames.map((f) => String(f).slice(0, 80)).join(" | ")}`,
      );
      for (const [id, ack] of acked) {
        const answer = ack as { ok?: unknown };
        assert.equal(typeof answer?.ok, "boolean", `ack ${id}: ${JSON.stringify(ack)}`);
        if (answer.ok === false) assertCodedError(ack, `ack ${id}`);
      }
      for (const f of conn.frames) {
        if (typeof f !== "string") continue;
        if (f.startsWith(`42${nsp},["worker.rejected",`))
          assertCodedError({ error: (JSON.parse(f.slice(nsp.length + 3)) as unknown[])[1] }, "worker.rejected");
        if (f.startsWith("44")) {
          // connect_error: ours carry data.code; Socket.IO's own ("Invalid namespace", for names it does not serve) only a message.
          const refusedNsp = f.startsWith("44/") ? f.slice(2, f.indexOf(",")) : "/";
          const refusal = JSON.parse(f.slice(f.startsWith("44/") ? f.indexOf(",") + 1 : 2)) as { message?: unknown; data?: unknown };
          assert.equal(typeof refusal.message, "string", f);
          if (["/", "/tasks", "/pools", "/workflows"].includes(refusedNsp))
            assertCodedError({ error: refusal.data }, `connect_error ${f.slice(0, 200)}`);
        }
      }
      conn.terminate();
      await othersUnaffected();
    };
    await check<SocketCase>("raw frames", socketCase, run, [
      // An EVENT packet without a name took the node down (EventEmitter#listeners(undefined) throws).
      {
        nsp: "/tasks",
        worker: null,
        frames: [
          { kind: "text", text: "42/tasks," },
          { kind: "text", text: "42/tasks,9" },
        ],
      },
      { nsp: "/tasks", worker: null, frames: [{ kind: "huge", bytes: 10 * 1024 * 1024 }] },
      {
        nsp: "/tasks",
        worker: null,
        frames: [{ kind: "event", event: "subscribe", args: [{ room: deepMarker(100_000, "array") }], ack: 1 }],
      },
      {
        nsp: "/pools",
        worker: { id: "fuzz-worker", version: "v\u0000" },
        frames: [{ kind: "event", event: "task.report", args: [{ kind: "completed", result: { "\ud800": 1 } }], ack: 2 }],
      },
      {
        nsp: "/tasks",
        worker: null,
        frames: [{ kind: "binary-event", count: "999999999999", placeholders: [{ _placeholder: true, num: 0 }], sent: 1, ack: 3 }],
      },
    ]);
  });

  it("afterwards: the nodes logged no error, and the bystanders were never disconnected", () => {
    for (const node of [fuzzed, other]) {
      const errors = node
        .logs()
        .split("\n")
        .filter((line) => /"level":(50|60)/.test(line) || /INTERNAL|Uncaught|Missing error handler|UnhandledPromiseRejection/.test(line));
      assert.deepEqual(
        errors.map((line) => line.slice(0, 500)),
        [],
        `${node.nodeId} logged errors`,
      );
    }
    for (const { disconnects } of control) assert.deepEqual(disconnects, []);
  });
});
