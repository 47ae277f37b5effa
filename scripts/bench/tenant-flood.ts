// `npx tsx scripts/bench/tenant-flood.ts [--rounds 4] [--seconds 5] [--rest-rate 200] [--no-sockets] [--no-tasks] [--profile]`
//
// Fairness under one tenant's flood, on one Switchyard node with the default limits (except
// MAX_CONNECTIONS_PER_TENANT, lowered so the socket flood reaches it, and REST_RATE_PER_TENANT with --rest-rate).
// Tenant B reads `GET /api/v1/tasks` at a steady pace throughout. The run alternates quiet windows with flood
// windows, `--rounds` times `--seconds` each, so that a machine whose own load drifts (a shared one) weighs on both
// phases alike. In a flood window tenant A, from a separate process, submits tasks with 100 requests in flight and
// opens twice as many sockets as its quota (they are closed at the end of the window, and opened again in the next).
// Prints B's latency per phase (all windows of a phase pooled) and what A got (202s, 429s, sockets admitted and
// refused). The database (switchyard_flood_<rand>) and Redis keys (flood-<rand>) it creates are removed at the end.
// No thresholds: the figures go to docs/reliability.md.

import { fork, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, rmdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { dropDatabase } from "../../src/db/setup.js";
import { HttpClient, mintToken, round, sleep, summarize, type Summary } from "./lib.js";
import { cpuSeconds, deleteRedisKeys, killAllNow, repoRoot, runCommand, startProfile, startSwitchyard, stopAll, summarizeProfile, type ServerHandle } from "./procs.js";
import { openMany, type RawSocket } from "./raw-socket.js";

/** What the flooding process reports at the end of a flood window. */
interface FloodReport {
  submissions: number;
  byStatus: Record<string, number>;
  sockets: { tried: number; connected: number; refused: number; firstRefusal: string | undefined };
}

const IN_FLIGHT = 100;
const CONNECTION_QUOTA = 1000;
/** B's pace: one request at a time, then this pause (about 50 requests per second, far below its own limit). */
const B_PAUSE_MS = 20;

/**
 * The flooding process (tenant A): on "start", opens 2 × the quota of sockets and keeps IN_FLIGHT task submissions
 * going; on "stop", closes its sockets and reports the window.
 */
function floodProcess(url: string, token: string, what: { sockets: boolean; tasks: boolean }): void {
  const http = new HttpClient(url, IN_FLIGHT);
  let running = false;
  let window: FloodReport;
  let work: Promise<unknown> = Promise.resolve();
  let held: RawSocket[] = [];
  const submitter = async (): Promise<void> => {
    while (running) {
      window.submissions++;
      const status = await http
        .request("POST", "/api/v1/tasks", { type: "echo", payload: { n: window.submissions } }, { authorization: `Bearer ${token}` })
        .then((r) => String(r.status), () => "error");
      window.byStatus[status] = (window.byStatus[status] ?? 0) + 1;
    }
  };
  const openSockets = async (): Promise<void> => {
    const tried = what.sockets ? 2 * CONNECTION_QUOTA : 0;
    const opened = await openMany({ url, nsp: "/tasks", token, count: tried, concurrency: 50, roomOf: () => undefined, onEvent: () => undefined });
    held = opened.sockets;
    window.sockets = { tried, connected: opened.connected, refused: opened.failed, firstRefusal: opened.errors[0]?.slice(0, 160) };
  };
  process.on("message", (message: "start" | "stop" | "exit") => {
    if (message === "start") {
      running = true;
      window = { submissions: 0, byStatus: {}, sockets: { tried: 0, connected: 0, refused: 0, firstRefusal: undefined } };
      work = Promise.all([openSockets(), ...Array.from({ length: what.tasks ? IN_FLIGHT : 0 }, submitter)]);
    } else if (message === "stop") {
      running = false;
      void work.then(() => {
        for (const socket of held.splice(0)) socket.terminate();
        process.send!(window);
      });
    } else {
      http.close();
      process.exit(0);
    }
  });
  // The bench went away (finished or crashed): so does the flood.
  process.on("disconnect", () => process.exit(0));
  process.send!("ready");
}

class FloodControl {
  private constructor(private readonly child: ChildProcess) {}

  static async start(url: string, token: string, flags: string[]): Promise<FloodControl> {
    const child = fork(fileURLToPath(import.meta.url), ["--flood", url, token, ...flags], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
    await new Promise<void>((resolve, reject) => {
      child.once("message", () => resolve());
      child.once("exit", (code) => reject(new Error(`the flooding process exited with ${code}`)));
    });
    return new FloodControl(child);
  }

  begin(): void {
    this.child.send("start");
  }

  end(): Promise<FloodReport> {
    const report = new Promise<FloodReport>((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`the flooding process exited with ${code}`));
      this.child.once("exit", onExit);
      this.child.once("message", (message) => {
        this.child.off("exit", onExit);
        resolve(message as FloodReport);
      });
    });
    this.child.send("stop");
    return report;
  }

  close(): void {
    if (this.child.connected) this.child.send("exit");
  }
}

/** B's `GET /api/v1/tasks`, one at a time, for `seconds`: latencies of its 200s in ms, and what else it got. */
async function measure(http: HttpClient, token: string, seconds: number, into: number[], other: Record<string, number>): Promise<void> {
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) {
    const started = performance.now();
    const outcome = await http.request("GET", "/api/v1/tasks?limit=50", undefined, { authorization: `Bearer ${token}` }).then(
      (response) => String(response.status),
      (error: Error & { code?: string }) => error.code ?? error.message,
    );
    if (outcome === "200") into.push(performance.now() - started);
    else other[outcome] = (other[outcome] ?? 0) + 1;
    await sleep(B_PAUSE_MS);
  }
}

function ms(summary: Summary): string {
  return `p50 ${round(summary.p50, 1)} ms, p99 ${round(summary.p99, 1)} ms (max ${round(summary.max, 1)}, n=${summary.count})`;
}

function add(total: FloodReport, window: FloodReport): void {
  total.submissions += window.submissions;
  for (const [status, n] of Object.entries(window.byStatus)) total.byStatus[status] = (total.byStatus[status] ?? 0) + n;
  total.sockets.tried += window.sockets.tried;
  total.sockets.connected += window.sockets.connected;
  total.sockets.refused += window.sockets.refused;
  total.sockets.firstRefusal ??= window.sockets.firstRefusal;
}

async function main(): Promise<void> {
  const option = (name: string, fallback: number): number => {
    const at = process.argv.indexOf(name);
    return at > 0 ? Number(process.argv[at + 1]) : fallback;
  };
  const rounds = option("--rounds", 4);
  const seconds = option("--seconds", 5);
  const restRate = option("--rest-rate", 200);
  const run = randomBytes(4).toString("hex");
  const redisUrl = process.env.REDIS_URL || "redis://127.0.0.1:6379";
  const secret = `flood-secret-${run}-${randomBytes(16).toString("hex")}`;
  const dbUrl = new URL(process.env.DATABASE_URL || "postgresql://postgres@127.0.0.1:5432/switchyard");
  dbUrl.pathname = `/switchyard_flood_${run}`;
  const logDir = path.join(repoRoot, "bench", "results", "tmp", `flood-${run}`);
  mkdirSync(logDir, { recursive: true });
  const log = (message: string): void => void process.stderr.write(`[flood] ${message}\n`);

  let node: ServerHandle | undefined;
  let flood: FloodControl | undefined;
  let succeeded = false;
  try {
    await runCommand("bash", ["scripts/ensure-services.sh"], path.join(logDir, "ensure-services.log"));
    const generate = !existsSync(path.join(repoRoot, "src", "generated", "prisma", "client.ts"));
    await runCommand(process.execPath, ["--import", "tsx", "scripts/bench/db.ts", dbUrl.toString(), ...(generate ? ["--generate"] : [])], path.join(logDir, "db-setup.log"));
    node = await startSwitchyard(
      `flood-${run}`,
      {
        DATABASE_URL: dbUrl.toString(),
        REDIS_URL: redisUrl,
        REDIS_PREFIX: `flood-${run}`,
        JWT_SECRET: secret,
        LOG_LEVEL: "info",
        MAX_CONNECTIONS_PER_TENANT: String(CONNECTION_QUOTA),
        REST_RATE_PER_TENANT: String(restRate),
      },
      path.join(logDir, "switchyard.log"),
    );
    const tokenB = mintToken(secret, "tenant-b");
    const http = new HttpClient(node.url, 4);
    // B has a page of tasks to read (50, one at a time: within its own limit), and the node is warm.
    for (let i = 0; i < 50; i++) await http.request("POST", "/api/v1/tasks", { type: "echo", payload: { i } }, { authorization: `Bearer ${tokenB}` });
    await measure(http, tokenB, 2, [], {});
    flood = await FloodControl.start(node.url, mintToken(secret, "tenant-a"), process.argv.filter((a) => a === "--no-sockets" || a === "--no-tasks"));

    const quiet: number[] = [];
    const flooded: number[] = [];
    const notOk = { quiet: {} as Record<string, number>, flood: {} as Record<string, number> };
    const a: FloodReport = { submissions: 0, byStatus: {}, sockets: { tried: 0, connected: 0, refused: 0, firstRefusal: undefined } };
    const cpu = { quiet: 0, flood: 0 };
    const profile = process.argv.includes("--profile") ? await startProfile(node) : undefined;
    const loadBefore = os.loadavg()[0]!;
    for (let round = 1; round <= rounds; round++) {
      log(`round ${round}/${rounds}: ${seconds} s quiet, then ${seconds} s of tenant A's flood`);
      let before = cpuSeconds(node.pid);
      await measure(http, tokenB, seconds, quiet, notOk.quiet);
      cpu.quiet += cpuSeconds(node.pid) - before;
      before = cpuSeconds(node.pid);
      flood.begin();
      await measure(http, tokenB, seconds, flooded, notOk.flood);
      add(a, await flood.end());
      cpu.flood += cpuSeconds(node.pid) - before;
    }
    const profiled = await profile?.stop();
    const metrics = (await http.request("GET", "/metrics")).body;
    const limited = [...metrics.matchAll(/^switchyard_rate_limited_total\{[^}]*kind="(\w+)"[^}]*\} (\S+)$/gm)].map(([, kind, n]) => `${kind} ${n}`).join(", ");
    http.close();

    const [q, f] = [summarize(quiet), summarize(flooded)];
    const floodSeconds = rounds * seconds;
    const percent = (cpuS: number): number => round((cpuS / floodSeconds) * 100, 0);
    const out = [
      `tenant-flood: ${rounds} rounds of ${seconds} s quiet + ${seconds} s flood; one node, REST_RATE_PER_TENANT=${restRate}, MAX_CONNECTIONS_PER_TENANT=${CONNECTION_QUOTA}; ` +
        `${os.cpus().length} CPUs, 1-min load average ${loadBefore.toFixed(1)} at the start, ${os.loadavg()[0]!.toFixed(1)} at the end`,
      `  tenant B GET /api/v1/tasks, quiet:  ${ms(q)}; not 200: ${JSON.stringify(notOk.quiet)}`,
      `  tenant B GET /api/v1/tasks, flood:  ${ms(f)}; not 200: ${JSON.stringify(notOk.flood)}`,
      `  B's p99 flood / quiet: ${round(f.p99 / q.p99, 2)}x, p50 ${round(f.p50 / q.p50, 2)}x; the node's CPU ${percent(cpu.quiet)}% quiet, ${percent(cpu.flood)}% in the floods (of one core)`,
      `  tenant A: ${a.submissions} submissions (${round(a.submissions / floodSeconds, 0)}/s), by status ${JSON.stringify(a.byStatus)}`,
      `  tenant A sockets: ${a.sockets.connected} of ${a.sockets.tried} admitted, ${a.sockets.refused} refused (${a.sockets.firstRefusal ?? "none"})`,
      `  switchyard_rate_limited_total: ${limited}`,
    ];
    if (profiled) {
      const top = summarizeProfile(profiled, 12);
      out.push(`  node CPU by caller (whole run): ${top.byCaller.map(([k, v]) => `${k} ${v}%`).join(", ")}`);
    }
    process.stdout.write(out.join("\n") + "\n");
    succeeded = true;
  } finally {
    flood?.close();
    await node?.stop();
    await stopAll();
    await dropDatabase(dbUrl.toString()).catch((error: unknown) => log(`could not drop ${dbUrl.pathname.slice(1)}: ${(error as Error).message}`));
    await deleteRedisKeys(redisUrl, `flood-${run}`).catch((error: unknown) => log(`could not delete Redis keys: ${(error as Error).message}`));
    if (!succeeded) log(`logs kept in ${path.relative(repoRoot, logDir)}`);
    else {
      rmSync(logDir, { recursive: true, force: true });
      try {
        rmdirSync(path.dirname(logDir)); // bench/results/tmp, when nothing else is kept there
      } catch {
        // not empty
      }
    }
  }
}

process.on("exit", killAllNow);
if (process.argv[2] === "--flood") {
  const [, , , url, token] = process.argv;
  floodProcess(url!, token!, { sockets: !process.argv.includes("--no-sockets"), tasks: !process.argv.includes("--no-tasks") });
} else {
  await main();
}
