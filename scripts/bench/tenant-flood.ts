// `npx tsx scripts/bench/tenant-flood.ts [--rounds 4] [--seconds 5] [--rest-rate 200] [--tenant-work 8] [--node-work N] [--no-sockets] [--no-tasks]
//   [--no-history] [--no-revocations] [--no-heartbeats] [--profile]`
//
// The noisy neighbour: fairness under one tenant's flood, on one Switchyard node with the default limits (except
// MAX_CONNECTIONS_PER_TENANT, lowered so the socket flood reaches it, and REST_RATE_PER_TENANT with --rest-rate).
// Tenant B reads `GET /api/v1/tasks` at a steady pace throughout, and runs one echo task at a time, timing each
// from its POST to its `task.completed` on B's dashboard socket. The run alternates quiet windows with flood
// windows, `--rounds` times `--seconds` each, so that a machine whose own load drifts (a shared one) weighs on both
// phases alike. In a flood window tenant A, from a separate process: submits tasks with 100 requests in flight;
// opens twice as many sockets as its quota (closed at the end of the window, opened again in the next); reads its
// history and its task list, whose events and tasks carry 600 KB payloads, 4 requests in flight; revokes tokens
// until its cap refuses them; and sends heartbeats from one pool worker socket, 32 in flight. Each can be left
// out (--no-…). Prints B's latencies per phase (all windows of a phase pooled), what A got, and the node's peak
// RSS; at the end checks that every task B submitted completed. The database (switchyard_flood_<rand>) and Redis
// keys (flood-<rand>) it creates are removed at the end. No thresholds: the figures go to docs/reliability.md.

import { fork, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import jwt from "jsonwebtoken";
import { io as connectClient } from "socket.io-client";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { benchRun, type BenchRun } from "./bench-run.js";
import { HttpClient, mintToken, round, sleep, summarize, type Summary } from "./lib.js";
import { cpuSeconds, startProfile, summarizeProfile } from "./procs.js";
import { openMany, type RawSocket } from "./raw-socket.js";

/** What the flooding process reports at the end of a flood window. */
interface FloodReport {
  submissions: number;
  byStatus: Record<string, number>;
  sockets: { tried: number; connected: number; refused: number; firstRefusal: string | undefined };
  /** History and task-list reads of big payloads, by status; and the largest body read. */
  reads: Record<string, number>;
  largestReadBytes: number;
  revocations: Record<string, number>;
  heartbeats: Record<string, number>;
}

type FloodParts = { sockets: boolean; tasks: boolean; history: boolean; revocations: boolean; heartbeats: boolean };
const emptyReport = (): FloodReport => ({
  submissions: 0,
  byStatus: {},
  sockets: { tried: 0, connected: 0, refused: 0, firstRefusal: undefined },
  reads: {},
  largestReadBytes: 0,
  revocations: {},
  heartbeats: {},
});
const count = (into: Record<string, number>, key: string): void => {
  into[key] = (into[key] ?? 0) + 1;
};
/** A's history reads and heartbeats in flight. */
const READS_IN_FLIGHT = 4;
const HEARTBEATS_IN_FLIGHT = 32;

const IN_FLIGHT = 100;
const CONNECTION_QUOTA = 1000;
/** B's pace: one request at a time, then this pause (about 50 requests per second, far below its own limit). */
const B_PAUSE_MS = 20;

/**
 * The flooding process (tenant A): on "start", opens 2 × the quota of sockets and keeps IN_FLIGHT task submissions
 * going; on "stop", closes its sockets and reports the window.
 */
function floodProcess(url: string, token: string, workerToken: string, what: FloodParts): void {
  const http = new HttpClient(url, IN_FLIGHT + READS_IN_FLIGHT + 1);
  let running = false;
  let window: FloodReport;
  let work: Promise<unknown> = Promise.resolve();
  let held: RawSocket[] = [];
  const auth = { authorization: `Bearer ${token}` };
  const submitter = async (): Promise<void> => {
    while (running) {
      window.submissions++;
      const status = await http.request("POST", "/api/v1/tasks", { type: "echo", payload: { n: window.submissions } }, auth).then(
        (r) => String(r.status),
        () => "error",
      );
      count(window.byStatus, status);
    }
  };
  // Pages of A's big events and tasks: what one request could make the node build before bytes bounded them.
  const reader = async (i: number): Promise<void> => {
    const paths = ["/api/v1/events?namespace=tasks&room=tasks&limit=1000", "/api/v1/tasks?limit=200"];
    for (let n = i; running; n++) {
      const response = await http.request("GET", paths[n % paths.length]!, undefined, auth).catch(() => undefined);
      count(window.reads, response ? String(response.status) : "error");
      if (response) window.largestReadBytes = Math.max(window.largestReadBytes, Buffer.byteLength(response.body));
    }
  };
  const revoker = async (): Promise<void> => {
    while (running) {
      const response = await http
        .request("POST", "/api/v1/tokens/revoke", { jti: randomBytes(12).toString("hex") }, auth)
        .catch(() => undefined);
      count(window.revocations, response ? String(response.status) : "error");
    }
  };
  const heartbeater = async (): Promise<void> => {
    const socket = connectClient(`${url}/pools`, {
      auth: { token: workerToken, worker: { id: `noisy-${process.pid}` } },
      transports: ["websocket"],
      reconnection: false,
      forceNew: true,
    });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once("worker.welcome", () => resolve());
        socket.once("connect_error", reject);
      });
      await Promise.all(
        Array.from({ length: HEARTBEATS_IN_FLIGHT }, async () => {
          while (running) {
            const ack = (await socket
              .timeout(10_000)
              .emitWithAck("worker.heartbeat", {})
              .catch(() => ({ ok: "timeout" }))) as { ok: boolean | string; error?: { code: string } };
            count(window.heartbeats, ack.ok === true ? "ok" : String(ack.error?.code ?? ack.ok));
          }
        }),
      );
    } finally {
      socket.close();
    }
  };
  const openSockets = async (): Promise<void> => {
    const tried = what.sockets ? 2 * CONNECTION_QUOTA : 0;
    const opened = await openMany({
      url,
      nsp: "/tasks",
      token,
      count: tried,
      concurrency: 50,
      roomOf: () => undefined,
      onEvent: () => undefined,
    });
    held = opened.sockets;
    window.sockets = { tried, connected: opened.connected, refused: opened.failed, firstRefusal: opened.errors[0]?.slice(0, 160) };
  };
  process.on("message", (message: "start" | "stop" | "exit") => {
    if (message === "start") {
      running = true;
      window = emptyReport();
      work = Promise.all([
        openSockets(),
        ...Array.from({ length: what.tasks ? IN_FLIGHT : 0 }, submitter),
        ...Array.from({ length: what.history ? READS_IN_FLIGHT : 0 }, (_, i) => reader(i)),
        ...(what.revocations ? [revoker()] : []),
        ...(what.heartbeats
          ? [heartbeater().catch((error: unknown) => count(window.heartbeats, `connect: ${(error as Error).message}`))]
          : []),
      ]);
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

/**
 * B's task round trips, one at a time for `seconds`: from the POST of an echo task to its `task.completed` on B's
 * socket (subscribed to `tasks`), in ms. Ids of every task submitted go to `submitted`.
 */
async function roundTrips(
  http: HttpClient,
  token: string,
  completed: Map<string, () => void>,
  seconds: number,
  into: number[],
  submitted: string[],
): Promise<void> {
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) {
    const started = performance.now();
    const response = await http
      .request("POST", "/api/v1/tasks", { type: "echo", payload: { b: true } }, { authorization: `Bearer ${token}` })
      .catch(() => undefined);
    if (response?.status !== 202) {
      await sleep(100);
      continue;
    }
    const id = (JSON.parse(response.body) as { task: { id: string } }).task.id;
    submitted.push(id);
    const done = new Promise<boolean>((resolve) => {
      completed.set(id, () => resolve(true));
      setTimeout(() => resolve(false), 30_000).unref();
    });
    if (await done) into.push(performance.now() - started);
    completed.delete(id);
    await sleep(B_PAUSE_MS * 5);
  }
}

/** The peak and current resident set size of a process, in MiB. */
function rssMiB(pid: number): { peak: number; now: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status)?.[1] ?? NaN);
  return { peak: round(kb("VmHWM") / 1024, 0), now: round(kb("VmRSS") / 1024, 0) };
}

class FloodControl {
  private constructor(private readonly child: ChildProcess) {}

  static async start(url: string, token: string, workerToken: string, flags: string[]): Promise<FloodControl> {
    const child = fork(fileURLToPath(import.meta.url), ["--flood", url, token, workerToken, ...flags], {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
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
  for (const key of ["reads", "revocations", "heartbeats"] as const) {
    for (const [status, n] of Object.entries(window[key])) total[key][status] = (total[key][status] ?? 0) + n;
  }
  total.largestReadBytes = Math.max(total.largestReadBytes, window.largestReadBytes);
  total.sockets.tried += window.sockets.tried;
  total.sockets.connected += window.sockets.connected;
  total.sockets.refused += window.sockets.refused;
  total.sockets.firstRefusal ??= window.sockets.firstRefusal;
}

/** The measuring side, in a run of its own (database, Redis prefix, logs): see the top of the file. */
async function main(run: BenchRun): Promise<void> {
  const option = (name: string, fallback: number): number => {
    const at = process.argv.indexOf(name);
    return at > 0 ? Number(process.argv[at + 1]) : fallback;
  };
  const rounds = option("--rounds", 4);
  const seconds = option("--seconds", 5);
  const restRate = option("--rest-rate", 200);
  const tenantWork = option("--tenant-work", 8);
  const nodeWork = option("--node-work", 0);
  const { secret, log } = run;
  let flood: FloodControl | undefined;
  try {
    const node = await run.startSwitchyard({
      MAX_CONNECTIONS_PER_TENANT: String(CONNECTION_QUOTA),
      REST_RATE_PER_TENANT: String(restRate),
      TENANT_WORK_CONCURRENCY: String(tenantWork),
      ...(nodeWork > 0 ? { NODE_WORK_CONCURRENCY: String(nodeWork) } : {}),
    });
    const tokenB = mintToken(secret, "tenant-b");
    const tokenA = mintToken(secret, "tenant-a");
    const http = new HttpClient(node.url, 4);
    // B has a page of tasks to read (50, one at a time: within its own limit), and the node is warm.
    for (let i = 0; i < 50; i++)
      await http.request("POST", "/api/v1/tasks", { type: "echo", payload: { i } }, { authorization: `Bearer ${tokenB}` });
    await measure(http, tokenB, 2, [], {});
    // A's big rows: a dozen tasks with 600 KB payloads (their events carry them too), and a pool for its worker.
    for (let i = 0; i < 12; i++)
      await http.request(
        "POST",
        "/api/v1/tasks",
        { type: "echo", payload: { blob: "x".repeat(600_000), i } },
        { authorization: `Bearer ${tokenA}` },
      );
    const pool = JSON.parse(
      (await http.request("POST", "/api/v1/pools", { name: "noisy" }, { authorization: `Bearer ${tokenA}` })).body,
    ) as { pool: { id: string } };
    const workerToken = jwt.sign(
      {
        sub: "noisy-worker",
        tenant_id: "tenant-a",
        permissions: ["pools:work"],
        pool_id: pool.pool.id,
        exp: Math.floor(Date.now() / 1000) + 4 * 3600,
      },
      secret,
    );
    // B's dashboard: every task.completed of B's, to time its round trips.
    const completed = new Map<string, () => void>();
    const dashboard = connectClient(`${node.url}/tasks`, { auth: { token: tokenB }, transports: ["websocket"] });
    dashboard.on("task.completed", (envelope: { data: { task: { id: string } } }) => completed.get(envelope.data.task.id)?.());
    await new Promise<void>((resolve) => dashboard.once("connect", () => resolve()));
    await dashboard.timeout(10_000).emitWithAck("subscribe", { room: "tasks" });
    const parts = ["--no-sockets", "--no-tasks", "--no-history", "--no-revocations", "--no-heartbeats"];
    flood = await FloodControl.start(
      node.url,
      tokenA,
      workerToken,
      process.argv.filter((a) => parts.includes(a)),
    );

    const quiet: number[] = [];
    const flooded: number[] = [];
    const trips = { quiet: [] as number[], flood: [] as number[] };
    const submittedByB: string[] = [];
    const notOk = { quiet: {} as Record<string, number>, flood: {} as Record<string, number> };
    const a: FloodReport = emptyReport();
    const cpu = { quiet: 0, flood: 0 };
    const profile = process.argv.includes("--profile") ? await startProfile(node) : undefined;
    const loadBefore = os.loadavg()[0]!;
    for (let round = 1; round <= rounds; round++) {
      log(`round ${round}/${rounds}: ${seconds} s quiet, then ${seconds} s of tenant A's flood`);
      let before = cpuSeconds(node.pid);
      await Promise.all([
        measure(http, tokenB, seconds, quiet, notOk.quiet),
        roundTrips(http, tokenB, completed, seconds, trips.quiet, submittedByB),
      ]);
      cpu.quiet += cpuSeconds(node.pid) - before;
      before = cpuSeconds(node.pid);
      flood.begin();
      await Promise.all([
        measure(http, tokenB, seconds, flooded, notOk.flood),
        roundTrips(http, tokenB, completed, seconds, trips.flood, submittedByB),
      ]);
      add(a, await flood.end());
      cpu.flood += cpuSeconds(node.pid) - before;
    }
    const profiled = await profile?.stop();
    const rss = rssMiB(node.pid);
    // Nothing lost: every task B submitted completed (its state, read back once the floods are over).
    let notCompleted = 0;
    for (const id of submittedByB) {
      const task = JSON.parse(
        (await http.request("GET", `/api/v1/tasks/${id}`, undefined, { authorization: `Bearer ${tokenB}` })).body,
      ) as { task?: { status: string } };
      if (task.task?.status !== "completed") notCompleted++;
    }
    dashboard.close();
    const metrics = (await http.request("GET", "/metrics")).body;
    const limited = [...metrics.matchAll(/^switchyard_rate_limited_total\{[^}]*kind="(\w+)"[^}]*\} (\S+)$/gm)]
      .map(([, kind, n]) => `${kind} ${n}`)
      .join(", ");
    http.close();

    const [q, f] = [summarize(quiet), summarize(flooded)];
    const [tq, tf] = [summarize(trips.quiet), summarize(trips.flood)];
    const floodSeconds = rounds * seconds;
    const percent = (cpuS: number): number => round((cpuS / floodSeconds) * 100, 0);
    const out = [
      `tenant-flood: ${rounds} rounds of ${seconds} s quiet + ${seconds} s flood; one node, REST_RATE_PER_TENANT=${restRate}, TENANT_WORK_CONCURRENCY=${tenantWork}${nodeWork > 0 ? `, NODE_WORK_CONCURRENCY=${nodeWork}` : ""}, MAX_CONNECTIONS_PER_TENANT=${CONNECTION_QUOTA}; ` +
        `${os.cpus().length} CPUs, 1-min load average ${loadBefore.toFixed(1)} at the start, ${os.loadavg()[0]!.toFixed(1)} at the end`,
      `  tenant B GET /api/v1/tasks, quiet:  ${ms(q)}; not 200: ${JSON.stringify(notOk.quiet)}`,
      `  tenant B GET /api/v1/tasks, flood:  ${ms(f)}; not 200: ${JSON.stringify(notOk.flood)}`,
      `  B's p99 flood / quiet: ${round(f.p99 / q.p99, 2)}x, p50 ${round(f.p50 / q.p50, 2)}x; the node's CPU ${percent(cpu.quiet)}% quiet, ${percent(cpu.flood)}% in the floods (of one core)`,
      `  tenant B task round trip (POST → task.completed), quiet: ${ms(tq)}`,
      `  tenant B task round trip (POST → task.completed), flood: ${ms(tf)}`,
      `  B's round trip p99 flood / quiet: ${round(tf.p99 / tq.p99, 2)}x, p50 ${round(tf.p50 / tq.p50, 2)}x; B's tasks not completed at the end: ${notCompleted} of ${submittedByB.length}`,
      `  the node's RSS: peak ${rss.peak} MiB, at the end ${rss.now} MiB`,
      `  tenant A: ${a.submissions} submissions (${round(a.submissions / floodSeconds, 0)}/s), by status ${JSON.stringify(a.byStatus)}`,
      `  tenant A history and list reads of 600 KB rows: ${JSON.stringify(a.reads)}, the largest body ${round(a.largestReadBytes / 1048576, 2)} MiB`,
      `  tenant A revocations: ${JSON.stringify(a.revocations)}; heartbeats from one worker socket: ${JSON.stringify(a.heartbeats)}`,
      `  tenant A sockets: ${a.sockets.connected} of ${a.sockets.tried} admitted, ${a.sockets.refused} refused (${a.sockets.firstRefusal ?? "none"})`,
      `  switchyard_rate_limited_total: ${limited}`,
    ];
    if (profiled) {
      const top = summarizeProfile(profiled, 12);
      out.push(`  node CPU by caller (whole run): ${top.byCaller.map(([k, v]) => `${k} ${v}%`).join(", ")}`);
    }
    process.stdout.write(out.join("\n") + "\n");
  } finally {
    flood?.close();
  }
}

if (process.argv[2] === "--flood") {
  const [, , , url, token, workerToken] = process.argv;
  const on = (part: string): boolean => !process.argv.includes(`--no-${part}`);
  floodProcess(url!, token!, workerToken!, {
    sockets: on("sockets"),
    tasks: on("tasks"),
    history: on("history"),
    revocations: on("revocations"),
    heartbeats: on("heartbeats"),
  });
} else {
  await benchRun({ tag: "flood" }, main);
}
