// Measures what a node does while Redis or PostgreSQL is gone: how long each request path takes to answer and
// with what, how many log lines the node writes in the 5 s after the outage begins, and how long SIGTERM takes.
//
//   npx tsx scripts/dependency-outage.ts [scenario ...]        (default: all of them)
//
//   nowhere          a node whose REDIS_URL points at a closed port (redis://127.0.0.1:1) from the start
//   redis            a private Redis stopped under a running node
//   redis-paused     a private Redis frozen (SIGSTOP) under a running node: connections stay open, nothing answers
//   postgres         a private PostgreSQL stopped under a running node
//   postgres-paused  a private PostgreSQL frozen (SIGSTOP of every server process) under a running node
//
// It uses the test harness: real node processes, a throwaway database on DATABASE_URL's server and private
// Redis/PostgreSQL servers on free ports (the machine's own services are never stopped). Requests give up after
// 60 s. Prints one block per scenario.
import { io } from "socket.io-client";
import { dropDatabase, setupDatabase } from "../src/db/setup.js";
import { freshTenant, TEST_DATABASE_URL, TEST_REDIS_PREFIX, TEST_REDIS_URL } from "../test/support/env.js";
import { deleteRedisKeys } from "../test/support/redis-cleanup.js";
import { destroyAllPrivateServices, startPrivatePostgres, startPrivateRedis } from "../test/support/private-services.js";
import { killAllServers, startServer, type ServerProcess } from "../test/support/server.js";
import { mintToken } from "../test/support/tokens.js";

const CLIENT_TIMEOUT_MS = 60_000;
const LOG_WINDOW_MS = 5_000;

interface Probe {
  name: string;
  ms: number;
  answer: string;
}

/** What exists before the outage: a pool nobody serves and a task queued on it (so it stays queued). */
interface Fixture {
  token: string;
  poolId?: string;
  queued?: { id: string; key: string; body: unknown };
}

async function http(
  url: string,
  method: string,
  route: string,
  token: string | undefined,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  const response = await fetch(`${url}${route}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
  });
  return { status: response.status, text: await response.text() };
}

async function probe(name: string, run: () => Promise<string>): Promise<Probe> {
  const started = Date.now();
  try {
    const answer = await run();
    return { name, ms: Date.now() - started, answer: answer.slice(0, 260) };
  } catch (error) {
    return { name, ms: Date.now() - started, answer: `no answer (${(error as Error).name}: ${(error as Error).message.slice(0, 80)})` };
  }
}

async function fixture(node: ServerProcess): Promise<Fixture> {
  const token = mintToken({ tenant: freshTenant("outage"), permissions: ["admin"] });
  const fixture: Fixture = { token };
  try {
    const pool = await http(node.url, "POST", "/api/v1/pools", token, { name: "unserved" });
    if (pool.status !== 201) return fixture;
    fixture.poolId = (JSON.parse(pool.text) as { pool: { id: string } }).pool.id;
    const body = { type: "echo", poolId: fixture.poolId, payload: {} };
    const task = await http(node.url, "POST", "/api/v1/tasks", token, body, { "idempotency-key": "queued-1" });
    if (task.status === 202) fixture.queued = { id: (JSON.parse(task.text) as { task: { id: string } }).task.id, key: "queued-1", body };
  } catch {
    // The node cannot create them (its Redis is gone from the start): the probes that need them are skipped.
  }
  return fixture;
}

function subscribeAck(url: string, token: string): Promise<string> {
  const socket = io(`${url}/tasks`, { auth: { token }, transports: ["websocket"], reconnection: false, forceNew: true });
  return new Promise<string>((resolve, reject) => {
    socket.once("connect_error", (error) => reject(error));
    socket.once("connect", () => {
      socket
        .timeout(CLIENT_TIMEOUT_MS)
        .emitWithAck("subscribe", { room: "tasks" })
        .then((ack: unknown) => resolve(JSON.stringify(ack)), reject);
    });
  }).finally(() => socket.close());
}

function probes(node: ServerProcess, f: Fixture): Array<Promise<Probe>> {
  const answer = async (r: Promise<{ status: number; text: string }>) => {
    const { status, text } = await r;
    return `${status} ${text}`;
  };
  const list = [
    probe("POST /api/v1/tasks", () => answer(http(node.url, "POST", "/api/v1/tasks", f.token, { type: "echo", payload: { n: 1 } }))),
    probe("GET /ready", () => answer(http(node.url, "GET", "/ready", undefined))),
    probe("POST /api/v1/events", () =>
      answer(http(node.url, "POST", "/api/v1/events", f.token, { namespace: "tasks", room: "tasks", type: "probe.ping" })),
    ),
    probe("subscribe ack (/tasks, room tasks)", () => subscribeAck(node.url, f.token)),
  ];
  if (f.poolId)
    list.push(
      probe("POST /api/v1/pools/:id/scale", () =>
        answer(http(node.url, "POST", `/api/v1/pools/${f.poolId}/scale`, f.token, { desiredWorkers: 2 })),
      ),
    );
  if (f.queued) {
    const { key, body, id } = f.queued;
    // One after the other: the resend must find the task still queued.
    const resend = probe("POST /api/v1/tasks, same Idempotency-Key", () =>
      answer(http(node.url, "POST", "/api/v1/tasks", f.token, body, { "idempotency-key": key })),
    );
    list.push(
      resend,
      resend.then(() =>
        probe("POST /api/v1/tasks/:id/cancel", () => answer(http(node.url, "POST", `/api/v1/tasks/${id}/cancel`, f.token))),
      ),
    );
  }
  return list;
}

function lines(text: string): string[] {
  return text.split("\n").filter((line) => line.trim() !== "");
}

/** After the service is back: how long until a task submission is accepted again (polled every 100 ms, at most 30 s). */
async function recovery(node: ServerProcess, f: Fixture): Promise<string> {
  const started = Date.now();
  while (Date.now() - started < 30_000) {
    const answer = await http(node.url, "POST", "/api/v1/tasks", f.token, { type: "echo", payload: {} }).catch(() => undefined);
    if (answer?.status === 202) return `a task is accepted again ${Date.now() - started} ms after the service is back`;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return "tasks still refused 30 s after the service is back";
}

interface Scenario {
  label: string;
  env: Record<string, string>;
  /** Starts the outage (nothing for a node whose Redis was never there). */
  inject?: () => Promise<void> | void;
  /** Ends it. */
  restore?: () => Promise<void> | void;
}

/**
 * Node A answers the probes during the outage and is stopped (SIGTERM) while it lasts. Node B, on the same services,
 * shows the way back: once the service is restored, how long until it accepts a task again, and what it logged.
 */
async function measure(scenario: Scenario): Promise<void> {
  const node = await startServer(scenario.env);
  const survivor = scenario.restore ? await startServer(scenario.env) : undefined;
  const f = await fixture(node);
  // Without an outage to inject, the dependency was never there: the whole log counts.
  const outageStartedAtLine = scenario.inject ? lines(node.logs()).length : 0;
  await scenario.inject?.();
  const windowEnd = Date.now() + LOG_WINDOW_MS;
  const results = await Promise.all(probes(node, f));
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, windowEnd - Date.now())));
  const inWindow = lines(node.logs()).slice(outageStartedAtLine);
  const started = Date.now();
  const code = await node.stop();
  const stopMs = Date.now() - started;
  const all = node.logs();
  const messages = new Map<string, number>();
  for (const line of inWindow) {
    const msg = /"msg":"([^"]*)"/.exec(line)?.[1] ?? line.slice(0, 80);
    messages.set(msg, (messages.get(msg) ?? 0) + 1);
  }
  console.log(`\n[${scenario.label}]`);
  for (const r of results) console.log(`  ${r.name.padEnd(42)} ${String(r.ms).padStart(6)} ms  ${r.answer}`);
  console.log(
    `  log lines, first ${LOG_WINDOW_MS / 1000} s of the outage: ${inWindow.length}; "Unhandled"/"unhandled rejection" in the whole log: ${(all.match(/Unhandled|unhandled rejection/g) ?? []).length}`,
  );
  for (const [msg, count] of [...messages].sort((a, b) => b[1] - a[1]).slice(0, 8))
    console.log(`    ${String(count).padStart(4)} × ${msg.slice(0, 120)}`);
  console.log(`  SIGTERM during the outage: exit ${code} after ${stopMs} ms`);
  if (survivor && scenario.restore) {
    const from = lines(survivor.logs()).length;
    await scenario.restore();
    const back = await recovery(survivor, f);
    const logged = lines(survivor.logs())
      .slice(from)
      .map((line) => /"msg":"([^"]*)"/.exec(line)?.[1] ?? line.slice(0, 80));
    console.log(`  second node: ${back}; it logged meanwhile: ${logged.length ? [...new Set(logged)].join(", ") : "nothing"}`);
    await survivor.stop();
  }
}

async function nowhere(): Promise<void> {
  await measure({ label: "REDIS_URL on a closed port", env: { REDIS_URL: "redis://127.0.0.1:1" } });
}

/** A private server of `kind`, stopped or frozen under running nodes, then brought back. */
async function serviceOutage(kind: "redis" | "postgres", paused: boolean): Promise<void> {
  const service = kind === "redis" ? await startPrivateRedis() : await startPrivatePostgres();
  await measure({
    label: `private ${kind === "redis" ? "Redis" : "PostgreSQL"} ${paused ? "frozen (SIGSTOP)" : "stopped"} under running nodes`,
    env: kind === "redis" ? { REDIS_URL: service.url } : { DATABASE_URL: service.url },
    inject: () => (paused ? service.pause() : service.stop()),
    restore: () => (paused ? service.resume() : service.start()),
  });
}

const scenarios: Record<string, () => Promise<void>> = {
  nowhere,
  redis: () => serviceOutage("redis", false),
  "redis-paused": () => serviceOutage("redis", true),
  postgres: () => serviceOutage("postgres", false),
  "postgres-paused": () => serviceOutage("postgres", true),
};
const chosen = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(scenarios);
for (const name of chosen) {
  if (!scenarios[name]) {
    console.error(`unknown scenario "${name}": one of ${Object.keys(scenarios).join(", ")}`);
    process.exit(2);
  }
}

await setupDatabase(TEST_DATABASE_URL, { generate: false });
try {
  for (const name of chosen) await scenarios[name]!();
} finally {
  await killAllServers();
  await destroyAllPrivateServices();
  await dropDatabase(TEST_DATABASE_URL);
  // The PostgreSQL scenarios' nodes use the machine's Redis under this run's prefix.
  await deleteRedisKeys(TEST_REDIS_URL, TEST_REDIS_PREFIX);
}
