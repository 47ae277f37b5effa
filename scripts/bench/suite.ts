// The state `npm run bench` shares between its scenarios (scripts/bench/scenarios/*.ts): the servers and load
// generators it started, the table's rows and notes, and the calls every scenario makes on them (sockets opened
// and closed on the load generators, delivery counts, bench pools, CPU meters, profiles, result files).

import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { BenchRun } from "./bench-run.js";
import { machineInfo, mintToken, now, sleep } from "./lib.js";
import { COMMAND, PROFILE, SIZE, SIZES, type Scenario } from "./options.js";
import { CpuMeter, repoRoot, startProfile, summarizeProfile, type LoadClient, type ServerHandle } from "./procs.js";

export interface Row {
  scenario: string;
  metric: string;
  switchyard: string;
  baseline: string;
  ratio: string;
  notes: string;
}

export type ProfileSummary = ReturnType<typeof summarizeProfile>;

export interface ConnectSummary {
  connected: number;
  subscribed: number;
  failed: number;
  errors: string[];
  ms: number;
  perSecond: number;
}

export interface Totals {
  received: number;
  firstTs: number;
  lastTs: number;
}

export const RESULTS_DIR = path.join(repoRoot, "bench", "results");

function spread(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

export class Suite {
  readonly rows: Row[] = [];
  readonly notes: string[] = [];
  readonly tokens: { bench: string; idle: string; tasks: string; replay: string };
  readonly profileDir: string;
  /** Node A and baseline A live for the whole run; B, the second of each pair, only for the scenarios that need two. */
  nodeA: ServerHandle | undefined;
  nodeB: ServerHandle | undefined;
  baseA: ServerHandle | undefined;
  baseB: ServerHandle | undefined;
  bareWorker: ServerHandle | undefined;
  clients: LoadClient[] = [];
  publisher: LoadClient | undefined;
  private readonly benchPools: string[] = [];

  constructor(
    readonly run: BenchRun,
    readonly log: (message: string) => void,
  ) {
    this.tokens = {
      bench: mintToken(run.secret, "bench"),
      idle: mintToken(run.secret, "idle"),
      tasks: mintToken(run.secret, "tasks"),
      replay: mintToken(run.secret, "replay"),
    };
    this.profileDir = path.join(RESULTS_DIR, "tmp", `profiles-${run.id}`);
  }

  switchyardEnv(): Record<string, string> {
    return this.run.switchyardEnv({
      EMBEDDED_WORKER: "true",
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
    });
  }

  /** Node B and baseline B, for the two-node runs. */
  async startSecondNodes(): Promise<{ nodeB: ServerHandle; baseB: ServerHandle }> {
    [this.nodeB, this.baseB] = await Promise.all([this.run.startSwitchyard(this.switchyardEnv(), "b"), this.run.startBaseline("b")]);
    return { nodeB: this.nodeB, baseB: this.baseB };
  }

  async stopSecondNodes(): Promise<void> {
    await Promise.all([this.nodeB?.stop(), this.baseB?.stop()]);
    this.nodeB = this.baseB = undefined;
  }

  writeResult(scenario: Scenario, results: unknown): void {
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
    this.log(`wrote ${path.relative(repoRoot, file)}`);
  }

  /** Opens `count` subscribed sockets spread over the load clients; socket i (globally) subscribes rooms[i % n]. */
  async connectSockets(server: ServerHandle, nsp: string, token: string, rooms: string[], count: number): Promise<ConnectSummary> {
    const shares = spread(count, this.clients.length);
    let offset = 0;
    const t0 = now();
    const results = await Promise.all(
      this.clients.map((client, i) => {
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
    if (summary.failed > 0)
      this.log(`  ${summary.failed} of ${count} sockets failed on ${server.name}: ${summary.errors.slice(0, 3).join("; ")}`);
    return summary;
  }

  async closeSockets(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.call("closeAll")));
    await sleep(500);
  }

  async record(mode: "none" | "count" | "latency"): Promise<void> {
    await Promise.all(this.clients.map((c) => c.call("record", { mode })));
  }

  async totals(): Promise<Totals> {
    const stats = await Promise.all(this.clients.map((c) => c.call<Totals>("stats", {})));
    return {
      received: stats.reduce((s, x) => s + x.received, 0),
      firstTs: Math.min(...stats.map((x) => x.firstTs || Infinity)),
      lastTs: Math.max(...stats.map((x) => x.lastTs)),
    };
  }

  /** Waits until the subscribers received `expected` events, or nothing arrived for `quietMs`. */
  async drain(expected: number, quietMs = 1000, maxMs = 20_000): Promise<Totals> {
    const start = now();
    let last = -1;
    let changedAt = now();
    for (;;) {
      const t = await this.totals();
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
  async ensureBenchPools(n: number): Promise<string[]> {
    const benchPools = this.benchPools;
    if (benchPools.length >= n) return benchPools.slice(0, n);
    const bodies = Array.from({ length: n - benchPools.length }, (_, i) => ({ name: `bench-pool-${benchPools.length + i}` }));
    const t0 = now();
    const results = await this.publisher!.call<Array<{ status: number; body: { pool?: { id: string } } }>>("http", {
      url: this.nodeA!.url,
      method: "POST",
      path: "/api/v1/pools",
      bodies,
      token: this.tokens.bench,
      concurrency: 16,
    });
    const bad = results.filter((r) => r.status !== 201);
    if (bad.length > 0) throw new Error(`creating pools failed: ${JSON.stringify(bad[0]).slice(0, 300)}`);
    benchPools.push(...results.map((r) => r.body.pool!.id));
    this.log(`created ${bodies.length} pools in ${((now() - t0) / 1000).toFixed(1)} s`);
    return benchPools.slice(0, n);
  }

  /**
   * With --profile, runs `fn` under V8's CPU profiler in `server` (and in `alsoServer`, the node holding the
   * subscribers in two-node runs), saves the .cpuprofile files and returns where the time went (self time by
   * package, by function and by calling package); without it, just runs `fn`.
   */
  async profiled<T>(
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
      await Promise.all(sessions.map(async (s) => s?.stop()));
      throw error;
    }
    const profiles = await Promise.all(sessions.map(async (s) => s?.stop()));
    const summaries = profiles.map((profile, i) => {
      if (!profile) return undefined;
      mkdirSync(this.profileDir, { recursive: true });
      const role = i === 0 ? "" : "subscribers-";
      const file = path.join(this.profileDir, `${targets[i]!.kind}-${role}${label.replace(/[^A-Za-z0-9_.-]+/g, "-")}.cpuprofile`);
      writeFileSync(file, JSON.stringify(profile));
      const summary = summarizeProfile(profile);
      this.log(
        `  profile ${path.relative(repoRoot, file)} (by calling package): ${summary.byCaller
          .slice(0, 8)
          .map(([k, v]) => `${k} ${v}%`)
          .join(", ")}`,
      );
      return summary;
    });
    return [result, summaries[0], summaries[1]];
  }

  /** CPU use (% of one core) of the given servers, the load generators, the publisher, PostgreSQL and Redis. */
  cpuMeter(servers: Record<string, ServerHandle>): CpuMeter {
    return new CpuMeter(() => ({
      ...Object.fromEntries(Object.entries(servers).map(([name, s]) => [name, [s.pid]])),
      loadClients: this.clients.map((c) => c.child.pid!),
      publisher: [this.publisher!.child.pid!],
    }));
  }
}
