/**
 * Private Redis and PostgreSQL servers for outage tests: each on a free port, in a temp dir of its own, so a
 * test can stop, restart or wipe them without touching the machine's shared services (127.0.0.1:6379 and
 * 127.0.0.1:5432 are never stopped, restarted or flushed by anything here).
 *
 *   const redis = await startPrivateRedis();   redis.url; await redis.stop(); await redis.start(); await redis.destroy();
 *   const pg = await startPrivatePostgres();   pg.url (…/switchyard, migrated); await pg.stop(); await pg.start(); await pg.destroy();
 *
 * Every service is registered (on globalThis, like server.ts does for nodes) so that `destroyAllPrivateServices()`
 * (call it from an after/afterEach hook) and, as a last resort, a synchronous process 'exit' handler stop what a
 * failed test left running. Temp dirs carry the owning test process's pid: a later run reaps the services of a
 * run that died before it could clean up (kill -9 of mocha).
 */
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { chown, mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { setupDatabase } from "../../src/db/setup.js";

const DIR_PREFIX = "switchyard-private-";

interface Registered {
  kind: "redis" | "postgres";
  dir: string;
  destroy: () => Promise<void>;
  /** Best effort, synchronous: for the process 'exit' handler, where nothing asynchronous runs any more. */
  destroySync: () => void;
}

const registry = globalThis as typeof globalThis & { __switchyardPrivateServices?: Set<Registered>; __switchyardPrivateExitHook?: boolean };
const services = (registry.__switchyardPrivateServices ??= new Set<Registered>());
if (!registry.__switchyardPrivateExitHook) {
  registry.__switchyardPrivateExitHook = true;
  process.on("exit", () => {
    for (const service of services) {
      try {
        service.destroySync();
      } catch {
        // Nothing more can be done while exiting.
      }
    }
  });
}

/** Stops and removes every private service still registered (what a failed test left behind). */
export async function destroyAllPrivateServices(): Promise<void> {
  await Promise.allSettled([...services].map((s) => s.destroy()));
}

// ---------------------------------------------------------------------------------------------- small tools

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program without a shell; never rejects (the exit code says how it went). */
function run(file: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, encoding: "utf8" }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === "number" ? (error as { code: number }).code : 1) : 0;
      resolve({ code, stdout: stdout ?? "", stderr: stderr ?? (error ? error.message : "") });
    });
  });
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

function which(program: string): string | undefined {
  for (const dir of (process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin").split(":")) {
    const candidate = path.join(dir, program);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** Whether a process exists and has not exited (a zombie waiting for its parent to reap it counts as exited). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S …": the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, "utf8").split("\n")[0]!.trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Processes whose parent is `pid` (from /proc: PostgreSQL's backends and helpers are the postmaster's children). */
function childPids(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return children;
}

/** pause()/resume() for a server whose main process's pid `pidOf` reads (from its pid file). */
function freezer(pidOf: () => number | undefined): { pause: () => void; resume: () => void; readonly paused: boolean } {
  let paused = false;
  const signal = (name: NodeJS.Signals): void => {
    const main = pidOf();
    if (main === undefined) return;
    for (const pid of [main, ...childPids(main)]) {
      try {
        process.kill(pid, name);
      } catch {
        // Exited meanwhile.
      }
    }
  };
  return {
    pause() {
      signal("SIGSTOP");
      paused = true;
    },
    resume() {
      if (!paused) return;
      signal("SIGCONT");
      paused = false;
    },
    get paused() {
      return paused;
    },
  };
}

async function waitUntil(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** A port that was free a moment ago (the kernel hands out a fresh ephemeral one). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function makeDir(kind: Registered["kind"], port: number): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `${DIR_PREFIX}${kind}-`));
  writeFileSync(path.join(dir, "owner.json"), JSON.stringify({ pid: process.pid, kind, port }));
  return dir;
}

// ------------------------------------------------------------------------------------- leftovers of dead runs

let reaped = false;

/**
 * Stops the private services of test processes that no longer exist (a mocha killed -9 cannot clean up) and
 * removes their dirs. Only dirs this module made (prefix + owner.json) are touched. Runs once per process.
 */
function reapOrphans(): void {
  if (reaped) return;
  reaped = true;
  let entries: string[];
  try {
    entries = readdirSync(os.tmpdir()).filter((name) => name.startsWith(DIR_PREFIX));
  } catch {
    return;
  }
  for (const name of entries) {
    const dir = path.join(os.tmpdir(), name);
    let owner: { pid?: number; kind?: string };
    try {
      owner = JSON.parse(readFileSync(path.join(dir, "owner.json"), "utf8")) as typeof owner;
    } catch {
      continue;
    }
    if (typeof owner.pid !== "number" || isAlive(owner.pid)) continue;
    try {
      if (owner.kind === "redis") killRedisSync(dir);
      else if (owner.kind === "postgres") stopPostgresSync(dir);
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // Leave it for a later run.
    }
  }
}

// ---------------------------------------------------------------------------------------------------- Redis

/** A server a test starts on a free port in a temp dir, stops and starts again to inject a fault, and removes. */
export interface PrivateService {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** Whether the server is up (as far as this helper started and stopped it). */
  readonly running: boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * Freezes the server (SIGSTOP to it and its child processes): connections stay open and nothing answers, the
   * way a hung host or a long GC pause looks from a client. `resume()` thaws it; `stop()` and `destroy()` do too.
   */
  pause(): void;
  resume(): void;
  /** Stops it (if running) and removes its dir. */
  destroy(): Promise<void>;
  /** The server's log (for failure messages). */
  log(): string;
}

/**
 * `start()` after `stop()` comes back with no data (no RDB, no AOF): the "Redis lost its data" fault.
 * `stop()` is `redis-cli shutdown nosave`, and waits until the process is gone.
 */
export type PrivateRedis = PrivateService;

/** Why private Redis servers cannot be started here, or undefined if they can. */
export function privateRedisUnavailable(): string | undefined {
  if (!which("redis-server")) return "redis-server is not installed (apt-get install redis-server)";
  if (!which("redis-cli")) return "redis-cli is not installed";
  return undefined;
}

function killRedisSync(dir: string): void {
  const pid = readPid(path.join(dir, "r.pid"));
  if (pid !== undefined && isAlive(pid) && readCmdline(pid).includes("redis-server")) process.kill(pid, "SIGKILL");
}

function readCmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
  } catch {
    return "";
  }
}

async function redisPing(port: number): Promise<boolean> {
  const result = await run("redis-cli", ["-h", "127.0.0.1", "-p", String(port), "ping"], 5000);
  return result.code === 0 && result.stdout.trim() === "PONG";
}

export async function startPrivateRedis(extraArgs: readonly string[] = []): Promise<PrivateRedis> {
  const unavailable = privateRedisUnavailable();
  if (unavailable) throw new Error(`cannot start a private Redis: ${unavailable}`);
  reapOrphans();
  const port = await freePort();
  const dir = await makeDir("redis", port);
  const pidFile = path.join(dir, "r.pid");
  const logFile = path.join(dir, "r.log");
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--daemonize",
    "yes",
    "--dir",
    dir,
    "--pidfile",
    pidFile,
    "--logfile",
    logFile,
    ...extraArgs,
  ];
  let running = false;
  let destroyed = false;

  const start = async (): Promise<void> => {
    if (destroyed) throw new Error("private Redis was destroyed");
    if (running) return;
    const result = await run("redis-server", args);
    if (result.code !== 0)
      throw new Error(`redis-server on port ${port} did not start (${result.code}): ${result.stderr}${result.stdout}\n${readLog()}`);
    running = true;
    await waitUntil(() => redisPing(port), 10_000, `private Redis on port ${port} to answer PING`);
  };

  const frozen = freezer(() => readPid(pidFile));
  const stop = async (): Promise<void> => {
    if (!running) return;
    frozen.resume();
    const pid = readPid(pidFile);
    await run("redis-cli", ["-h", "127.0.0.1", "-p", String(port), "shutdown", "nosave"], 10_000);
    if (pid !== undefined) {
      try {
        await waitUntil(() => !isAlive(pid), 10_000, `private Redis (pid ${pid}) to exit`);
      } catch {
        process.kill(pid, "SIGKILL");
        await waitUntil(() => !isAlive(pid), 5000, `private Redis (pid ${pid}) to die`);
      }
    } else {
      await waitUntil(async () => !(await redisPing(port)), 10_000, `private Redis on port ${port} to stop answering`);
    }
    running = false;
  };

  const readLog = (): string => {
    try {
      return readFileSync(logFile, "utf8");
    } catch {
      return "";
    }
  };

  const registered: Registered = {
    kind: "redis",
    dir,
    destroy: async () => {
      if (destroyed) return;
      try {
        await stop();
      } finally {
        destroyed = true;
        services.delete(registered);
        await rm(dir, { recursive: true, force: true });
      }
    },
    destroySync: () => {
      frozen.resume();
      killRedisSync(dir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  services.add(registered);
  try {
    await start();
  } catch (error) {
    await registered.destroy().catch(() => {});
    throw error;
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    get running() {
      return running;
    },
    start,
    stop,
    pause: frozen.pause,
    resume: frozen.resume,
    destroy: registered.destroy,
    log: readLog,
  };
}

// ------------------------------------------------------------------------------------------- Redis Cluster

/** A Redis Cluster of private servers (Redis 7: sharded pub/sub), for the cluster tests. */
export interface PrivateRedisCluster {
  /** Every server, masters first (in slot order), then replicas. */
  readonly nodes: readonly PrivateRedis[];
  /** "127.0.0.1:p1,127.0.0.1:p2,...": the masters, as REDIS_CLUSTER_NODES takes them. */
  readonly spec: string;
  /** The server that is master of `key`'s slot now. */
  masterOf(key: string): Promise<PrivateRedis>;
  /** Makes a replica of `master` take over (CLUSTER FAILOVER on the replica) and waits until the cluster agrees. */
  failover(master: PrivateRedis): Promise<PrivateRedis>;
  destroy(): Promise<void>;
}

async function cli(port: number, ...args: string[]): Promise<string> {
  const result = await run("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args], 30_000);
  if (result.code !== 0) throw new Error(`redis-cli -p ${port} ${args.join(" ")}: ${result.stderr}${result.stdout}`);
  return result.stdout;
}

/** Starts `masters` masters, each with `replicasPerMaster` replicas, joined with `redis-cli --cluster create`. */
export async function startPrivateRedisCluster(masters = 3, replicasPerMaster = 0): Promise<PrivateRedisCluster> {
  const nodes: PrivateRedis[] = [];
  const destroy = async (): Promise<void> => {
    await Promise.allSettled(nodes.map((node) => node.destroy()));
  };
  try {
    for (let i = 0; i < masters * (1 + replicasPerMaster); i++) {
      // Short node timeout: a failover in a test should take seconds, not the default 15.
      nodes.push(
        await startPrivateRedis(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"]),
      );
    }
    const create = await run(
      "redis-cli",
      ["--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-replicas", String(replicasPerMaster), "--cluster-yes"],
      60_000,
    );
    if (create.code !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
    await waitUntil(
      async () => {
        for (const node of nodes) if (!(await cli(node.port, "cluster", "info")).includes("cluster_state:ok")) return false;
        return true;
      },
      30_000,
      "the Redis Cluster to report cluster_state:ok on every node",
    );
    if (replicasPerMaster > 0) {
      // Replicas must have synced before a failover can promote them.
      await waitUntil(
        async () => {
          for (const node of nodes) {
            const info = await cli(node.port, "info", "replication");
            if (info.includes("role:slave") && !info.includes("master_link_status:up")) return false;
          }
          return true;
        },
        30_000,
        "the replicas to sync",
      );
    }
  } catch (error) {
    await destroy();
    throw error;
  }
  const byPort = (port: number): PrivateRedis => {
    const node = nodes.find((n) => n.port === port);
    if (!node) throw new Error(`no cluster node on port ${port}`);
    return node;
  };
  const live = nodes.filter((n) => n.running);
  const masterOf = async (key: string): Promise<PrivateRedis> => {
    const slot = Number((await cli(live[0]!.port, "cluster", "keyslot", key)).trim());
    const shards = (await cli(live[0]!.port, "cluster", "slots")).split("\n").map((l) => l.trim());
    // `cluster slots` prints, per range: start, end, then the master's ip and port, then replicas'.
    for (let i = 0; i + 3 < shards.length; i++) {
      const start = Number(shards[i]);
      const end = Number(shards[i + 1]);
      if (Number.isInteger(start) && Number.isInteger(end) && shards[i + 2] === "127.0.0.1" && slot >= start && slot <= end) {
        return byPort(Number(shards[i + 3]));
      }
    }
    throw new Error(`no master found for slot ${slot}`);
  };
  const failover = async (master: PrivateRedis): Promise<PrivateRedis> => {
    const myId = (await cli(master.port, "cluster", "myid")).trim();
    // Right after a failover the demoted master becomes the new master's replica through gossip: the new master
    // lists it a moment later, so wait for the line instead of reading it once.
    let replicaLine: string | undefined;
    await waitUntil(
      async () => {
        const lines = (await cli(master.port, "cluster", "nodes")).split("\n");
        replicaLine = lines.find((line) => line.includes(` slave ${myId} `) || line.includes(`slave ${myId}`));
        return replicaLine !== undefined;
      },
      30_000,
      `master on port ${master.port} to list a replica`,
    );
    if (!replicaLine) throw new Error(`master on port ${master.port} has no replica`);
    const replica = byPort(Number(/:(\d+)@/.exec(replicaLine)![1]));
    // A replica still syncing (a master demoted a moment ago re-syncs) does not take over: wait for its link.
    await waitUntil(
      async () => {
        const info = await cli(replica.port, "info", "replication");
        return info.includes("master_link_status:up") && info.includes("master_sync_in_progress:0");
      },
      30_000,
      `the replica on port ${replica.port} to be in sync`,
    );
    const tookOver = async (): Promise<boolean> =>
      (await cli(replica.port, "info", "replication")).includes("role:master") &&
      (await cli(master.port, "info", "replication")).includes("role:slave");
    // A manual failover gives up after a few seconds when the masters will not vote yet (they refuse a second
    // failover of the same shard within twice the node timeout): ask again.
    for (let attempt = 1; ; attempt++) {
      await cli(replica.port, "cluster", "failover");
      try {
        await waitUntil(tookOver, 10_000, `the replica on port ${replica.port} to take over from ${master.port} (attempt ${attempt})`);
        break;
      } catch (error) {
        if (attempt === 3) throw error;
      }
    }
    await waitUntil(
      async () => (await cli(replica.port, "cluster", "info")).includes("cluster_state:ok"),
      30_000,
      "cluster_state:ok after the failover",
    );
    return replica;
  };
  return {
    nodes,
    spec: nodes
      .slice(0, masters)
      .map((n) => `127.0.0.1:${n.port}`)
      .join(","),
    masterOf,
    failover,
    destroy,
  };
}

// ----------------------------------------------------------------------------------------------- PostgreSQL

/**
 * `url` is postgresql://postgres@127.0.0.1:PORT/<database>, created and migrated. `start()` is `pg_ctl start`
 * on the same data dir and port (the data survives); `stop()` is `pg_ctl stop -m fast` (connections are cut).
 */
export interface PrivatePostgres extends PrivateService {
  /** How long the first start took (initdb, start, create + migrate), in ms. */
  readonly setupMs: { initdb: number; migrate: number };
}

/** The bin dir of the installed PostgreSQL (PG_BIN overrides; otherwise the newest under /usr/lib/postgresql). */
function postgresBin(): string | undefined {
  if (process.env.PG_BIN) return existsSync(path.join(process.env.PG_BIN, "pg_ctl")) ? process.env.PG_BIN : undefined;
  try {
    const versions = readdirSync("/usr/lib/postgresql")
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const version of versions) {
      const bin = `/usr/lib/postgresql/${version}/bin`;
      if (existsSync(path.join(bin, "initdb")) && existsSync(path.join(bin, "pg_ctl"))) return bin;
    }
  } catch {
    // Not installed there.
  }
  const initdb = which("initdb");
  return initdb && which("pg_ctl") ? path.dirname(initdb) : undefined;
}

/** initdb refuses to run as root: as root, the server runs as this OS user (via su); otherwise as ourselves. */
const POSTGRES_OS_USER = "postgres";
const isRoot = (): boolean => process.getuid?.() === 0;

function postgresUserIds(): { uid: number; gid: number } | undefined {
  try {
    const uid = Number(execFileSync("id", ["-u", POSTGRES_OS_USER], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim());
    const gid = Number(execFileSync("id", ["-g", POSTGRES_OS_USER], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim());
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : undefined;
  } catch {
    return undefined;
  }
}

/** Why private PostgreSQL servers cannot be started here, or undefined if they can. */
export function privatePostgresUnavailable(): string | undefined {
  if (!postgresBin()) return "PostgreSQL server binaries (initdb, pg_ctl) are not installed (apt-get install postgresql; or set PG_BIN)";
  if (!which("pg_isready")) return "pg_isready is not installed";
  if (isRoot()) {
    if (!which("su")) return "running as root, and initdb refuses root, but there is no `su` to run it as the postgres user";
    if (!postgresUserIds()) return `running as root, and initdb refuses root, but there is no "${POSTGRES_OS_USER}" OS user to run it as`;
  }
  return undefined;
}

/** Runs a PostgreSQL program as the user that owns the cluster. */
function runAsPostgres(argv: string[], timeoutMs = 60_000): Promise<RunResult> {
  if (!isRoot()) return run(argv[0]!, argv.slice(1), timeoutMs);
  return run("su", [POSTGRES_OS_USER, "-s", "/bin/bash", "-c", argv.map(shellQuote).join(" ")], timeoutMs);
}

function runAsPostgresSync(argv: string[]): void {
  if (!isRoot()) spawnSync(argv[0]!, argv.slice(1), { stdio: "ignore", timeout: 20_000 });
  else spawnSync("su", [POSTGRES_OS_USER, "-s", "/bin/bash", "-c", argv.map(shellQuote).join(" ")], { stdio: "ignore", timeout: 20_000 });
}

function stopPostgresSync(dir: string): void {
  const data = path.join(dir, "data");
  const pid = readPid(path.join(data, "postmaster.pid"));
  if (pid === undefined || !isAlive(pid)) return;
  const bin = postgresBin();
  if (bin) runAsPostgresSync([path.join(bin, "pg_ctl"), "-D", data, "stop", "-m", "immediate", "-w", "-t", "15"]);
  if (isAlive(pid)) process.kill(pid, "SIGKILL");
}

export async function startPrivatePostgres(options: { database?: string } = {}): Promise<PrivatePostgres> {
  const unavailable = privatePostgresUnavailable();
  if (unavailable) throw new Error(`cannot start a private PostgreSQL: ${unavailable}`);
  reapOrphans();
  const bin = postgresBin()!;
  const port = await freePort();
  const dir = await makeDir("postgres", port);
  if (isRoot()) {
    const ids = postgresUserIds()!;
    await chown(dir, ids.uid, ids.gid);
  }
  const data = path.join(dir, "data");
  const logFile = path.join(dir, "log");
  // fsync off: a clean (fast) stop loses nothing, and on a 2-core test machine it keeps checkpoints cheap.
  const serverOptions = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
  const database = options.database ?? "switchyard";
  const url = `postgresql://postgres@127.0.0.1:${port}/${database}`;
  let running = false;
  let destroyed = false;

  const readLog = (): string => {
    try {
      return readFileSync(logFile, "utf8");
    } catch {
      return "";
    }
  };

  const isReady = async (): Promise<boolean> =>
    (await run("pg_isready", ["-q", "-h", "127.0.0.1", "-p", String(port), "-t", "2"], 5000)).code === 0;

  const start = async (): Promise<void> => {
    if (destroyed) throw new Error("private PostgreSQL was destroyed");
    if (running) return;
    const result = await runAsPostgres(
      [path.join(bin, "pg_ctl"), "-D", data, "-o", serverOptions, "-l", logFile, "-w", "-t", "60", "start"],
      70_000,
    );
    if (result.code !== 0)
      throw new Error(`pg_ctl start (port ${port}) failed (${result.code}): ${result.stderr}${result.stdout}\n${readLog().slice(-3000)}`);
    running = true;
    await waitUntil(isReady, 30_000, `private PostgreSQL on port ${port} to accept connections (pg_isready)`);
  };

  const frozen = freezer(() => readPid(path.join(data, "postmaster.pid")));
  const stop = async (): Promise<void> => {
    if (!running) return;
    frozen.resume();
    const result = await runAsPostgres([path.join(bin, "pg_ctl"), "-D", data, "stop", "-m", "fast", "-w", "-t", "30"], 40_000);
    if (result.code !== 0) throw new Error(`pg_ctl stop (port ${port}) failed (${result.code}): ${result.stderr}${result.stdout}`);
    running = false;
  };

  const registered: Registered = {
    kind: "postgres",
    dir,
    destroy: async () => {
      if (destroyed) return;
      try {
        await stop().catch(() => stopPostgresSync(dir));
      } finally {
        destroyed = true;
        services.delete(registered);
        await rm(dir, { recursive: true, force: true });
      }
    },
    destroySync: () => {
      frozen.resume();
      stopPostgresSync(dir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  services.add(registered);
  const setupMs = { initdb: 0, migrate: 0 };
  try {
    let t = Date.now();
    const init = await runAsPostgres(
      [path.join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "--encoding=UTF8", "--no-locale"],
      120_000,
    );
    if (init.code !== 0) throw new Error(`initdb failed (${init.code}): ${init.stderr}${init.stdout}`);
    await start();
    setupMs.initdb = Date.now() - t;
    t = Date.now();
    await setupDatabase(url, { generate: false });
    setupMs.migrate = Date.now() - t;
  } catch (error) {
    await registered.destroy().catch(() => {});
    throw error;
  }
  return {
    port,
    url,
    dir,
    get running() {
      return running;
    },
    start,
    stop,
    pause: frozen.pause,
    resume: frozen.resume,
    destroy: registered.destroy,
    log: readLog,
    setupMs,
  };
}

// ------------------------------------------------------------------------------------------- DB inspection

export interface TaskRowLite {
  id: string;
  status: string;
  attempts: number;
  type: string;
  updatedAt: Date;
}

export interface EventRowLite {
  room: string;
  seq: number;
  eventId: string;
  type: string;
}

/**
 * Read-only look into a Switchyard database with node-postgres (not the server's Prisma client): every session
 * is `default_transaction_read_only`, so a test cannot write through it by mistake. A pool, so it reconnects by
 * itself after the server was restarted (a query while it is down rejects).
 */
export class DbInspector {
  private readonly pool: pg.Pool;

  constructor(readonly url: string) {
    this.pool = new pg.Pool({
      connectionString: url,
      max: 2,
      connectionTimeoutMillis: 5000,
      idleTimeoutMillis: 1000,
      options: "-c default_transaction_read_only=on",
    });
    // An idle connection cut by a server stop must not crash the test process.
    this.pool.on("error", () => {});
  }

  async query<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
    return (await this.pool.query<T>(sql, params)).rows;
  }

  async tasks(tenantId: string): Promise<TaskRowLite[]> {
    return this.query<TaskRowLite>(
      `SELECT id, status, attempts, type, "updatedAt" FROM "Task" WHERE "tenantId" = $1 ORDER BY "createdAt", id`,
      [tenantId],
    );
  }

  /** Number of tasks per status. */
  async statusCounts(tenantId: string): Promise<Record<string, number>> {
    const rows = await this.query<{ status: string; n: string }>(
      `SELECT status, count(*) AS n FROM "Task" WHERE "tenantId" = $1 GROUP BY status`,
      [tenantId],
    );
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  }

  /** Every stored event of one room, by sequence number. */
  async roomEvents(tenantId: string, namespace: string, room: string): Promise<EventRowLite[]> {
    return this.query<EventRowLite>(
      `SELECT r.room, r.seq, r."eventId", e.type FROM "RoomEvent" r JOIN "Event" e ON e.id = r."eventId"
        WHERE r."tenantId" = $1 AND r.namespace = $2 AND r.room = $3 ORDER BY r.seq`,
      [tenantId, namespace, room],
    );
  }

  /** Every stored event of the tenant's per-task rooms (`task:<id>` in /tasks), by room and sequence number. */
  async taskRoomEvents(tenantId: string): Promise<EventRowLite[]> {
    return this.query<EventRowLite>(
      `SELECT r.room, r.seq, r."eventId", e.type FROM "RoomEvent" r JOIN "Event" e ON e.id = r."eventId"
        WHERE r."tenantId" = $1 AND r.namespace = 'tasks' AND r.room LIKE 'task:%' ORDER BY r.room, r.seq`,
      [tenantId],
    );
  }

  /** The worker each task.started and task.completed of the tenant's task rooms names, by room and sequence number. */
  async taskRuns(tenantId: string): Promise<Array<{ room: string; seq: number; type: string; workerId: string | null }>> {
    return this.query<{ room: string; seq: number; type: string; workerId: string | null }>(
      `SELECT r.room, r.seq, e.type, e.data->'task'->>'workerId' AS "workerId" FROM "RoomEvent" r JOIN "Event" e ON e.id = r."eventId"
        WHERE r."tenantId" = $1 AND r.namespace = 'tasks' AND r.room LIKE 'task:%' AND e.type IN ('task.started', 'task.completed') ORDER BY r.room, r.seq`,
      [tenantId],
    );
  }

  /** Room places (one per event and room) and stored events of the tenant (each stored once). */
  async eventCounts(tenantId: string): Promise<{ rows: number; events: number }> {
    const [row] = await this.query<{ rows: string; events: string }>(
      `SELECT (SELECT count(*) FROM "RoomEvent" WHERE "tenantId" = $1) AS rows, (SELECT count(*) FROM "Event" WHERE "tenantId" = $1) AS events`,
      [tenantId],
    );
    return { rows: Number(row?.rows ?? 0), events: Number(row?.events ?? 0) };
  }

  /** The epoch of a room's log (part of every cursor), if the room has one. */
  async roomEpoch(tenantId: string, namespace: string, room: string): Promise<string | undefined> {
    const [row] = await this.query<{ epoch: string }>(
      `SELECT epoch FROM "RoomSequence" WHERE "tenantId" = $1 AND namespace = $2 AND room = $3`,
      [tenantId, namespace, room],
    );
    return row?.epoch;
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => {});
  }
}
