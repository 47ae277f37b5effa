// What every bench script sets up the same way: a run id, a database, a Redis prefix and a log directory of the
// run's own, the Switchyard nodes and bare peers it starts, and their removal at the end. `npm run bench`
// (run.ts) and the standalone scripts (worker-modes.ts, cold-rooms.ts, …) share it, so that a script cannot
// forget a piece of the cleanup or start a node with another environment by accident.

import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, rmdirSync, rmSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { dropDatabase } from "../../src/db/setup.js";

/**
 * `--node-env KEY=VALUE[,KEY=VALUE…]`: settings every Switchyard node of the run gets (e.g. WS_COMPRESSION=true),
 * to measure a node option against the same run's bare peer. It is part of the command a result records.
 */
const NODE_ENV: Record<string, string> = (() => {
  const argv = process.argv.slice(2);
  const inline = argv.find((arg) => arg.startsWith("--node-env="))?.slice("--node-env=".length);
  const value = inline ?? (argv.includes("--node-env") ? argv[argv.indexOf("--node-env") + 1] : undefined);
  if (value === undefined) return {};
  return Object.fromEntries(
    value.split(",").map((pair) => {
      const match = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(pair.trim());
      if (!match) throw new Error(`--node-env: "${pair}" is not KEY=VALUE`);
      return [match[1]!, match[2]!];
    }),
  );
})();
import {
  deleteRedisKeys,
  killAllNow,
  repoRoot,
  runCommand,
  startBaseline,
  startBullmqWorker,
  startSwitchyard,
  stopAll,
  type ServerHandle,
} from "./procs.js";

/** A database URL on the configured server (DATABASE_URL) with the database name replaced: `switchyard_<name>`. */
export function benchDatabaseUrl(name: string): string {
  const url = new URL(process.env.DATABASE_URL || "postgresql://postgres@127.0.0.1:5432/switchyard");
  url.pathname = `/switchyard_${name}`;
  return url.toString();
}

/** `work` on a connection of its own to `databaseUrl` (a probe of a run's database: statistics, WAL, seeding). */
export async function withDatabase<T>(databaseUrl: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Per-tenant limits out of reach of a script that measures what a node does, not where the limits cut in. */
export const LIMITS_OUT_OF_REACH = { REST_RATE_PER_TENANT: "100000", NODE_WORK_CONCURRENCY: "256", TENANT_WORK_CONCURRENCY: "256" };

export interface BenchRunOptions {
  /** Names the run's database (`switchyard_<tag>_<id>`), Redis prefix and logs (`<tag>-<id>`) and secret. */
  tag: string;
  /** Progress lines, to stderr; `[<tag>] message` unless given. */
  log?: (message: string) => void;
  /** The log directory's name under bench/results/tmp; `<tag>-<id>` unless given. */
  logDirName?: (id: string) => string;
}

let exitHookInstalled = false;

export class BenchRun {
  readonly id = randomBytes(4).toString("hex");
  readonly redisUrl = process.env.REDIS_URL || "redis://127.0.0.1:6379";
  readonly tag: string;
  /** Every Redis key the run makes starts with it (nodes' REDIS_PREFIX, adapter keys, bare BullMQ prefixes). */
  readonly prefix: string;
  readonly secret: string;
  readonly databaseUrl: string;
  readonly logDir: string;
  /** Bare BullMQ's prefix, under the run's prefix so that the cleanup finds its keys. */
  readonly barePrefix: string;
  readonly log: (message: string) => void;
  private readonly servers = new Set<ServerHandle>();
  private databaseCreated = false;

  constructor(options: BenchRunOptions) {
    this.tag = options.tag;
    this.prefix = `${options.tag}-${this.id}`;
    this.barePrefix = `${this.prefix}-bare:bull`;
    this.secret = `${options.tag}-secret-${this.id}-${randomBytes(16).toString("hex")}`;
    this.databaseUrl = benchDatabaseUrl(`${options.tag}_${this.id}`);
    this.logDir = path.join(repoRoot, "bench", "results", "tmp", options.logDirName?.(this.id) ?? this.prefix);
    this.log = options.log ?? ((message) => void process.stderr.write(`[${options.tag}] ${message}\n`));
    mkdirSync(this.logDir, { recursive: true });
    // Children must not outlive a bench that exits on an uncaught error.
    if (!exitHookInstalled) process.on("exit", killAllNow);
    exitHookInstalled = true;
  }

  logFile(name: string): string {
    return path.join(this.logDir, `${name}.log`);
  }

  /** The database's name, for progress lines. */
  get databaseName(): string {
    return new URL(this.databaseUrl).pathname.slice(1);
  }

  ensureServices(): Promise<void> {
    return runCommand("bash", ["scripts/ensure-services.sh"], this.logFile("ensure-services"));
  }

  /**
   * Creates and migrates the run's database in a child process (scripts/bench/db.ts), so that the Prisma CLI's
   * output goes to a log rather than to the bench's stdout; generates the Prisma client first when it is missing.
   */
  setupDatabase(): Promise<void> {
    const generate = !existsSync(path.join(repoRoot, "src", "generated", "prisma", "client.ts"));
    this.databaseCreated = true;
    return runCommand(
      process.execPath,
      ["--import", "tsx", "scripts/bench/db.ts", this.databaseUrl, ...(generate ? ["--generate"] : [])],
      this.logFile("db-setup"),
    );
  }

  /**
   * The environment every bench node gets: the run's database, Redis prefix and secret, the log level whose
   * "listening" line startSwitchyard waits for, and the settings given with `--node-env` (a node option under test).
   */
  switchyardEnv(env: Record<string, string> = {}): Record<string, string> {
    return {
      DATABASE_URL: this.databaseUrl,
      REDIS_URL: this.redisUrl,
      REDIS_PREFIX: this.prefix,
      JWT_SECRET: this.secret,
      LOG_LEVEL: "info",
      ...NODE_ENV,
      ...env,
    };
  }

  /** A Switchyard node named `<prefix>[-<node>]`, logging to `switchyard[-<node>].log`; `env` is added to switchyardEnv(). */
  startSwitchyard(env: Record<string, string> = {}, node?: string): Promise<ServerHandle> {
    const suffix = node ? `-${node}` : "";
    return this.track(startSwitchyard(`${this.prefix}${suffix}`, this.switchyardEnv(env), this.logFile(`switchyard${suffix}`)));
  }

  /** A bare Socket.IO + redis-adapter server (baseline-server.ts); every one of a run shares one adapter key, so two make a pair. */
  startBaseline(node: string): Promise<ServerHandle> {
    const env = { REDIS_URL: this.redisUrl, ADAPTER_KEY: `${this.prefix}-baseline:socket.io`, JWT_SECRET: this.secret };
    return this.track(startBaseline(`baseline-${this.id}-${node}`, env, this.logFile(`baseline-${node}`)));
  }

  /** The bare BullMQ worker (bullmq-worker.ts) on `queue` under barePrefix. */
  startBareWorker(queue: string, concurrency: number): Promise<ServerHandle> {
    const env = { REDIS_URL: this.redisUrl, BULL_PREFIX: this.barePrefix, QUEUE: queue, WORKER_CONCURRENCY: String(concurrency) };
    return this.track(startBullmqWorker(`bullmq-${this.id}`, env, this.logFile("bullmq-worker")));
  }

  private async track(starting: Promise<ServerHandle>): Promise<ServerHandle> {
    const server = await starting;
    // Stopping a server twice is harmless: the cleanup stops every one, also those a scenario stopped already.
    this.servers.add(server);
    return server;
  }

  /** Stops whatever the run started, drops its database and deletes its Redis keys; reports what failed, throws nothing. */
  async cleanup(): Promise<void> {
    await Promise.allSettled([...this.servers].map((server) => server.stop()));
    this.servers.clear();
    await stopAll();
    if (this.databaseCreated) {
      await dropDatabase(this.databaseUrl).catch((error: unknown) =>
        this.log(`could not drop the database ${this.databaseName}: ${(error as Error).message}`),
      );
    }
    try {
      this.log(`deleted ${await deleteRedisKeys(this.redisUrl, this.prefix)} Redis keys under ${this.prefix}`);
    } catch (error) {
      this.log(`could not delete Redis keys: ${(error as Error).message}`);
    }
  }

  /** Removes the run's logs, and bench/results/tmp when nothing else (profiles, failed runs) is kept there. */
  removeLogs(): void {
    rmSync(this.logDir, { recursive: true, force: true });
    try {
      rmdirSync(path.dirname(this.logDir));
    } catch {
      // not empty
    }
  }
}

/**
 * A standalone bench script's frame: services up, the run's database made, `body` run, then everything removed.
 * The logs are removed when `body` succeeded and kept (and pointed to) when it failed.
 */
export async function benchRun(options: BenchRunOptions, body: (run: BenchRun) => Promise<void>): Promise<void> {
  const run = new BenchRun(options);
  let succeeded = false;
  try {
    await run.ensureServices();
    await run.setupDatabase();
    await body(run);
    succeeded = true;
  } finally {
    await run.cleanup();
    if (succeeded) run.removeLogs();
    else run.log(`logs kept in ${path.relative(repoRoot, run.logDir)}`);
  }
}
