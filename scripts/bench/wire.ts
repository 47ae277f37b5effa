// Bytes on the wire and CPU per delivered event for dashboards watching `tasks` while echo tasks run: a node
// without WS_COMPRESSION, a node with it, and the bare Socket.IO peer sending the same events.
//
//   npx tsx scripts/bench/wire.ts [--tasks 300] [--dashboards 20] [--rows 20]
//
// A third node (the "runner") takes the task submissions and runs them on its embedded worker, so the two
// measured nodes do nothing but deliver. Each target gets `--dashboards` socket.io-client connections (WebSocket,
// which offers permessage-deflate as browsers do) through a TCP relay that counts the bytes the target sends. The
// tasks carry a payload of `--rows` small rows (a typical, repetitive task view). The bare peer then emits the
// events one plain dashboard received, with the same data, to its own dashboards. Per target: bytes and node CPU
// per delivered event, bytes against the plain node's, and the memory a dashboard holds on each node afterwards.

import { parseArgs } from "node:util";
import { io, type Socket } from "socket.io-client";
import { countingRelay } from "../../test/support/counting-relay.js";
import { benchRun, LIMITS_OUT_OF_REACH } from "./bench-run.js";
import { HttpClient, mintToken, round, sleep } from "./lib.js";
import { cpuSeconds, sampleMemory, type ServerHandle } from "./procs.js";

const { values } = parseArgs({
  options: {
    tasks: { type: "string", default: "300" },
    dashboards: { type: "string", default: "20" },
    rows: { type: "string", default: "20" },
  },
});
const TASKS = Number(values.tasks);
const DASHBOARDS = Number(values.dashboards);
const ROWS = Number(values.rows);
const EVENTS_PER_TASK = 5;
const TENANT = "wire-tenant";

interface Received {
  type: string;
  room: string;
  data: unknown;
}

/** `count` dashboards on /tasks through `url`, each subscribed to `tasks`; every received event is recorded. */
async function dashboards(url: string, token: string, count: number): Promise<{ sockets: Socket[]; received: Received[][] }> {
  const sockets: Socket[] = [];
  const received: Received[][] = [];
  for (let i = 0; i < count; i++) {
    const socket = io(`${url}/tasks`, { auth: { token }, transports: ["websocket"], reconnection: false, forceNew: true });
    const mine: Received[] = [];
    socket.onAny((type: string, payload: { room?: string; data?: unknown; cursor?: string } | undefined) => {
      if (payload?.cursor !== undefined) mine.push({ type, room: payload.room ?? "", data: payload.data });
    });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", reject);
    });
    const ack = (await socket.timeout(10_000).emitWithAck("subscribe", { room: "tasks" })) as { ok: boolean };
    if (!ack.ok) throw new Error(`subscribe refused by ${url}`);
    sockets.push(socket);
    received.push(mine);
  }
  return { sockets, received };
}

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

interface Measured {
  target: string;
  deliveries: number;
  bytes: number;
  bytesPerEvent: number;
  cpuMicrosPerDelivery: number;
  /** RSS the node holds per dashboard once the events were delivered (after a full GC, minus before they connected). */
  rssKiBPerDashboard?: number;
}

/** What delivering did to the target: its relay's bytes and its process's CPU, between before() and after(). */
function meter(target: string, server: ServerHandle, relay: { received(): number }) {
  let bytes0 = 0;
  let cpu0 = 0;
  return {
    before: () => {
      bytes0 = relay.received();
      cpu0 = cpuSeconds(server.pid);
    },
    after: (deliveries: number): Measured => {
      const bytes = relay.received() - bytes0;
      return {
        target,
        deliveries,
        bytes,
        bytesPerEvent: round(bytes / deliveries, 1),
        cpuMicrosPerDelivery: round(((cpuSeconds(server.pid) - cpu0) * 1e6) / deliveries, 1),
      };
    },
  };
}

await benchRun({ tag: "wire" }, async (run) => {
  const runner = await run.startSwitchyard({ ...LIMITS_OUT_OF_REACH, EMBEDDED_WORKER: "true" }, "runner");
  const plain = await run.startSwitchyard({ ...LIMITS_OUT_OF_REACH, EMBEDDED_WORKER: "false", WS_COMPRESSION: "false" }, "plain");
  const deflate = await run.startSwitchyard({ ...LIMITS_OUT_OF_REACH, EMBEDDED_WORKER: "false", WS_COMPRESSION: "true" }, "deflate");
  const bare = await run.startBaseline("a");
  const relays = await Promise.all([plain, deflate, bare].map((server) => countingRelay(server.port)));
  const [toPlain, toDeflate, toBare] = relays as [(typeof relays)[number], (typeof relays)[number], (typeof relays)[number]];
  const token = mintToken(run.secret, TENANT, "wire-bench", ["admin"]);
  const sockets: Socket[] = [];
  try {
    // Memory before any dashboard: what a dashboard costs a node once it has been sent events (a compressing
    // connection keeps its zlib context from its first compressed message on).
    const memoryBefore = await Promise.all([plain, deflate].map((server) => sampleMemory(server)));
    const onPlain = await dashboards(toPlain.url, token, DASHBOARDS);
    const onDeflate = await dashboards(toDeflate.url, token, DASHBOARDS);
    const onBare = await dashboards(toBare.url, token, DASHBOARDS);
    sockets.push(...onPlain.sockets, ...onDeflate.sockets, ...onBare.sockets);
    const meters = [meter("switchyard", plain, toPlain), meter("switchyard + WS_COMPRESSION", deflate, toDeflate)];
    for (const m of meters) m.before();

    const expected = TASKS * EVENTS_PER_TASK;
    const http = new HttpClient(runner.url, 16);
    const auth = { authorization: `Bearer ${token}` };
    const payload = { rows: Array.from({ length: ROWS }, (_, i) => ({ i, host: `worker-${i % 4}`, status: "ok", durationMs: 10 + i })) };
    run.log(`${TASKS} echo tasks, ${DASHBOARDS} dashboards per target`);
    await Promise.all(
      Array.from({ length: TASKS }, async () => {
        const response = await http.request("POST", "/api/v1/tasks", { type: "echo", payload }, auth);
        if (response.status !== 202) throw new Error(`submit answered ${response.status}: ${String(response.body)}`);
      }),
    );
    const all = [...onPlain.received, ...onDeflate.received];
    await until(() => all.every((events) => events.length >= expected), 120_000, `${expected} events on every dashboard`);
    const results = meters.map((m) => m.after(expected * DASHBOARDS));
    const memoryAfter = await Promise.all([plain, deflate].map((server) => sampleMemory(server)));
    results.forEach((result, i) => {
      result.rssKiBPerDashboard = round((memoryAfter[i]!.rssBytes - memoryBefore[i]!.rssBytes) / DASHBOARDS / 1024, 1);
    });

    // The bare peer: the same events (type, room, data) one plain dashboard received, emitted once each.
    const bareMeter = meter("bare Socket.IO + redis-adapter", bare, toBare);
    bareMeter.before();
    const events = onPlain.received[0]!.slice(0, expected).map(({ type, room, data }) => ({ room, type, data }));
    for (let i = 0; i < events.length; i += 500) {
      const response = await bare.http.request("POST", "/publish-batch", {
        namespace: "tasks",
        tenant: TENANT,
        events: events.slice(i, i + 500),
      });
      if (response.status !== 202) throw new Error(`bare publish answered ${response.status}`);
    }
    await until(() => onBare.received.every((received) => received.length >= expected), 60_000, "the bare peer's events");
    results.push(bareMeter.after(expected * DASHBOARDS));

    const plainBytes = results[0]!.bytesPerEvent;
    const rows = results.map((r) => ({ ...r, bytesVsSwitchyard: round(r.bytesPerEvent / plainBytes, 3) }));
    process.stdout.write(`${JSON.stringify({ tasks: TASKS, dashboards: DASHBOARDS, rows: ROWS, results: rows }, null, 2)}\n`);
  } finally {
    for (const socket of sockets) socket.close();
    await Promise.all(relays.map((relay) => relay.close()));
  }
});
