// `npm run bench [-- --quick] [-- --scenarios idle,fanout,latency,publish,sharding,tasks,replay]`
//
// Starts Switchyard nodes (`node --import tsx src/main.ts`), a bare Socket.IO + @socket.io/redis-adapter
// baseline (scripts/bench/baseline-server.ts) with the same transport settings, a bare BullMQ worker for the
// tasks scenario (scripts/bench/bullmq-worker.ts), and separate load-generator
// processes (scripts/bench/load-client.ts: raw Engine.IO/WebSocket clients that authenticate and subscribe
// exactly like dashboards), measures both in the same run, prints one table, and writes one JSON file per
// scenario to bench/results/<scenario>-<quick|full>.json. Everything it creates (processes, the database
// switchyard_bench_<rand>, Redis keys under bench-<rand>) is removed at the end. Progress goes to stderr,
// the table to stdout. No thresholds are asserted: exit 0 when every scenario ran.

import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Redis } from "ioredis";
import { dropDatabase } from "../../src/db/setup.js";
import { startPrivateRedisCluster } from "../../test/support/private-services.js";
import { formatTable, human, machineInfo, mintToken, now, sleep, summarize, type Summary } from "./lib.js";
import {
  CpuMeter,
  deleteRedisKeys,
  killAllNow,
  LoadClient,
  repoRoot,
  runCommand,
  sampleMemory,
  startProfile,
  summarizeProfile,
  startBaseline,
  startBullmqWorker,
  startSwitchyard,
  stopAll,
  type MemorySample,
  type ServerHandle,
} from "./procs.js";
import type { PublisherSpec } from "./publishers.js";

// ---------------------------------------------------------------------------------------------- options

const argv = process.argv.slice(2);
const QUICK = argv.includes("--quick");
const SIZE = QUICK ? "quick" : "full";
const ALL_SCENARIOS = ["idle", "fanout", "latency", "publish", "sharding", "tasks", "replay"] as const;
type Scenario = (typeof ALL_SCENARIOS)[number];
const scenariosArg = argv.find((a) => a.startsWith("--scenarios="))?.slice("--scenarios=".length) ?? argv[argv.indexOf("--scenarios") + 1];
const SCENARIOS: Scenario[] =
  argv.some((a) => a.startsWith("--scenarios")) && scenariosArg
    ? (scenariosArg.split(",").filter((s) => (ALL_SCENARIOS as readonly string[]).includes(s)) as Scenario[])
    : [...ALL_SCENARIOS];
const PROFILE = argv.includes("--profile");
if (argv.includes("--help")) {
  process.stdout.write(
    "usage: npm run bench -- [--quick] [--scenarios idle,fanout,latency,publish,sharding,tasks,replay] [--profile]\n" +
      "  --profile  CPU-profile the server under test during fan-out, latency, publish, tasks and replay seeding\n" +
      "             (V8 profiler through the inspector); .cpuprofile files go to bench/results/tmp/profiles-<run>/\n",
  );
  process.exit(0);
}

const SIZES = {
  quick: {
    loadClients: 2,
    connectConcurrency: 100,
    idleSockets: [1000],
    fanoutOneRoom: 2000,
    fanoutRooms: 100,
    fanoutPerRoom: 10,
    fanoutMs: 3000,
    publishConcurrency: 32,
    loopBatch: 50,
    latencyRooms: 100,
    latencyPerRoom: 2,
    latencyRates: [100],
    latencyMs: 4000,
    tasksConcurrency: [1, 16, 64],
    tasksWarmupMs: 1000,
    tasksMs: 3000,
    bareWorkerConcurrency: 32,
    publishRooms: 100,
    publishPerRoom: 10,
    publishBatch: 50,
    publishConcurrencyBatches: 8,
    publishMaxBacklog: 2500,
    publishCapacityMs: 3000,
    publishMs: 3000,
    publishLatencyRate: 1000,
    publishLatencyMs: 4000,
    replayEvents: 1000,
    replayClients: 10,
  },
  full: {
    loadClients: 4,
    connectConcurrency: 100,
    idleSockets: [1000, 5000, 10_000],
    fanoutOneRoom: 10_000,
    fanoutRooms: 1000,
    fanoutPerRoom: 10,
    fanoutMs: 10_000,
    publishConcurrency: 32,
    loopBatch: 50,
    latencyRooms: 1000,
    latencyPerRoom: 2,
    latencyRates: [100, 1000],
    latencyMs: 10_000,
    tasksConcurrency: [1, 16, 64],
    tasksWarmupMs: 2000,
    tasksMs: 15_000,
    bareWorkerConcurrency: 32,
    publishRooms: 100,
    publishPerRoom: 10,
    publishBatch: 50,
    publishConcurrencyBatches: 8,
    publishMaxBacklog: 2500,
    publishCapacityMs: 10_000,
    publishMs: 10_000,
    publishLatencyRate: 1000,
    publishLatencyMs: 10_000,
    replayEvents: 10_000,
    replayClients: 50,
  },
}[SIZE];

const RUN = randomBytes(4).toString("hex");
const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379";
const REDIS_PREFIX = `bench-${RUN}`;
const ADAPTER_KEY = `bench-${RUN}-baseline:socket.io`;
const JWT_SECRET = `bench-secret-${RUN}-${randomBytes(16).toString("hex")}`;
const baseDbUrl = new URL(process.env.DATABASE_URL || "postgresql://postgres@127.0.0.1:5432/switchyard");
baseDbUrl.pathname = `/switchyard_bench_${RUN}`;
const DATABASE_URL = baseDbUrl.toString();
const RESULTS_DIR = path.join(repoRoot, "bench", "results");
const LOG_DIR = path.join(RESULTS_DIR, "tmp", RUN);
const PROFILE_DIR = path.join(RESULTS_DIR, "tmp", `profiles-${RUN}`);
const COMMAND = `npm run bench${argv.length ? " -- " + argv.join(" ") : ""}`;

const startedAt = now();
function log(message: string): void {
  const t = ((now() - startedAt) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[bench ${t}s] ${message}\n`);
}

// ---------------------------------------------------------------------------------------------- state

interface Row {
  scenario: string;
  metric: string;
  switchyard: string;
  baseline: string;
  ratio: string;
  notes: string;
}
const rows: Row[] = [];
const notes: string[] = [];
const failures: string[] = [];

let nodeA: ServerHandle | undefined;
let nodeB: ServerHandle | undefined;
let baseA: ServerHandle | undefined;
let baseB: ServerHandle | undefined;
let bareWorker: ServerHandle | undefined;
let clients: LoadClient[] = [];
let publisher: LoadClient | undefined;
let benchPools: string[] = [];
let dbCreated = false;

const tokens = {
  bench: mintToken(JWT_SECRET, "bench"),
  idle: mintToken(JWT_SECRET, "idle"),
  tasks: mintToken(JWT_SECRET, "tasks"),
  replay: mintToken(JWT_SECRET, "replay"),
};

function switchyardEnv(): Record<string, string> {
  return {
    DATABASE_URL,
    REDIS_URL,
    REDIS_PREFIX,
    JWT_SECRET,
    EMBEDDED_WORKER: "true",
    // info, not warn: the port is read from the "switchyard listening" line; nothing logs per request at info.
    LOG_LEVEL: "info",
    // Bench sockets subscribe once, but thousands reconnecting at once must not be throttled as a group; and the
    // bench measures capacity, so one tenant's sockets and requests must not meet the per-tenant limits.
    SOCKET_EVENTS_PER_SECOND: "1000",
    MAX_CONNECTIONS_PER_TENANT: "1000000",
    REST_RATE_PER_TENANT: "1000000",
    // The tenant's share of a node (8 requests at once by default) would hold the bench's one tenant to less
    // than the 32 calls it keeps in flight: the node's whole capacity is what is measured.
    NODE_WORK_CONCURRENCY: "256",
    TENANT_WORK_CONCURRENCY: "256",
    SHUTDOWN_TIMEOUT_MS: "5000",
  };
}

function baselineEnv(): Record<string, string> {
  return { REDIS_URL, ADAPTER_KEY, JWT_SECRET };
}

function writeResult(scenario: Scenario, results: unknown): void {
  const file = path.join(RESULTS_DIR, `${scenario}-${SIZE}.json`);
  const doc = {
    scenario,
    size: SIZE,
    timestamp: new Date().toISOString(),
    command: COMMAND,
    machine: machineInfo(),
    sizes: SIZES,
    servers: {
      switchyard:
        "node --inspect=127.0.0.1:0 --import tsx src/main.ts (EMBEDDED_WORKER=true, LOG_LEVEL=info, SOCKET_EVENTS_PER_SECOND=1000, per-tenant limits out of reach); " +
        "the inspector only forces GC before memory samples and records --profile",
      baseline:
        "node --inspect=127.0.0.1:0 --import tsx scripts/bench/baseline-server.ts: socket.io 4.8 + @socket.io/redis-adapter, " +
        "transports polling+websocket, HS256 JWT (jsonwebtoken, string secret as in Switchyard) checked in the handshake, no database",
      clients: "raw Engine.IO v4 / Socket.IO v5 over ws (scripts/bench/raw-socket.ts), websocket transport",
      bullmqWorker:
        "node --inspect=127.0.0.1:0 --import tsx scripts/bench/bullmq-worker.ts: one BullMQ Worker returning the payload, " +
        "concurrency and lock settings of Switchyard's embedded worker (tasks scenario)",
    },
    results,
  };
  writeFileSync(file, JSON.stringify(doc, null, 2) + "\n");
  log(`wrote ${path.relative(repoRoot, file)}`);
}

// ---------------------------------------------------------------------------------------------- helpers

function spread(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

interface ConnectSummary {
  connected: number;
  subscribed: number;
  failed: number;
  errors: string[];
  ms: number;
  perSecond: number;
}

/** Opens `count` subscribed sockets spread over the load clients; socket i (globally) subscribes rooms[i % n]. */
async function connectSockets(server: ServerHandle, nsp: string, token: string, rooms: string[], count: number): Promise<ConnectSummary> {
  const shares = spread(count, clients.length);
  let offset = 0;
  const t0 = now();
  const results = await Promise.all(
    clients.map((client, i) => {
      const share = shares[i]!;
      const args = { url: server.url, nsp, token, rooms, count: share, offset, concurrency: SIZES.connectConcurrency };
      offset += share;
      return share > 0
        ? client.call<{ connected: number; subscribed: number; failed: number; errors: string[] }>("connect", args)
        : Promise.resolve({ connected: 0, subscribed: 0, failed: 0, errors: [] as string[] });
    }),
  );
  const ms = now() - t0;
  const summary: ConnectSummary = { connected: 0, subscribed: 0, failed: 0, errors: [], ms, perSecond: 0 };
  for (const r of results) {
    summary.connected += r.connected;
    summary.subscribed += r.subscribed;
    summary.failed += r.failed;
    summary.errors.push(...r.errors);
  }
  summary.perSecond = (summary.subscribed * 1000) / ms;
  if (summary.failed > 0) log(`  ${summary.failed} of ${count} sockets failed on ${server.name}: ${summary.errors.slice(0, 3).join("; ")}`);
  return summary;
}

async function closeSockets(): Promise<void> {
  await Promise.all(clients.map((c) => c.call("closeAll")));
  await sleep(500);
}

async function record(mode: "none" | "count" | "latency"): Promise<void> {
  await Promise.all(clients.map((c) => c.call("record", { mode })));
}

interface Totals {
  received: number;
  firstTs: number;
  lastTs: number;
}

async function totals(): Promise<Totals> {
  const stats = await Promise.all(clients.map((c) => c.call<Totals>("stats", {})));
  return {
    received: stats.reduce((s, x) => s + x.received, 0),
    firstTs: Math.min(...stats.map((x) => x.firstTs || Infinity)),
    lastTs: Math.max(...stats.map((x) => x.lastTs)),
  };
}

/** Waits until the subscribers received `expected` events, or nothing arrived for `quietMs`. */
async function drain(expected: number, quietMs = 1000, maxMs = 20_000): Promise<Totals> {
  const start = now();
  let last = -1;
  let changedAt = now();
  for (;;) {
    const t = await totals();
    if (t.received >= expected) return t;
    if (t.received !== last) {
      last = t.received;
      changedAt = now();
    } else if (now() - changedAt > quietMs) return t;
    if (now() - start > maxMs) return t;
    await sleep(200);
  }
}

/** The tenant `bench` has `n` pools (created through the REST API on first use); returns their ids. */
async function ensureBenchPools(n: number): Promise<string[]> {
  if (benchPools.length >= n) return benchPools.slice(0, n);
  const bodies = Array.from({ length: n - benchPools.length }, (_, i) => ({ name: `bench-pool-${benchPools.length + i}` }));
  const t0 = now();
  const results = await publisher!.call<Array<{ status: number; body: { pool?: { id: string } } }>>("http", {
    url: nodeA!.url,
    method: "POST",
    path: "/api/v1/pools",
    bodies,
    token: tokens.bench,
    concurrency: 16,
  });
  const bad = results.filter((r) => r.status !== 201);
  if (bad.length > 0) throw new Error(`creating pools failed: ${JSON.stringify(bad[0]).slice(0, 300)}`);
  benchPools.push(...results.map((r) => r.body.pool!.id));
  log(`created ${bodies.length} pools in ${((now() - t0) / 1000).toFixed(1)} s`);
  return benchPools.slice(0, n);
}

type ProfileSummary = ReturnType<typeof summarizeProfile>;

/**
 * With --profile, runs `fn` under V8's CPU profiler in `server` (and in `alsoServer`, the node holding the
 * subscribers in two-node runs), saves the .cpuprofile files and returns where the time went (self time by
 * package, by function and by calling package); without it, just runs `fn`.
 */
async function profiled<T>(
  server: ServerHandle,
  label: string,
  fn: () => Promise<T>,
  alsoServer?: ServerHandle,
): Promise<[T, ProfileSummary | undefined, ProfileSummary | undefined]> {
  const targets = PROFILE ? [server, ...(alsoServer && alsoServer !== server ? [alsoServer] : [])] : [];
  const sessions = await Promise.all(targets.map((t) => startProfile(t)));
  if (!sessions.some((s) => s)) return [await fn(), undefined, undefined];
  let result: T;
  try {
    result = await fn();
  } catch (error) {
    await Promise.all(sessions.map((s) => s?.stop()));
    throw error;
  }
  const profiles = await Promise.all(sessions.map((s) => s?.stop()));
  const summaries = profiles.map((profile, i) => {
    if (!profile) return undefined;
    mkdirSync(PROFILE_DIR, { recursive: true });
    const role = i === 0 ? "" : "subscribers-";
    const file = path.join(PROFILE_DIR, `${targets[i]!.kind}-${role}${label.replace(/[^A-Za-z0-9_.-]+/g, "-")}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    const summary = summarizeProfile(profile);
    log(`  profile ${path.relative(repoRoot, file)} (by calling package): ${summary.byCaller.slice(0, 8).map(([k, v]) => `${k} ${v}%`).join(", ")}`);
    return summary;
  });
  return [result, summaries[0], summaries[1]];
}

/** CPU use (% of one core) of the given servers, the load generators, the publisher, PostgreSQL and Redis. */
function cpuMeter(servers: Record<string, ServerHandle>): CpuMeter {
  return new CpuMeter(() => ({
    ...Object.fromEntries(Object.entries(servers).map(([name, s]) => [name, [s.pid]])),
    loadClients: clients.map((c) => c.child.pid!),
    publisher: [publisher!.child.pid!],
  }));
}
/** CPU (% of one core) the machine spent outside the measured process groups: other work sharing the cores. */
const otherCpu = (cpu: Record<string, number>): number =>
  (cpu.machine ?? 0) - Object.entries(cpu).reduce((sum, [k, v]) => (k === "machine" ? sum : sum + v), 0);
const cpuText = (cpu: Record<string, number>): string =>
  Object.entries(cpu)
    .map(([k, v]) => `${k} ${v}%`)
    .join(", ") + `, other ${otherCpu(cpu)}%`;
/** Row note when something outside the bench used a noticeable share of the cores during any of `cpus`. */
const busyNote = (...cpus: Array<Record<string, number>>): string => {
  const worst = Math.max(...cpus.map(otherCpu));
  return worst >= 25 ? `; machine busy: up to ${worst}% CPU outside the bench` : "";
};

const ratio = (a: number, b: number, digits = 2): string => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${(a / b).toFixed(digits)}x` : "n/a");
const kib = (bytes: number): string => (Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(1)} KiB` : "n/a");
const ms = (value: number): string => (Number.isFinite(value) ? value.toFixed(1) : "n/a");
const lat = (s: Summary): string => (s.count > 0 ? `${ms(s.p50)}/${ms(s.p99)}/${ms(s.max)}` : "n/a");

// ---------------------------------------------------------------------------------------------- idle

async function idleScenario(): Promise<void> {
  const perServer: Record<string, unknown> = {};
  const measured: Record<string, Array<{ sockets: number; rssPerSocket: number; heapPerSocket: number; connectPerSecond: number; sample: MemorySample; failed: number }>> = {};
  for (const server of [nodeA!, baseA!]) {
    // Warm-up: one-time costs (lazy module init, JIT, the database client's first queries, the room's first
    // subscription) must not be counted per socket; it also warms the load generators for both servers alike.
    await connectSockets(server, "/pools", tokens.idle, ["pools"], 200);
    await closeSockets();
    const before = await sampleMemory(server);
    log(`idle ${server.name}: before rss ${(before.rssBytes / 2 ** 20).toFixed(1)} MiB heap ${(before.heapUsedBytes / 2 ** 20).toFixed(1)} MiB (gc ${before.gc})`);
    let have = 0;
    const steps: (typeof measured)[string] = [];
    for (const size of SIZES.idleSockets) {
      const connect = await connectSockets(server, "/pools", tokens.idle, ["pools"], size - have);
      have = size;
      await sleep(1000);
      const sample = await sampleMemory(server);
      const step = {
        sockets: size,
        rssPerSocket: (sample.rssBytes - before.rssBytes) / size,
        heapPerSocket: (sample.heapUsedBytes - before.heapUsedBytes) / size,
        connectPerSecond: connect.perSecond,
        sample,
        failed: connect.failed,
      };
      steps.push(step);
      log(
        `idle ${server.name} ${size} sockets: rss ${kib(step.rssPerSocket)}/socket, heap ${kib(step.heapPerSocket)}/socket, ` +
          `connect+subscribe ${human(connect.perSecond)}/s`,
      );
    }
    measured[server.kind] = steps;
    perServer[server.kind] = { before, steps };
    await closeSockets();
  }
  for (let i = 0; i < SIZES.idleSockets.length; i++) {
    const sw = measured.switchyard![i]!;
    const base = measured.baseline![i]!;
    const n = `${human(sw.sockets, 0)} sockets`;
    rows.push({ scenario: `idle ${n}`, metric: "RSS per socket", switchyard: kib(sw.rssPerSocket), baseline: kib(base.rssPerSocket), ratio: ratio(sw.rssPerSocket, base.rssPerSocket), notes: "after full GC, minus the idle server" });
    rows.push({ scenario: `idle ${n}`, metric: "heap per socket", switchyard: kib(sw.heapPerSocket), baseline: kib(base.heapPerSocket), ratio: ratio(sw.heapPerSocket, base.heapPerSocket), notes: "" });
    rows.push({
      scenario: `idle ${n}`,
      metric: "connect+subscribe/s",
      switchyard: human(sw.connectPerSecond),
      baseline: human(base.connectPerSecond),
      ratio: ratio(sw.connectPerSecond, base.connectPerSecond),
      notes: sw.failed + base.failed > 0 ? `failed: sw ${sw.failed}, base ${base.failed}` : "handshake + JWT + subscribe ack",
    });
  }
  writeResult("idle", perServer);
}

// ---------------------------------------------------------------------------------------------- fan-out

interface DeliveryRun {
  publisher: string;
  calls: number;
  events: number;
  failed: number;
  errors: string[];
  publishMs: number;
  publishPerSecond: number;
  expected: number;
  received: number;
  deliverMs: number;
  deliveredPerSecond: number;
  completeness: number;
  cpuPercent: Record<string, number>;
  /** Wall time the CPU figures cover (publishing and draining). */
  cpuWallMs: number;
  /** Gated runs: total time the publisher's lanes waited for the deliveries to catch up. */
  gatedMs: number;
  profile?: ProfileSummary;
  /** Two-node runs: the profile of the node holding the subscribers. */
  subscriberProfile?: ProfileSummary;
}

/** Events one call of `spec` publishes. */
const perCall = (spec: PublisherSpec): number => (spec.kind === "switchyard-events" || spec.kind === "baseline-batch" ? spec.batch : 1);

/**
 * Closed-loop publishing to `server` (`concurrency` calls in flight) for `durationMs`, counting what the
 * subscribers (already connected, to `subscribeTo`) receive. `scenario` names the profile.
 */
async function deliveryRun(
  label: string,
  server: ServerHandle,
  spec: PublisherSpec,
  pools: string[],
  subscribersPerEvent: number,
  concurrency: number,
  {
    subscribeTo = server,
    durationMs = SIZES.fanoutMs,
    scenario = "fanout",
    maxBacklog,
  }: {
    subscribeTo?: ServerHandle;
    durationMs?: number;
    scenario?: string;
    /** Events the publisher may be ahead of the deliveries (published events x subscribersPerEvent - received). */
    maxBacklog?: number;
  } = {},
): Promise<DeliveryRun> {
  await record("count");
  const meter = cpuMeter(subscribeTo === server ? { server } : { subNode: subscribeTo, pubNode: server });
  const meterStart = now();
  meter.start();
  const [{ loop, roomEvents, expected, t }, profile, subscriberProfile] = await profiled(server, `${scenario} ${label} ${subscribersPerEvent}`, async () => {
    const running = publisher!.call<{ calls: number; events: number; failed: number; errors: string[]; startTs: number; endTs: number; gatedMs: number }>("publish", {
      url: server.url,
      spec,
      pools,
      concurrency,
      durationMs,
      gateEvents: maxBacklog,
    });
    if (maxBacklog !== undefined) {
      // Feeds the publisher's gate from the subscribers' counts while it runs.
      let done = false;
      void running.finally(() => (done = true)).catch(() => undefined);
      while (!done) {
        await sleep(50);
        const { received } = await totals();
        await publisher!.call("allow", { events: Math.floor(received / subscribersPerEvent) + maxBacklog });
      }
    }
    const loop = await running;
    if (loop.gatedMs > 0) log(`  ${label}: lanes waited ${(loop.gatedMs / concurrency / 1000).toFixed(1)} s each for deliveries to catch up`);
    // Events that reach the subscribed room(s) (successful calls only): one per Switchyard scale call, one per
    // logical baseline event, `batch` per publish-API call.
    const roomEvents = loop.events;
    const expected = roomEvents * subscribersPerEvent;
    const t = await drain(expected);
    return { loop, roomEvents, expected, t };
  }, subscribeTo);
  const cpuPercent = meter.stop();
  const cpuWallMs = now() - meterStart;
  await record("none");
  const deliverMs = Math.max(t.lastTs, loop.endTs) - loop.startTs;
  const run: DeliveryRun = {
    publisher: label,
    calls: loop.calls,
    events: roomEvents,
    failed: loop.failed,
    errors: loop.errors,
    publishMs: loop.endTs - loop.startTs,
    publishPerSecond: (roomEvents * 1000) / (loop.endTs - loop.startTs),
    expected,
    received: t.received,
    deliverMs,
    deliveredPerSecond: (t.received * 1000) / deliverMs,
    completeness: expected > 0 ? t.received / expected : NaN,
    cpuPercent,
    cpuWallMs,
    gatedMs: loop.gatedMs,
    profile,
    subscriberProfile,
  };
  if (loop.failed > 0) log(`  ${label}: ${loop.failed} publish calls failed: ${loop.errors.slice(0, 2).join("; ")}`);
  log(
    `  ${label}: ${human(roomEvents)} events (${human(run.publishPerSecond)}/s published), ` +
      `${human(t.received)}/${human(expected)} delivered, ${human(run.deliveredPerSecond)} deliveries/s; cpu ${cpuText(cpuPercent)}`,
  );
  return run;
}

async function fanoutScenario(): Promise<void> {
  const pools = await ensureBenchPools(Math.max(SIZES.fanoutRooms, 16));
  const C = SIZES.publishConcurrency;
  const layouts = [
    { key: "oneRoom", label: `1 room x ${human(SIZES.fanoutOneRoom, 0)}`, rooms: ["pools"], sockets: SIZES.fanoutOneRoom, perEvent: SIZES.fanoutOneRoom, roomsMode: "pools" as const },
    {
      key: "manyRooms",
      label: `${human(SIZES.fanoutRooms, 0)} rooms x ${SIZES.fanoutPerRoom}`,
      rooms: pools.slice(0, SIZES.fanoutRooms).map((id) => `pool:${id}`),
      sockets: SIZES.fanoutRooms * SIZES.fanoutPerRoom,
      perEvent: SIZES.fanoutPerRoom,
      roomsMode: "pool" as const,
    },
  ];
  const results: Record<string, unknown> = {};
  for (const layout of layouts) {
    log(`fan-out ${layout.label}`);
    const publishPools = layout.key === "oneRoom" ? pools : pools.slice(0, SIZES.fanoutRooms);
    await connectSockets(nodeA!, "/pools", tokens.bench, layout.rooms, layout.sockets);
    const sw = await deliveryRun("switchyard REST scale", nodeA!, { kind: "switchyard-scale", token: tokens.bench }, publishPools, layout.perEvent, C);
    await closeSockets();
    await connectSockets(baseA!, "/pools", tokens.bench, layout.rooms, layout.sockets);
    // Batches of ~100k deliveries per call (at most loopBatch events), so one call never runs for long.
    const batch = Math.max(1, Math.min(SIZES.loopBatch, Math.round(100_000 / layout.perEvent)));
    const loop = await deliveryRun("baseline emit loop", baseA!, { kind: "baseline-loop", tenant: "bench", rooms: "both", batch }, publishPools, layout.perEvent, 2);
    const viaHttp = await deliveryRun("baseline HTTP/event", baseA!, { kind: "baseline-http", tenant: "bench", rooms: "both" }, publishPools, layout.perEvent, C);
    await closeSockets();
    results[layout.key] = { layout: layout.label, subscribers: layout.sockets, switchyard: sw, baselineEmitLoop: loop, baselineHttpPerEvent: viaHttp };
    rows.push({
      scenario: `fan-out ${layout.label}`,
      metric: "deliveries/s",
      switchyard: human(sw.deliveredPerSecond),
      baseline: human(loop.deliveredPerSecond),
      ratio: ratio(sw.deliveredPerSecond, loop.deliveredPerSecond, 3),
      notes:
        `base = emit loop; base via HTTP/event ${human(viaHttp.deliveredPerSecond)} (sw ${ratio(sw.deliveredPerSecond, viaHttp.deliveredPerSecond)})` +
        (Math.min(sw.completeness, loop.completeness, viaHttp.completeness) < 1 ? `; delivered only ${(sw.completeness * 100).toFixed(0)}%/${(loop.completeness * 100).toFixed(0)}%/${(viaHttp.completeness * 100).toFixed(0)}%` : ""),
    });
    rows.push({
      scenario: `fan-out ${layout.label}`,
      metric: "events published/s",
      switchyard: human(sw.publishPerSecond),
      baseline: human(viaHttp.publishPerSecond),
      ratio: ratio(sw.publishPerSecond, viaHttp.publishPerSecond, 3),
      notes: `both ${C} HTTP calls in flight (sw REST scale, base /publish); base emit loop ${human(loop.publishPerSecond)}/s`,
    });
  }
  notes.push(
    "fan-out: Switchyard is driven through its real publish path (POST /api/v1/pools/:id/scale, " +
      `${C} calls in flight): each event is authenticated, validated, written to PostgreSQL (pool row + event log, ` +
      "one sequence row per room) and then broadcast to `pools` and `pool:<id>`. 'deliveries/s' compares it with a bare " +
      "emit loop inside the baseline server (no HTTP, no database; same two rooms): the broadcast ceiling. 'events " +
      "published/s' compares the publish paths: the baseline driven like Switchyard, one HTTP /publish per event. With " +
      "one big room both are bounded by the machine (socket writes + the load generators' reads share the 2 cores); with " +
      "many small rooms Switchyard is bounded by its per-event publish cost (see cpu/profile in fanout-*.json).",
  );
  writeResult("fanout", results);
}

// ---------------------------------------------------------------------------------------------- latency

interface LatencyRun {
  topology: string;
  offeredRate: number;
  achievedRate: number;
  calls: number;
  failed: number;
  late: number;
  skipped: number;
  expected: number;
  received: number;
  matched: number;
  latencyMs: Summary;
  callMs: Summary | undefined;
  cpuPercent: Record<string, number>;
  profile?: ProfileSummary;
  /** Two-node runs: the profile of the node holding the subscribers. */
  subscriberProfile?: ProfileSummary;
}

async function latencyRun(topology: string, rate: number, publishTo: ServerHandle, subscribeTo: ServerHandle, spec: PublisherSpec, pools: string[]): Promise<LatencyRun> {
  const rooms = pools.map((id) => `pool:${id}`);
  await connectSockets(subscribeTo, "/pools", tokens.bench, rooms, rooms.length * SIZES.latencyPerRoom);
  const run = await latencyMeasure(topology, rate, publishTo, subscribeTo, spec, pools, SIZES.latencyPerRoom, SIZES.latencyMs, {
    serverA: publishTo,
    serverB: subscribeTo,
  });
  await closeSockets();
  return run;
}

/**
 * Open loop at `rate` events/s (calls of perCall(spec) events each) to `publishTo` for `durationMs`, with
 * `perRoom` subscribers per room already connected to `subscribeTo`: publish -> receive latency of every receipt.
 */
async function latencyMeasure(
  topology: string,
  rate: number,
  publishTo: ServerHandle,
  subscribeTo: ServerHandle,
  spec: PublisherSpec,
  pools: string[],
  perRoom: number,
  durationMs: number,
  cpuGroups: Record<string, ServerHandle>,
  scenario = "latency",
): Promise<LatencyRun> {
  await record("latency");
  const meter = cpuMeter(publishTo === subscribeTo ? { server: publishTo } : cpuGroups);
  meter.start();
  const [loop, profile, subscriberProfile] = await profiled(publishTo, `${scenario} ${topology} ${rate}`, () =>
    publisher!.call<{
      calls: number;
      events: number;
      failed: number;
      late: number;
      skipped: number;
      sends: Array<[string, number]>;
      startTs: number;
      endTs: number;
      callLatency?: Summary;
    }>("publish", { url: publishTo.url, spec, pools, rate: rate / perCall(spec), durationMs, maxInFlight: 256 }),
    subscribeTo,
  );
  const expected = loop.events * perRoom;
  await drain(expected, 1000, 10_000);
  const cpuPercent = meter.stop();
  await record("none");
  const samples = await Promise.all(clients.map((c) => c.call<{ keys: string[]; ts: number[] }>("stats", { samples: true })));
  const sentAt = new Map(loop.sends);
  const latencies: number[] = [];
  let received = 0;
  for (const s of samples) {
    received += s.keys.length;
    for (let i = 0; i < s.keys.length; i++) {
      const t = sentAt.get(s.keys[i]!);
      if (t !== undefined) latencies.push(s.ts[i]! - t);
    }
  }
  const run: LatencyRun = {
    topology,
    offeredRate: rate,
    achievedRate: (loop.events * 1000) / (loop.endTs - loop.startTs),
    calls: loop.calls,
    failed: loop.failed,
    late: loop.late,
    skipped: loop.skipped,
    expected,
    received,
    matched: latencies.length,
    latencyMs: summarize(latencies),
    callMs: loop.callLatency,
    cpuPercent,
    profile,
    subscriberProfile,
  };
  log(
    `  ${topology} ${spec.kind}: p50/p99/max ${lat(run.latencyMs)} ms, ${human(run.achievedRate)}/s of ${run.offeredRate}/s offered, ` +
      `${run.matched}/${expected} receipts; cpu ${cpuText(cpuPercent)}`,
  );
  return run;
}

async function latencyScenario(): Promise<void> {
  const pools = await ensureBenchPools(SIZES.latencyRooms);
  const swSpec: PublisherSpec = { kind: "switchyard-scale", token: tokens.bench };
  const baseSpec: PublisherSpec = { kind: "baseline-http", tenant: "bench", rooms: "both" };
  const runs: Array<{ topology: string; rate: number; switchyard: LatencyRun; baseline: LatencyRun }> = [];
  log(`latency: ${SIZES.latencyRates.join(" and ")} events/s over ${pools.length} rooms x ${SIZES.latencyPerRoom} subscribers, ${SIZES.latencyMs / 1000} s each`);
  for (const rate of SIZES.latencyRates) {
    runs.push({
      topology: "1 node",
      rate,
      switchyard: await latencyRun("1 node", rate, nodeA!, nodeA!, swSpec, pools),
      baseline: await latencyRun("1 node", rate, baseA!, baseA!, baseSpec, pools),
    });
  }
  log("latency: starting second nodes");
  [nodeB, baseB] = await Promise.all([
    startSwitchyard(`bench-${RUN}-b`, switchyardEnv(), path.join(LOG_DIR, "switchyard-b.log")),
    startBaseline(`baseline-${RUN}-b`, baselineEnv(), path.join(LOG_DIR, "baseline-b.log")),
  ]);
  for (const rate of SIZES.latencyRates) {
    runs.push({
      topology: "2 nodes (Redis)",
      rate,
      switchyard: await latencyRun("2 nodes", rate, nodeA!, nodeB, swSpec, pools),
      baseline: await latencyRun("2 nodes", rate, baseA!, baseB, baseSpec, pools),
    });
  }
  await Promise.all([nodeB.stop(), baseB.stop()]);
  nodeB = baseB = undefined;
  for (const { topology, rate, switchyard: sw, baseline: base } of runs) {
    const loss = sw.matched < sw.expected || base.matched < base.expected;
    const behind = sw.skipped > 0 || base.skipped > 0;
    rows.push({
      scenario: `latency ${topology} @${rate}/s`,
      metric: "p50/p99/max ms",
      switchyard: lat(sw.latencyMs),
      baseline: lat(base.latencyMs),
      ratio: `p99 ${ratio(sw.latencyMs.p99, base.latencyMs.p99, 1)}`,
      notes:
        `achieved ${human(sw.achievedRate)}/${human(base.achievedRate)} events/s` +
        (behind ? " (overloaded: publishes skipped)" : "") +
        (loss ? `; receipts ${sw.matched}/${sw.expected}, ${base.matched}/${base.expected}` : ""),
    });
  }
  notes.push(
    "latency: publish -> receive, from the publish call's scheduled start (open loop, so a publisher that falls behind shows " +
      "up as latency) to the subscriber's receipt, on one shared clock. Switchyard: REST scale call; baseline: one HTTP " +
      "/publish per event to the same rooms. '2 nodes': published on node A, received by sockets on node B through Redis.",
  );
  writeResult("latency", { rooms: pools.length, subscribersPerRoom: SIZES.latencyPerRoom, durationMs: SIZES.latencyMs, runs });
}

// ---------------------------------------------------------------------------------------------- tasks

interface TasksRun {
  concurrency: number;
  completed: number;
  failed: number;
  errors: string[];
  tasksPerSecond: number;
  latency: Summary;
  /** Switchyard: every event the `tasks` subscriber saw; bare BullMQ: every `completed` QueueEvents saw. */
  taskEventsSeen?: number;
  completedEventsSeen?: number;
  cpuPercent: Record<string, number>;
  /** CPU time per completed task (warm-up included, like the CPU window), ms, by process group. */
  cpuMsPerTask: Record<string, number>;
  profile?: ProfileSummary;
}

const cpuMs = (value: number | undefined): string => (value === undefined ? "n/a" : value >= 1 ? value.toFixed(1) : value.toFixed(2));

const BARE_QUEUE = "pool.tasks.default";
const BARE_PREFIX = `bench-${RUN}-bare:bull`;

async function tasksScenario(): Promise<void> {
  log(`tasks: starting the bare BullMQ worker (concurrency ${SIZES.bareWorkerConcurrency})`);
  bareWorker = await startBullmqWorker(
    `bullmq-${RUN}`,
    { REDIS_URL, BULL_PREFIX: BARE_PREFIX, QUEUE: BARE_QUEUE, WORKER_CONCURRENCY: String(SIZES.bareWorkerConcurrency) },
    path.join(LOG_DIR, "bullmq-worker.log"),
  );
  const runs: Array<{ concurrency: number; switchyard: TasksRun; bullmq: TasksRun }> = [];
  const one = async (kind: "switchyard" | "bullmq", concurrency: number): Promise<TasksRun> => {
    const server = kind === "switchyard" ? nodeA! : bareWorker!;
    const meter = cpuMeter(kind === "switchyard" ? { server } : { worker: server });
    const meterStart = now();
    meter.start();
    const loop = { concurrency, durationMs: SIZES.tasksMs, warmupMs: SIZES.tasksWarmupMs };
    const [result, profile] = await profiled(server, `tasks ${concurrency}`, () =>
      kind === "switchyard"
        ? publisher!.call<Omit<TasksRun, "concurrency" | "cpuPercent" | "cpuMsPerTask" | "profile">>("tasks", { url: nodeA!.url, token: tokens.tasks, ...loop })
        : publisher!.call<Omit<TasksRun, "concurrency" | "cpuPercent" | "cpuMsPerTask" | "profile">>("bullmqTasks", { redisUrl: REDIS_URL, prefix: BARE_PREFIX, queue: BARE_QUEUE, ...loop }),
    );
    const cpuPercent = meter.stop();
    const cpuWallMs = now() - meterStart;
    if (result.failed > 0) log(`  ${kind}: ${result.failed} tasks failed: ${result.errors.slice(0, 2).join("; ")}`);
    log(`  ${kind}: ${human(result.tasksPerSecond)} tasks/s, p50/p99/max ${lat(result.latency)} ms; cpu ${cpuText(cpuPercent)}`);
    const cpuMsPerTask = Object.fromEntries(
      Object.entries(cpuPercent)
        .filter(([k]) => k !== "machine" && k !== "loadClients")
        .map(([k, v]) => [k, Math.round(((v / 100) * cpuWallMs * 1000) / Math.max(1, result.completed)) / 1000]),
    );
    return { concurrency, ...result, cpuPercent, cpuMsPerTask, profile };
  };
  for (const concurrency of SIZES.tasksConcurrency) {
    log(`tasks: echo tasks, closed loop with ${concurrency} in flight, ${SIZES.tasksMs / 1000} s (+${SIZES.tasksWarmupMs / 1000} s warm-up) each, Switchyard then bare BullMQ`);
    const sw = await one("switchyard", concurrency);
    const bare = await one("bullmq", concurrency);
    runs.push({ concurrency, switchyard: sw, bullmq: bare });
    const failed = sw.failed + bare.failed > 0 ? `; failed: sw ${sw.failed}, bullmq ${bare.failed}` : "";
    rows.push({
      scenario: `tasks, ${concurrency} in flight`,
      metric: "tasks/s",
      switchyard: human(sw.tasksPerSecond),
      baseline: human(bare.tasksPerSecond),
      ratio: ratio(sw.tasksPerSecond, bare.tasksPerSecond, 3),
      notes:
        `base = bare BullMQ; CPU ms/task: sw server ${cpuMs(sw.cpuMsPerTask.server)} + pg ${cpuMs(sw.cpuMsPerTask.postgres)} + redis ${cpuMs(sw.cpuMsPerTask.redis)}, ` +
        `bullmq worker ${cpuMs(bare.cpuMsPerTask.worker)} + producer ${cpuMs(bare.cpuMsPerTask.publisher)} + redis ${cpuMs(bare.cpuMsPerTask.redis)}${failed}` +
        busyNote(sw.cpuPercent, bare.cpuPercent),
    });
    rows.push({
      scenario: `tasks, ${concurrency} in flight`,
      metric: "p50/p99/max ms",
      switchyard: lat(sw.latency),
      baseline: lat(bare.latency),
      ratio: `p99 ${ratio(sw.latency.p99, bare.latency.p99, 1)}`,
      notes: "sw: POST /api/v1/tasks (echo) -> task.completed on a `tasks` subscriber",
    });
  }
  await bareWorker.stop();
  bareWorker = undefined;
  notes.push(
    "tasks: the same closed loop (N in flight, submit -> completion seen by the submitting process) through Switchyard " +
      "(REST submit, persisted task and its events, embedded worker in the server process, task.completed on a `tasks` " +
      "socket) and through bare BullMQ on the same Redis (Queue.add with the job options Switchyard uses for an echo task, " +
      `a Worker with concurrency ${SIZES.bareWorkerConcurrency} in its own process returning the payload, completion from QueueEvents).`,
  );
  writeResult("tasks", { durationMs: SIZES.tasksMs, warmupMs: SIZES.tasksWarmupMs, bareWorkerConcurrency: SIZES.bareWorkerConcurrency, runs });
}

// ---------------------------------------------------------------------------------------------- publish API

/** CPU microseconds of one process group per unit (delivery, event) over a delivery run. */
function cpuUs(run: { cpuPercent: Record<string, number>; cpuWallMs: number }, group: string, units: number): string {
  const percent = run.cpuPercent[group];
  if (percent === undefined || units <= 0) return "n/a";
  return ((percent / 100) * run.cpuWallMs * 1000 / units).toFixed(1);
}

interface CapacityRun {
  calls: number;
  events: number;
  failed: number;
  errors: string[];
  publishMs: number;
  publishPerSecond: number;
  cpuPercent: Record<string, number>;
  cpuWallMs: number;
  profile?: ProfileSummary;
}

/** The publish path alone: a closed loop to `server` with no subscribers connected anywhere. */
async function capacityRun(label: string, server: ServerHandle, other: ServerHandle, spec: PublisherSpec, pools: string[], concurrency: number): Promise<CapacityRun> {
  const meter = cpuMeter({ subNode: other, pubNode: server });
  const meterStart = now();
  meter.start();
  const [loop, profile] = await profiled(server, `publish-capacity ${label}`, () =>
    publisher!.call<{ calls: number; events: number; failed: number; errors: string[]; startTs: number; endTs: number }>("publish", {
      url: server.url,
      spec,
      pools,
      concurrency,
      durationMs: SIZES.publishCapacityMs,
    }),
  );
  const cpuPercent = meter.stop();
  const cpuWallMs = now() - meterStart;
  const publishMs = loop.endTs - loop.startTs;
  const run: CapacityRun = { ...loop, publishMs, publishPerSecond: (loop.events * 1000) / publishMs, cpuPercent, cpuWallMs, profile };
  if (loop.failed > 0) log(`  ${label}: ${loop.failed} publish calls failed: ${loop.errors.slice(0, 2).join("; ")}`);
  log(`  ${label}, no subscribers: ${human(run.publishPerSecond)} events/s published; cpu ${cpuText(cpuPercent)}`);
  return run;
}

/**
 * Classic vs sharded pub/sub, two Switchyard nodes each: node B publishes (publish API, batches) into the rooms,
 * and node A holds no subscriber. With classic pub/sub (`REDIS_URL`) every node receives every broadcast and
 * throws away what it has no socket for; with sharded pub/sub on a Redis Cluster (`REDIS_CLUSTER_NODES`, three
 * masters started here) a node subscribes only to the rooms it has sockets in, so node A receives nothing. The
 * figure is node A's CPU per published event: what each node pays for the whole cluster's traffic.
 */
async function shardingScenario(): Promise<void> {
  const pools = await ensureBenchPools(SIZES.publishRooms);
  const B = SIZES.publishBatch;
  const C = SIZES.publishConcurrencyBatches;
  log("sharding: starting a 3-master Redis Cluster and two nodes on it, and a second classic node");
  const cluster = await startPrivateRedisCluster(3, 0);
  // The bench database is shared with the classic nodes: the cluster nodes must not reconcile its tasks against
  // their (empty) queues.
  const clusterEnv = { ...switchyardEnv(), REDIS_CLUSTER_NODES: cluster.spec, RECONCILE_INTERVAL_MS: "3600000", EMBEDDED_WORKER: "false" };
  const started: ServerHandle[] = [];
  try {
    const [classicB, shardedA, shardedB] = await Promise.all([
      startSwitchyard(`bench-${RUN}-b`, switchyardEnv(), path.join(LOG_DIR, "switchyard-b.log")),
      startSwitchyard(`bench-${RUN}-cluster-a`, clusterEnv, path.join(LOG_DIR, "switchyard-cluster-a.log")),
      startSwitchyard(`bench-${RUN}-cluster-b`, clusterEnv, path.join(LOG_DIR, "switchyard-cluster-b.log")),
    ]);
    started.push(classicB, shardedA, shardedB);
    const spec: PublisherSpec = { kind: "switchyard-events", token: tokens.bench, batch: B };
    const sides = [
      { kind: "classic" as const, a: nodeA!, b: classicB },
      { kind: "sharded" as const, a: shardedA, b: shardedB },
    ];
    const results: Record<string, CapacityRun> = {};
    for (const side of sides) {
      const warm = await publisher!.call<{ failed: number; errors: string[] }>("publish", {
        url: side.b.url,
        spec,
        pools,
        concurrency: 1,
        durationMs: 30_000,
        limit: Math.ceil((2 * pools.length) / B),
      });
      if (warm.failed > 0) throw new Error(`sharding warm-up failed: ${warm.errors.join("; ")}`);
      await sleep(300);
      results[side.kind] = await capacityRun(`${side.kind} pub/sub`, side.b, side.a, spec, pools, C);
    }
    const classic = results.classic!;
    const sharded = results.sharded!;
    const perEvent = (run: CapacityRun): number => ((run.cpuPercent.subNode ?? 0) / 100) * run.cpuWallMs * 1000 / Math.max(1, run.events);
    rows.push({
      scenario: "classic vs sharded pub/sub, 2 nodes",
      metric: "node A CPU per event",
      switchyard: `${perEvent(sharded).toFixed(1)} µs`,
      baseline: `${perEvent(classic).toFixed(1)} µs`,
      ratio: ratio(perEvent(sharded), perEvent(classic), 3),
      notes:
        `switchyard = sharded (3-master cluster), baseline = classic (one Redis); node A has no subscriber; ${C} batches of ${B} posted to node B; ` +
        `published/s sharded ${human(sharded.publishPerSecond)} vs classic ${human(classic.publishPerSecond)}; node B CPU/event ${cpuUs(sharded, "pubNode", sharded.events)} vs ${cpuUs(classic, "pubNode", classic.events)} µs`,
    });
    writeResult("sharding", { classic, sharded, nodeACpuPerEventUs: { classic: perEvent(classic), sharded: perEvent(sharded) } });
  } finally {
    await Promise.all(started.map((server) => server.stop()));
    await cluster.destroy();
  }
}

async function publishScenario(): Promise<void> {
  const pools = await ensureBenchPools(SIZES.publishRooms);
  const rooms = pools.map((id) => `pool:${id}`);
  const B = SIZES.publishBatch;
  const C = SIZES.publishConcurrencyBatches;
  const perRoom = SIZES.publishPerRoom;
  log("publish: starting second nodes");
  [nodeB, baseB] = await Promise.all([
    startSwitchyard(`bench-${RUN}-b`, switchyardEnv(), path.join(LOG_DIR, "switchyard-b.log")),
    startBaseline(`baseline-${RUN}-b`, baselineEnv(), path.join(LOG_DIR, "baseline-b.log")),
  ]);
  const sides = [
    { kind: "switchyard" as const, label: "switchyard POST /api/v1/events", subscribeTo: nodeA!, publishTo: nodeB, spec: { kind: "switchyard-events", token: tokens.bench, batch: B } as PublisherSpec },
    { kind: "baseline" as const, label: "baseline POST /publish-batch", subscribeTo: baseA!, publishTo: baseB, spec: { kind: "baseline-batch", tenant: "bench", batch: B } as PublisherSpec },
  ];
  const results: Record<string, { warmupMs: number; capacity: CapacityRun; throughput: DeliveryRun; latency: LatencyRun }> = {};
  for (const side of sides) {
    log(`publish ${side.kind}: batches of ${B} posted to B, ${rooms.length} rooms`);
    // Warm-up, not measured: one call at a time until every room got two events (a node that has not seen a
    // room yet looks it up in PostgreSQL; the JIT warms up on both sides).
    const warm = await publisher!.call<{ calls: number; failed: number; errors: string[]; startTs: number; endTs: number }>("publish", {
      url: side.publishTo.url,
      spec: side.spec,
      pools,
      concurrency: 1,
      durationMs: 30_000,
      limit: Math.ceil((2 * rooms.length) / B),
    });
    if (warm.failed > 0) throw new Error(`publish warm-up failed: ${warm.errors.join("; ")}`);
    const warmupMs = warm.endTs - warm.startTs;
    log(`  warm-up: ${warm.calls} calls one at a time in ${ms(warmupMs)} ms`);
    await sleep(300);
    const capacity = await capacityRun(side.label, side.publishTo, side.subscribeTo, side.spec, pools, C);
    log(`  ${rooms.length} rooms x ${perRoom} subscribers on A`);
    await connectSockets(side.subscribeTo, "/pools", tokens.bench, rooms, rooms.length * perRoom);
    const throughput = await deliveryRun(side.label, side.publishTo, side.spec, pools, perRoom, C, {
      subscribeTo: side.subscribeTo,
      durationMs: SIZES.publishMs,
      scenario: "publish",
      maxBacklog: SIZES.publishMaxBacklog,
    });
    const latency = await latencyMeasure("2 nodes", SIZES.publishLatencyRate, side.publishTo, side.subscribeTo, side.spec, pools, perRoom, SIZES.publishLatencyMs, { subNode: side.subscribeTo, pubNode: side.publishTo }, "publish");
    await closeSockets();
    results[side.kind] = { warmupMs, capacity, throughput, latency };
  }
  await Promise.all([nodeB.stop(), baseB.stop()]);
  nodeB = baseB = undefined;
  const sw = results.switchyard!;
  const base = results.baseline!;
  rows.push({
    scenario: `publish API ${human(rooms.length, 0)} rooms x ${perRoom}`,
    metric: "deliveries/s",
    switchyard: human(sw.throughput.deliveredPerSecond),
    baseline: human(base.throughput.deliveredPerSecond),
    ratio: ratio(sw.throughput.deliveredPerSecond, base.throughput.deliveredPerSecond, 3),
    notes:
      `${C} batches of ${B} in flight, <= ${human(SIZES.publishMaxBacklog, 0)} events ahead; node A CPU/delivery sw ${cpuUs(sw.throughput, "subNode", sw.throughput.received)} µs, ` +
      `base ${cpuUs(base.throughput, "subNode", base.throughput.received)} µs` +
      (Math.min(sw.throughput.completeness, base.throughput.completeness) < 1
        ? `; delivered only ${(sw.throughput.completeness * 100).toFixed(0)}%/${(base.throughput.completeness * 100).toFixed(0)}%`
        : "") +
      (sw.throughput.failed + base.throughput.failed > 0 ? `; failed calls ${sw.throughput.failed}/${base.throughput.failed}` : "") +
      busyNote(sw.throughput.cpuPercent, base.throughput.cpuPercent),
  });
  rows.push({
    scenario: "publish API, no subscribers",
    metric: "events published/s",
    switchyard: human(sw.capacity.publishPerSecond),
    baseline: human(base.capacity.publishPerSecond),
    ratio: ratio(sw.capacity.publishPerSecond, base.capacity.publishPerSecond, 3),
    notes:
      `${C} batches of ${B} in flight; CPU/event: node B sw ${cpuUs(sw.capacity, "pubNode", sw.capacity.events)} µs + PostgreSQL ${cpuUs(sw.capacity, "postgres", sw.capacity.events)} µs, ` +
      `base ${cpuUs(base.capacity, "pubNode", base.capacity.events)} µs` +
      (sw.capacity.failed + base.capacity.failed > 0 ? `; failed calls ${sw.capacity.failed}/${base.capacity.failed}` : "") +
      busyNote(sw.capacity.cpuPercent, base.capacity.cpuPercent),
  });
  const loss = sw.latency.matched < sw.latency.expected || base.latency.matched < base.latency.expected;
  const behind = sw.latency.skipped > 0 || base.latency.skipped > 0;
  rows.push({
    scenario: `publish API @${human(SIZES.publishLatencyRate, 0)}/s, 2 nodes`,
    metric: "p50/p99/max ms",
    switchyard: lat(sw.latency.latencyMs),
    baseline: lat(base.latency.latencyMs),
    ratio: `p99 ${ratio(sw.latency.latencyMs.p99, base.latency.latencyMs.p99, 1)}`,
    notes:
      `${human(SIZES.publishLatencyRate / B, 0)} batches of ${B}/s; achieved ${human(sw.latency.achievedRate)}/${human(base.latency.achievedRate)} events/s` +
      (behind ? " (overloaded: publishes skipped)" : "") +
      (loss ? `; receipts ${sw.latency.matched}/${sw.latency.expected}, ${base.latency.matched}/${base.latency.expected}` : "") +
      busyNote(sw.latency.cpuPercent, base.latency.cpuPercent),
  });
  notes.push(
    `publish API: Switchyard's POST /api/v1/events (admin token; ${B} custom events per call, each to one \`pool:<id>\` room, ` +
      "checked, stored and numbered as one unit, then broadcast) on node B, with the subscribers on node A (through Redis); " +
      "the baseline pair driven the same way: POST /publish-batch to baseline B emits each event once (no auth, no storage), " +
      "subscribers on baseline A. 'no subscribers': the publish path alone (node A only gets the Redis messages). " +
      `'deliveries/s': the publisher stays at most ${human(SIZES.publishMaxBacklog, 0)} events ahead of the deliveries, so both ` +
      "are measured at node A's delivery capacity without piling up in Redis (unbounded, the bare pair outran its " +
      "subscriber node until Redis cut the adapter's subscription at its 32 MB pub/sub output limit and events were lost). " +
      "Latency: open loop at the offered rate, from each batch's scheduled time to each receipt.",
  );
  writeResult("publish", {
    rooms: rooms.length,
    subscribersPerRoom: perRoom,
    batch: B,
    batchesInFlight: C,
    maxBacklogEvents: SIZES.publishMaxBacklog,
    durationMs: SIZES.publishMs,
    latency: { offeredEventsPerSecond: SIZES.publishLatencyRate, durationMs: SIZES.publishLatencyMs },
    switchyard: sw,
    baseline: base,
  });
}

// ---------------------------------------------------------------------------------------------- replay

async function replayScenario(): Promise<void> {
  const created = await publisher!.call<Array<{ status: number; body: { pool?: { id: string } } }>>("http", {
    url: nodeA!.url,
    method: "POST",
    path: "/api/v1/pools",
    bodies: [{ name: "replay" }],
    token: tokens.replay,
    concurrency: 1,
  });
  const poolId = created[0]?.body.pool?.id;
  if (!poolId) throw new Error(`could not create the replay pool: ${JSON.stringify(created[0]).slice(0, 300)}`);
  const room = `pool:${poolId}`;
  const { cursor } = await publisher!.call<{ cursor: string }>("headCursor", { url: nodeA!.url, nsp: "/pools", token: tokens.replay, room });
  log(`replay: storing ${SIZES.replayEvents} events in ${room}`);
  const meter = cpuMeter({ server: nodeA! });
  meter.start();
  const [seed, seedProfile] = await profiled(nodeA!, "replay seeding", () =>
    publisher!.call<{ calls: number; failed: number; startTs: number; endTs: number; errors: string[] }>("publish", {
      url: nodeA!.url,
      spec: { kind: "switchyard-scale", token: tokens.replay },
      pools: [poolId],
      concurrency: 8,
      durationMs: 600_000,
      limit: SIZES.replayEvents,
    }),
  );
  if (seed.failed > 0) throw new Error(`seeding failed: ${seed.errors.join("; ")}`);
  const seedCpu = meter.stop();
  const seedRate = (seed.calls * 1000) / (seed.endTs - seed.startTs);
  log(`  stored at ${human(seedRate)} events/s (one room, 8 concurrent REST calls); cpu ${cpuText(seedCpu)}`);
  type ReplayResult = { perClient: Array<{ ok: boolean; replayed: number; received: number; ms: number; error?: unknown }>; totalMs: number };
  const one = await publisher!.call<ReplayResult>("replay", { url: nodeA!.url, nsp: "/pools", token: tokens.replay, room, after: cursor, clients: 1 });
  const many = await publisher!.call<ReplayResult>("replay", { url: nodeA!.url, nsp: "/pools", token: tokens.replay, room, after: cursor, clients: SIZES.replayClients });
  const check = (r: ReplayResult): void => {
    const bad = r.perClient.find((c) => !c.ok || c.received !== SIZES.replayEvents);
    if (bad) throw new Error(`replay incomplete: ${JSON.stringify(bad).slice(0, 300)}`);
  };
  check(one);
  check(many);
  const oneRate = (SIZES.replayEvents * 1000) / one.perClient[0]!.ms;
  const manyRate = (SIZES.replayEvents * SIZES.replayClients * 1000) / many.totalMs;
  const perClientMs = summarize(many.perClient.map((c) => c.ms));
  log(`  1 client: ${human(oneRate)} events/s; ${SIZES.replayClients} at once: ${human(manyRate)} events/s total, p99 ${ms(perClientMs.p99)} ms to ack`);
  rows.push({
    scenario: `replay ${human(SIZES.replayEvents, 0)} events`,
    metric: "events/s, 1 client",
    switchyard: human(oneRate),
    baseline: "n/a",
    ratio: "n/a",
    notes: `subscribe {after} -> ack, ${ms(one.perClient[0]!.ms)} ms`,
  });
  rows.push({
    scenario: `replay ${human(SIZES.replayEvents, 0)} events`,
    metric: `events/s, ${SIZES.replayClients} clients at once`,
    switchyard: human(manyRate),
    baseline: "n/a",
    ratio: "n/a",
    notes: `slowest ack ${ms(perClientMs.max)} ms`,
  });
  rows.push({
    scenario: "publish into one room",
    metric: "events/s stored",
    switchyard: human(seedRate),
    baseline: "n/a",
    ratio: "n/a",
    notes: "replay seeding: 8 concurrent scale calls on one pool",
  });
  writeResult("replay", {
    room,
    events: SIZES.replayEvents,
    seeding: { ...seed, eventsPerSecond: seedRate, cpuPercent: seedCpu, profile: seedProfile },
    oneClient: { ...one, eventsPerSecond: oneRate },
    manyClients: { ...many, clients: SIZES.replayClients, eventsPerSecondTotal: manyRate, perClientMs },
  });
}

// ---------------------------------------------------------------------------------------------- main

async function cleanup(): Promise<void> {
  log("cleaning up");
  await Promise.allSettled([...clients, ...(publisher ? [publisher] : [])].map((c) => c.stop()));
  await Promise.allSettled([nodeA, nodeB, baseA, baseB, bareWorker].filter((s): s is ServerHandle => s !== undefined).map((s) => s.stop()));
  await stopAll();
  if (dbCreated) {
    await dropDatabase(DATABASE_URL).catch((error: unknown) => log(`could not drop the bench database: ${(error as Error).message}`));
  }
  try {
    log(`deleted ${await deleteRedisKeys(REDIS_URL, `bench-${RUN}`)} Redis keys under bench-${RUN}`);
  } catch (error) {
    log(`could not delete Redis keys: ${(error as Error).message}`);
  }
}

let cleaningUp: Promise<void> | undefined;
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    interrupted = true;
    log(`${signal}: stopping`);
    cleaningUp ??= cleanup();
    void cleaningUp.finally(() => process.exit(130));
  });
}
process.on("exit", killAllNow);

async function main(): Promise<void> {
  mkdirSync(LOG_DIR, { recursive: true });
  log(`run ${RUN} (${SIZE}): scenarios ${SCENARIOS.join(", ")}; logs in ${path.relative(repoRoot, LOG_DIR)}`);
  await runCommand("bash", ["scripts/ensure-services.sh"], path.join(LOG_DIR, "ensure-services.log"));
  const generate = !existsSync(path.join(repoRoot, "src", "generated", "prisma", "client.ts"));
  dbCreated = true;
  // The migrations take a while (Prisma's JS schema engine): start the baseline and the load generators meanwhile.
  clients = Array.from({ length: SIZES.loadClients }, (_, i) => LoadClient.spawn(`load-${i}`, path.join(LOG_DIR, `load-${i}.log`)));
  publisher = LoadClient.spawn("publisher", path.join(LOG_DIR, "publisher.log"));
  const switchyardReady = runCommand(
    process.execPath,
    ["--import", "tsx", "scripts/bench/db.ts", DATABASE_URL, ...(generate ? ["--generate"] : [])],
    path.join(LOG_DIR, "db-setup.log"),
  ).then(() => {
    log(`database ${baseDbUrl.pathname.slice(1)} ready`);
    return startSwitchyard(`bench-${RUN}-a`, switchyardEnv(), path.join(LOG_DIR, "switchyard-a.log"));
  });
  const baselineReady = startBaseline(`baseline-${RUN}-a`, baselineEnv(), path.join(LOG_DIR, "baseline-a.log"));
  // Both settle before either is used, so a failure of one still lets cleanup() stop the other.
  const [sw, base] = await Promise.allSettled([switchyardReady, baselineReady]);
  if (sw.status === "fulfilled") nodeA = sw.value;
  if (base.status === "fulfilled") baseA = base.value;
  if (sw.status === "rejected") throw sw.reason;
  if (base.status === "rejected") throw base.reason;
  await Promise.all([...clients, publisher].map((c) => c.ready));
  log(`switchyard ${nodeA!.url} (pid ${nodeA!.pid}), baseline ${baseA!.url} (pid ${baseA!.pid}), ${clients.length} load clients + 1 publisher`);

  const scenarios: Record<Scenario, () => Promise<void>> = {
    sharding: shardingScenario,
    idle: idleScenario,
    fanout: fanoutScenario,
    latency: latencyScenario,
    publish: publishScenario,
    tasks: tasksScenario,
    replay: replayScenario,
  };
  for (const name of SCENARIOS) {
    if (interrupted) break;
    const t0 = now();
    log(`=== ${name}`);
    try {
      await scenarios[name]();
    } catch (error) {
      failures.push(`${name}: ${(error as Error).message}`);
      log(`scenario ${name} FAILED: ${(error as Error).stack ?? error}`);
      rows.push({ scenario: name, metric: "FAILED", switchyard: "-", baseline: "-", ratio: "-", notes: (error as Error).message.split("\n")[0]!.slice(0, 120) });
      await closeSockets().catch(() => undefined);
      await Promise.allSettled([nodeB?.stop(), baseB?.stop(), bareWorker?.stop()]);
      nodeB = baseB = bareWorker = undefined;
    }
    log(`=== ${name} done in ${((now() - t0) / 1000).toFixed(1)} s`);
  }
}

let exitCode = 0;
try {
  await main();
} catch (error) {
  failures.push((error as Error).message);
  log(`FAILED: ${(error as Error).stack ?? error}`);
} finally {
  cleaningUp ??= cleanup();
  await cleaningUp;
}
if (failures.length > 0) exitCode = 1;

const elapsed = (now() - startedAt) / 1000;
const m = machineInfo();
process.stdout.write(
  `\nSwitchyard bench (${SIZE}) — ${m.cpuCount}x ${m.cpuModel}, ${(m.totalMemBytes / 2 ** 30).toFixed(0)} GiB, node ${m.node}, ${elapsed.toFixed(0)} s\n` +
    "Ratios are Switchyard / baseline measured in the same run (load generators share the 2 cores: compare ratios, not absolutes).\n\n",
);
process.stdout.write(formatTable(["scenario", "metric", "switchyard", "baseline", "ratio", "notes"], rows.map((r) => [r.scenario, r.metric, r.switchyard, r.baseline, r.ratio, r.notes])) + "\n");
if (notes.length > 0) process.stdout.write("\n" + notes.map((n) => `* ${n}`).join("\n") + "\n");
if (failures.length > 0) {
  process.stdout.write(`\nFAILED (logs kept in ${path.relative(repoRoot, LOG_DIR)}):\n${failures.map((f) => `  ${f.split("\n")[0]}`).join("\n")}\n`);
} else {
  rmSync(LOG_DIR, { recursive: true, force: true });
  try {
    rmdirSync(path.dirname(LOG_DIR)); // bench/results/tmp, when nothing else (profiles, failed runs) is kept there
  } catch {
    // not empty
  }
}
process.stdout.write(`results: ${path.relative(repoRoot, RESULTS_DIR)}/<scenario>-${SIZE}.json\n`);
process.exit(exitCode);
