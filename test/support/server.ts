import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { TEST_DATABASE_URL, TEST_JWT_SECRET, TEST_REDIS_PREFIX, TEST_REDIS_URL } from "./env.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
// On globalThis because mocha may load support modules twice (the --require hooks and the specs).
const registry = globalThis as typeof globalThis & { __switchyardServers?: Set<ServerProcess> };
const running = (registry.__switchyardServers ??= new Set<ServerProcess>());

export interface ServerProcess {
  url: string;
  port: number;
  nodeId: string;
  process: ChildProcess;
  logs(): string;
  /** SIGTERM and wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL (a crash) and wait for exit. */
  kill(): Promise<void>;
  exited: Promise<number | null>;
}

let nodeCounter = 0;

/** stop (SIGTERM, resolves with the exit code) and kill (SIGKILL, a crash) for a spawned process. */
function controls(child: ChildProcess, exited: Promise<number | null>, forget: () => void) {
  const signal = async (name: NodeJS.Signals): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(name);
    const code = await exited;
    forget();
    return code;
  };
  return {
    stop: () => signal("SIGTERM"),
    kill: async (): Promise<void> => {
      await signal("SIGKILL");
    },
  };
}

/** Starts a real Switchyard node (`src/main.ts`) on a free port and waits until it listens. */
export async function startServer(env: Record<string, string> = {}): Promise<ServerProcess> {
  const nodeId = env.NODE_ID ?? `test-node-${process.pid}-${++nodeCounter}`;
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? "",
      PORT: "0",
      HOST: "127.0.0.1",
      NODE_ID: nodeId,
      DATABASE_URL: TEST_DATABASE_URL,
      REDIS_URL: TEST_REDIS_URL,
      REDIS_PREFIX: TEST_REDIS_PREFIX,
      JWT_SECRET: TEST_JWT_SECRET,
      EMBEDDED_WORKER: "true",
      TASK_BACKOFF_MS: "100",
      TASK_LOCK_MS: "3000",
      LOG_LEVEL: "info",
      SHUTDOWN_TIMEOUT_MS: "5000",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node ${nodeId} did not start in time:\n${output}`)), 30_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const match = /"port":(\d+)[^\n]*"msg":"switchyard listening"/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    if (process.env.TEST_SERVER_LOGS) {
      child.stdout.pipe(process.stderr);
      child.stderr.pipe(process.stderr);
    }
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`node ${nodeId} exited with ${code} before listening:\n${output}`));
    });
  });
  const server: ServerProcess = {
    // With a certificate the node serves HTTPS only.
    url: `${env.TLS_CERT_FILE ? "https" : "http"}://127.0.0.1:${port}`,
    port,
    nodeId,
    process: child,
    logs: () => output,
    exited,
    ...controls(child, exited, () => running.delete(server)),
  };
  running.add(server);
  return server;
}

/** Kills whatever a test left running (a failed test must not leave processes behind). */
export async function killAllServers(): Promise<void> {
  await Promise.all([...running].map((s) => s.kill()));
  await Promise.all([...workers].map((w) => w.kill()));
}

/** Warnings and errors the running servers logged: printed when a test fails, to see the server's side. */
export function serverProblems(): string {
  const lines: string[] = [];
  for (const server of running) {
    for (const line of server.logs().split("\n")) {
      if (/"level":(40|50|60)/.test(line) || /^\S*Error/.test(line)) lines.push(`[${server.nodeId}] ${line.slice(0, 2000)}`);
    }
  }
  return lines.slice(-20).join("\n");
}

export interface WorkerProcess {
  process: ChildProcess;
  logs(): string;
  /** Resolves when the worker logged that it connected to a server (optionally the n-th time). */
  connected(times?: number): Promise<void>;
  stop(): Promise<number | null>;
  kill(): Promise<void>;
  exited: Promise<number | null>;
}

const workers = ((globalThis as typeof globalThis & { __switchyardWorkers?: Set<WorkerProcess> }).__switchyardWorkers ??=
  new Set<WorkerProcess>());

/** Starts a real standalone pool worker (`src/worker/main.ts`) against the given server URL(s). */
export function startWorker(options: {
  token: string;
  poolId: string;
  urls: string[];
  env?: Record<string, string>;
  args?: string[];
}): WorkerProcess {
  const child = spawn(process.execPath, ["--import", "tsx", "src/worker/main.ts", "--pool", options.poolId, ...(options.args ?? [])], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? "",
      WORKER_TOKEN: options.token,
      SWITCHYARD_URL: options.urls.join(","),
      REDIS_URL: TEST_REDIS_URL,
      REDIS_PREFIX: TEST_REDIS_PREFIX,
      TASK_LOCK_MS: "3000",
      TASK_BACKOFF_MS: "100",
      SHUTDOWN_TIMEOUT_MS: "10000",
      ...options.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer): void => {
    output += chunk.toString();
    for (const listener of listeners) listener();
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  if (process.env.TEST_SERVER_LOGS) child.stdout.pipe(process.stderr);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const worker: WorkerProcess = {
    process: child,
    logs: () => output,
    exited,
    connected(times = 1) {
      const count = (): number => (output.match(/"msg":"connected"/g) ?? []).length;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`worker did not connect ${times} time(s):\n${output}`)), 20_000);
        const check = (): void => {
          if (count() >= times) {
            clearTimeout(timer);
            listeners.delete(check);
            resolve();
          }
        };
        listeners.add(check);
        void exited.then(() => reject(new Error(`worker exited:\n${output}`)));
        check();
      });
    },
    ...controls(child, exited, () => workers.delete(worker)),
  };
  workers.add(worker);
  return worker;
}

/** Kills the pool workers a test started (each test leaves no process behind). */
export async function killAllWorkers(): Promise<void> {
  await Promise.all([...workers].map((w) => w.kill()));
}
