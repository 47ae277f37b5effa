// Processes the bench starts: Switchyard nodes, baseline servers and load generators. Every one is registered
// so that run.ts can stop them all, whatever happens.

import { fork, spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, readdirSync, readFileSync, writeFileSync, type WriteStream } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { HttpClient, sleep } from "./lib.js";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const benchDir = path.dirname(fileURLToPath(import.meta.url));

const children = new Set<ChildProcess>();

/** Stops every child still running: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopAll(graceMs = 8000): Promise<void> {
  await Promise.all([...children].map((child) => stopChild(child, graceMs)));
}

export async function stopChild(child: ChildProcess, graceMs = 8000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    children.delete(child);
    return;
  }
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
  children.delete(child);
}

/** Last resort when the parent itself is exiting: synchronous SIGKILL of everything left. */
export function killAllNow(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
}

/** Runs a command to completion in the repository, its output to `logFile`; rejects with the output's end on failure. */
export function runCommand(command: string, args: string[], logFile: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: repoRoot, env: process.env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr.on("data", (c: Buffer) => (output += c.toString()));
    child.on("error", reject);
    child.on("exit", (code) => {
      writeFileSync(logFile, output);
      if (code === 0) resolve();
      else reject(new Error(`${command} ${args.join(" ")} exited with ${code}:\n${output.slice(-2000)}`));
    });
  });
}

export { deleteRedisKeys } from "../../test/support/redis-cleanup.js";

export interface ServerHandle {
  kind: "switchyard" | "baseline" | "bullmq-worker";
  name: string;
  url: string;
  port: number;
  pid: number;
  child: ChildProcess;
  inspectorUrl: string | undefined;
  http: HttpClient;
  stop(): Promise<void>;
}

/**
 * Spawns `node --inspect=127.0.0.1:0 --import tsx <entry>` and waits for its "listening" line. The inspector
 * (loopback, random port) is used only to trigger a full GC before memory samples, on both kinds of server
 * alike, so that per-socket figures measure retained memory rather than garbage not yet collected.
 */
async function startNode(options: {
  kind: ServerHandle["kind"];
  name: string;
  entry: string;
  env: Record<string, string>;
  listening: RegExp;
  logFile: string;
}): Promise<ServerHandle> {
  const child = spawn(process.execPath, ["--inspect=127.0.0.1:0", "--import", "tsx", options.entry], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  const log: WriteStream = createWriteStream(options.logFile);
  let output = "";
  let inspectorUrl: string | undefined;
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  void exited.then(() => log.end());
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${options.name} did not start within 60 s:\n${output.slice(-3000)}`)), 60_000);
    const onData = (chunk: Buffer): void => {
      log.write(chunk);
      if (output.length < 200_000) output += chunk.toString();
      inspectorUrl ??= /Debugger listening on (ws:\/\/\S+)/.exec(output)?.[1];
      const match = options.listening.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1] ?? 0)); // a process without a port (the bare BullMQ worker) matches without a group
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${options.name} exited with ${code} before listening:\n${output.slice(-3000)}`));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  const handle: ServerHandle = {
    kind: options.kind,
    name: options.name,
    url,
    port,
    pid: child.pid!,
    child,
    inspectorUrl,
    http: new HttpClient(url, 16),
    async stop() {
      handle.http.close();
      await stopChild(child);
    },
  };
  return handle;
}

export function startSwitchyard(name: string, env: Record<string, string>, logFile: string): Promise<ServerHandle> {
  return startNode({
    kind: "switchyard",
    name,
    entry: "src/main.ts",
    env: { PORT: "0", HOST: "127.0.0.1", NODE_ID: name, ...env },
    // pino: {"level":30,...,"port":N,...,"msg":"switchyard listening"}
    listening: /"port":(\d+)[^\n]*"msg":"switchyard listening"/,
    logFile,
  });
}

export function startBaseline(name: string, env: Record<string, string>, logFile: string): Promise<ServerHandle> {
  return startNode({
    kind: "baseline",
    name,
    entry: path.relative(repoRoot, path.join(benchDir, "baseline-server.ts")),
    env: { PORT: "0", HOST: "127.0.0.1", NODE_ID: name, ...env },
    listening: /"msg":"baseline listening","port":(\d+)/,
    logFile,
  });
}

/**
 * The bare-BullMQ worker of the tasks scenario (scripts/bench/bullmq-worker.ts), started like the servers
 * (inspector on, so --profile works on it too); it has no port: `url` is meaningless.
 */
export function startBullmqWorker(name: string, env: Record<string, string>, logFile: string): Promise<ServerHandle> {
  return startNode({
    kind: "bullmq-worker",
    name,
    entry: path.relative(repoRoot, path.join(benchDir, "bullmq-worker.ts")),
    env,
    listening: /"msg":"bullmq worker ready"/,
    logFile,
  });
}

/** Full garbage collection in the server process, through its inspector. */
export async function collectGarbage(server: ServerHandle): Promise<boolean> {
  if (!server.inspectorUrl) return false;
  return new Promise<boolean>((resolve) => {
    const ws = new WebSocket(server.inspectorUrl!, { perMessageDeflate: false });
    const timer = setTimeout(() => {
      ws.terminate();
      resolve(false);
    }, 15_000);
    let id = 0;
    const call = (): void => void ws.send(JSON.stringify({ id: ++id, method: "HeapProfiler.collectGarbage" }));
    ws.on("open", call);
    ws.on("message", (data: Buffer) => {
      const message = JSON.parse(data.toString()) as { id?: number };
      if (message.id === undefined) return;
      if (message.id < 2) return call(); // twice: the first pass may leave weakly held objects for the second
      clearTimeout(timer);
      ws.close();
      resolve(true);
    });
    ws.on("error", () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/** Resident set size from /proc/<pid>/status (NaN where there is no /proc). */
export function rssBytes(pid: number): number {
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kb ? Number(kb) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** V8 heap used: Switchyard's /metrics `nodejs_heap_size_used_bytes`, the baseline's /mem heapUsed. */
export async function heapUsedBytes(server: ServerHandle): Promise<number> {
  if (server.kind === "switchyard") {
    const res = await server.http.request("GET", "/metrics");
    const match = /^nodejs_heap_size_used_bytes(?:\{[^}]*\})? ([0-9.e+]+)$/m.exec(res.body);
    return match ? Number(match[1]) : NaN;
  }
  const res = await server.http.request("GET", "/mem");
  return (JSON.parse(res.body) as { heapUsed: number }).heapUsed;
}

export interface MemorySample {
  rssBytes: number;
  heapUsedBytes: number;
  gc: boolean;
}

/** GC, settle, then RSS and heap used (the lowest of a few readings, to drop noise). */
export async function sampleMemory(server: ServerHandle): Promise<MemorySample> {
  const gc = await collectGarbage(server);
  await sleep(300);
  let rss = Infinity;
  let heap = Infinity;
  for (let i = 0; i < 3; i++) {
    heap = Math.min(heap, await heapUsedBytes(server));
    rss = Math.min(rss, rssBytes(server.pid));
    await sleep(100);
  }
  return { rssBytes: rss, heapUsedBytes: heap, gc };
}

/** A forked load generator (scripts/bench/load-client.ts) and its request/response IPC. */
export class LoadClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  readonly ready: Promise<void>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    children.add(child);
    this.ready = new Promise<void>((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`${name} exited with ${code} before it was ready`)));
      child.on("message", (message: { ready?: boolean; id?: number; ok?: boolean; result?: unknown; error?: string }) => {
        if (message.ready) return resolve();
        const entry = message.id === undefined ? undefined : this.pending.get(message.id);
        if (!entry) return;
        this.pending.delete(message.id!);
        if (message.ok) entry.resolve(message.result);
        else entry.reject(new Error(`${name}: ${message.error}`));
      });
    });
    this.ready.catch(() => undefined);
    child.once("exit", (code) => {
      for (const entry of this.pending.values()) entry.reject(new Error(`${name} exited with ${code}`));
      this.pending.clear();
    });
  }

  static spawn(name: string, logFile: string): LoadClient {
    const child = fork(path.join(benchDir, "load-client.ts"), [], {
      cwd: repoRoot,
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" },
    });
    const log = createWriteStream(logFile);
    child.stdout!.pipe(log);
    child.stderr!.pipe(log);
    return new LoadClient(name, child);
  }

  /** Runs `cmd` in the load generator; `T` is what that command of load-client.ts returns (IPC does not check it). */
  call<T = unknown>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: (value) => resolve(value as T), reject });
      this.child.send({ ...args, id, cmd });
    });
  }

  async stop(): Promise<void> {
    if (this.child.connected) await this.call("exit").catch(() => undefined);
    await stopChild(this.child, 3000);
  }
}

/** CPU time (user + system) of a process in seconds, from /proc/<pid>/stat; 0 when it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[11], fields[12]: utime, stime (fields 14 and 15 of stat(5), counted after the comm field)
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** CPU seconds per process whose command name is `comm` (e.g. all PostgreSQL backends). */
export function cpuSecondsByName(comm: string): Map<number, number> {
  const out = new Map<number, number>();
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return out; // no /proc: CPU figures stay at 0
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === comm) out.set(Number(entry), cpuSeconds(Number(entry)));
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

/** Busy CPU seconds of the whole machine (all cores, everything but idle and iowait), from /proc/stat. */
export function machineBusySeconds(): number {
  let line: string;
  try {
    line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
  } catch {
    return NaN;
  }
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return ((v[0] ?? 0) + (v[1] ?? 0) + (v[2] ?? 0) + (v[5] ?? 0) + (v[6] ?? 0) + (v[7] ?? 0)) / 100;
}

/** Measures how busy each group of processes was between start() and stop(), in % of one core. */
export class CpuMeter {
  private startWall = 0;
  private startPids = new Map<string, Map<number, number>>();
  private startMachine = 0;
  constructor(private readonly groups: () => Record<string, number[]>) {}

  private read(): Map<string, Map<number, number>> {
    const out = new Map<string, Map<number, number>>();
    for (const [name, pids] of Object.entries(this.groups())) out.set(name, new Map(pids.map((pid) => [pid, cpuSeconds(pid)])));
    out.set("postgres", cpuSecondsByName("postgres"));
    out.set("redis", cpuSecondsByName("redis-server"));
    return out;
  }

  start(): void {
    this.startWall = performance.now();
    this.startPids = this.read();
    this.startMachine = machineBusySeconds();
  }

  /** Percent of one core per group (200% = both cores of a 2-core machine); `machine` counts everything. */
  stop(): Record<string, number> {
    const wall = (performance.now() - this.startWall) / 1000;
    const out: Record<string, number> = {};
    for (const [name, pids] of this.read()) {
      let used = 0;
      const before = this.startPids.get(name);
      // Per process, so that a process that ended during the window (a closed PostgreSQL backend) cannot make it negative.
      for (const [pid, seconds] of pids) used += Math.max(0, seconds - (before?.get(pid) ?? 0));
      out[name] = Math.round((used / wall) * 100);
    }
    out.machine = Math.round(((machineBusySeconds() - this.startMachine) / wall) * 100);
    return out;
  }
}

interface CpuProfile {
  nodes: Array<{
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    hitCount?: number;
    children?: number[];
  }>;
  startTime: number;
  endTime: number;
  samples?: number[];
}

/**
 * Starts V8's sampling CPU profiler in a server (through its inspector); stop() returns the profile.
 * Used with --profile, to see where a server's time goes during a run.
 */
export async function startProfile(server: ServerHandle): Promise<{ stop(): Promise<CpuProfile | undefined> } | undefined> {
  if (!server.inspectorUrl) return undefined;
  const ws = new WebSocket(server.inspectorUrl, { perMessageDeflate: false, maxPayload: 1024 * 2 ** 20 });
  let id = 0;
  const waiting = new Map<number, (result: unknown) => void>();
  ws.on("message", (data: Buffer) => {
    const message = JSON.parse(data.toString()) as { id?: number; result?: unknown };
    if (message.id !== undefined) waiting.get(message.id)?.(message.result);
  });
  const call = (method: string, params: object = {}): Promise<unknown> =>
    new Promise((resolve) => {
      const n = ++id;
      waiting.set(n, resolve);
      ws.send(JSON.stringify({ id: n, method, params }));
    });
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
  } catch {
    return undefined;
  }
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: 500 });
  await call("Profiler.start");
  return {
    async stop() {
      const result = (await call("Profiler.stop")) as { profile?: CpuProfile } | undefined;
      ws.close();
      return result?.profile;
    },
  };
}

/** The package (node_modules/<pkg>) or source directory (src/<dir>, scripts/bench) a script URL belongs to. */
function packageOf(url: string): string | undefined {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg) return pkg;
  const srcDir = /\/src\/([^/]+)/.exec(url)?.[1];
  if (srcDir) return `src/${srcDir}`;
  if (url.includes("/scripts/bench/")) return url.replace(/^.*\//, "");
  return undefined;
}

/**
 * Self time of a CPU profile grouped by package (node_modules/<pkg>, src/<dir>, node internals) and by function,
 * and `byCaller`: every sample charged to the innermost package or source directory on its stack, so that native
 * work (socket writes, JSON) counts for the package that asked for it (e.g. `writev` under pg's query submit is pg).
 */
export function summarizeProfile(
  profile: CpuProfile,
  top = 15,
): { byPackage: Array<[string, number]>; byFunction: Array<[string, number]>; byCaller: Array<[string, number]> } {
  const counts = new Map<number, number>();
  for (const sample of profile.samples ?? []) counts.set(sample, (counts.get(sample) ?? 0) + 1);
  const total = (profile.samples ?? []).length || 1;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const byPackage = new Map<string, number>();
  const byFunction = new Map<string, number>();
  const byCaller = new Map<string, number>();
  for (const node of profile.nodes) {
    const hits = counts.get(node.id) ?? node.hitCount ?? 0;
    if (hits === 0) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const pkg =
      packageOf(url) ??
      (url.startsWith("node:")
        ? "node internals"
        : url.startsWith("wasm://")
          ? "wasm (Prisma's query compiler)" // the only WebAssembly module in either server
          : url
            ? url.replace(/^.*\//, "")
            : functionName.startsWith("(")
              ? functionName
              : `native ${functionName || "code"}`);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + hits);
    const fn = `${functionName || "(anonymous)"} ${url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*\/src\//, "src/")}:${lineNumber + 1}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + hits);
    let caller: string | undefined;
    for (let id: number | undefined = node.id; id !== undefined && caller === undefined; id = parent.get(id)) {
      const frame = byId.get(id)!.callFrame;
      caller = packageOf(frame.url) ?? (frame.url.startsWith("wasm://") ? "wasm (Prisma's query compiler)" : undefined);
    }
    const callerKey =
      caller ??
      (functionName.startsWith("(") ? functionName : url.startsWith("node:") ? "node internals" : `native ${functionName || "code"}`);
    byCaller.set(callerKey, (byCaller.get(callerKey) ?? 0) + hits);
  }
  const pct = (m: Map<string, number>): Array<[string, number]> =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, v]) => [k, Math.round((v / total) * 1000) / 10]);
  return { byPackage: pct(byPackage), byFunction: pct(byFunction), byCaller: pct(byCaller) };
}
