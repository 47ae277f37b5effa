import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import net from "node:net";
import { connect, sleep, subscribe } from "./support/clients.js";
import { freshTenant, TEST_REDIS_PREFIX, TEST_REDIS_URL } from "./support/env.js";
import { eventually } from "./support/faults.js";
import { api, type ApiResponse } from "./support/http.js";
import {
  destroyAllPrivateServices,
  freePort,
  privatePostgresUnavailable,
  privateRedisUnavailable,
  startPrivatePostgres,
  startPrivateRedis,
} from "./support/private-services.js";
import { serverProblems, startServer, startWorker, type ServerProcess } from "./support/server.js";
import { waitForTask } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";
import type { Envelope } from "../src/protocol/events.js";
import type { WorkerStatus } from "../src/protocol/workers.js";
import { skipBecause } from "./support/skip.js";

/**
 * Generous: a request must answer, and this only turns "never" into a failure that says so. What it answers and
 * what the node logs meanwhile are the assertions.
 */
const REQUEST_TIMEOUT_MS = 20_000;
/** How long the logs are watched during an outage. */
const OUTAGE_WINDOW_MS = 5_000;
/** Log lines a node may write in that window: the outage once per connection, and little else. */
const MAX_OUTAGE_LINES = 20;

const UNAVAILABLE = (dependency: "redis" | "postgresql") => ({ error: { code: "UNAVAILABLE", message: `${dependency} unavailable` } });

function submit(node: ServerProcess, token: string): Promise<ApiResponse> {
  return api(node.url, "POST", "/api/v1/tasks", { token, body: { type: "echo", payload: { n: 1 } }, timeoutMs: REQUEST_TIMEOUT_MS });
}

function ready(node: ServerProcess): Promise<ApiResponse> {
  return api(node.url, "GET", "/ready", { timeoutMs: REQUEST_TIMEOUT_MS });
}

function lineCount(node: ServerProcess): number {
  return node
    .logs()
    .split("\n")
    .filter((line) => line.trim() !== "").length;
}

/** The node's log lines after the first `from`. */
function linesSince(node: ServerProcess, from: number): string[] {
  return node
    .logs()
    .split("\n")
    .filter((line) => line.trim() !== "")
    .slice(from);
}

/** What a node logged during an outage stays small, names the outage, and holds no unhandled error. */
function assertQuietOutage(node: ServerProcess, from: number, dependency: "redis" | "postgresql"): void {
  const lines = linesSince(node, from);
  assert.ok(
    lines.length < MAX_OUTAGE_LINES,
    `${lines.length} log lines during ${OUTAGE_WINDOW_MS} ms of the outage:\n${lines.join("\n").slice(0, 4000)}`,
  );
  assert.ok(
    lines.some((line) => line.includes(`"msg":"${dependency} unavailable"`)),
    `the outage is logged:\n${lines.join("\n")}`,
  );
  const other = dependency === "redis" ? "postgresql" : "redis";
  assert.ok(!lines.some((line) => line.includes(`"msg":"${other} unavailable"`)), `only ${dependency} is blamed:\n${lines.join("\n")}`);
  assert.doesNotMatch(node.logs(), /unhandled/i);
}

/** Retries a submission until it is accepted (the dependency is back); the last answer if it never is. */
async function acceptedAgain(node: ServerProcess, token: string): Promise<ApiResponse> {
  let last: ApiResponse | undefined;
  await eventually(
    async () => {
      last = await submit(node, token).catch((error: Error) => ({ status: 0, body: error.message, headers: new Headers() }));
      return last.status === 202;
    },
    30_000,
    200,
  );
  return last!;
}

function run(command: string, args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { env: { ...process.env, ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

describe("failing dependencies", function () {
  this.timeout(120_000);
  let nodes: ServerProcess[] = [];

  async function node(env: Record<string, string>): Promise<ServerProcess> {
    const started = await startServer(env);
    nodes.push(started);
    return started;
  }

  afterEach(async function () {
    if (this.currentTest?.state === "failed") {
      const problems = serverProblems();
      if (problems) process.stderr.write(`\n--- node warnings/errors (last 20) ---\n${problems}\n`);
    }
    await Promise.all(nodes.map((n) => n.kill()));
    nodes = [];
    // Nodes first, then their services.
    await destroyAllPrivateServices();
  });

  it("REDIS_URL on a closed port: a task gets 503 redis unavailable, /ready names redis without driver text, the log stays short, SIGTERM exits 0", async () => {
    const closed = await freePort();
    const lonely = await node({ REDIS_URL: `redis://127.0.0.1:${closed}` });
    const token = mintToken({ tenant: freshTenant(), permissions: ["admin"] });

    const task = await submit(lonely, token);
    assert.equal(task.status, 503);
    assert.deepEqual(task.body, UNAVAILABLE("redis"));
    const probe = await ready(lonely);
    assert.equal(probe.status, 503);
    assert.deepEqual(probe.body, { status: "unavailable", node: lonely.nodeId, checks: { redis: "unavailable", postgres: "ok" } });

    // Its whole life counts: Redis was never there.
    await sleep(OUTAGE_WINDOW_MS);
    assertQuietOutage(lonely, 0, "redis");
    assert.doesNotMatch(lonely.logs(), /\[ioredis\]/);
    assert.equal(await lonely.stop(), 0);
  });

  it("a private Redis stopped under two nodes: both answer 503 and log the outage once, exit 0 on SIGTERM, and take work again after the restart", async function () {
    const unavailable = privateRedisUnavailable();
    if (unavailable) skipBecause(this, unavailable);
    const redis = await startPrivateRedis();
    const env = { REDIS_URL: redis.url };
    const [a, b] = await Promise.all([node(env), node(env)]);
    const token = mintToken({ tenant: freshTenant(), permissions: ["admin"] });
    const before = await submit(a, token);
    assert.equal(before.status, 202);
    await waitForTask(b.url, token, before.body.task.id, ["completed"]);

    const from = [lineCount(a), lineCount(b)];
    await redis.stop();
    // A node learns of the outage when its connection sees the close; a task submitted before that is stored and
    // accepted (202), its job added when Redis is back. Refusing needs the node to know: wait until it does.
    for (const [i, n] of [a, b].entries()) {
      const noticed = await eventually(
        () =>
          linesSince(n, from[i]!).some((line) => line.includes('"connection":"commands"') && line.includes('"msg":"redis unavailable"')),
        10_000,
        20,
      );
      assert.ok(noticed, "the node logged that its Redis command connection is down");
    }
    for (const n of [a, b]) {
      const task = await submit(n, token);
      assert.equal(task.status, 503, JSON.stringify(task.body));
      assert.deepEqual(task.body, UNAVAILABLE("redis"));
      assert.deepEqual((await ready(n)).body.checks, { redis: "unavailable", postgres: "ok" });
    }
    await sleep(OUTAGE_WINDOW_MS);
    assertQuietOutage(a, from[0]!, "redis");
    assertQuietOutage(b, from[1]!, "redis");
    assert.equal(await a.stop(), 0, "SIGTERM during the outage");

    await redis.start();
    const after = await acceptedAgain(b, token);
    assert.equal(after.status, 202, JSON.stringify(after.body));
    await waitForTask(b.url, token, after.body.task.id, ["completed"]);
    assert.match(b.logs(), /"msg":"redis available again"/);
  });

  it("a private Redis that stops answering (frozen): requests answer within the deadline instead of hanging, and work resumes when it thaws", async function () {
    const unavailable = privateRedisUnavailable();
    if (unavailable) skipBecause(this, unavailable);
    const redis = await startPrivateRedis();
    const frozenNode = await node({ REDIS_URL: redis.url });
    const tenant = freshTenant();
    const token = mintToken({ tenant, permissions: ["admin"] });
    const pool = await api(frozenNode.url, "POST", "/api/v1/pools", { token, body: { name: "unserved" } });
    assert.equal(pool.status, 201);
    // Nobody serves this pool: the task stays queued, so it can be cancelled during the outage.
    const queued = await api(frozenNode.url, "POST", "/api/v1/tasks", { token, body: { type: "echo", poolId: pool.body.pool.id } });
    assert.equal(queued.status, 202);

    redis.pause();
    // The first submission may already be stored when the deadline passes: it is accepted, its job follows.
    const first = await submit(frozenNode, token);
    assert.ok(first.status === 202 || first.status === 503, JSON.stringify(first.body));
    const second = await submit(frozenNode, token);
    assert.equal(second.status, 503);
    assert.deepEqual(second.body, UNAVAILABLE("redis"));
    assert.deepEqual((await ready(frozenNode)).body.checks, { redis: "unavailable", postgres: "ok" });
    // The cancellation is stored in PostgreSQL; stopping the job is left for when Redis answers again.
    const cancel = await api(frozenNode.url, "POST", `/api/v1/tasks/${queued.body.task.id}/cancel`, {
      token,
      timeoutMs: REQUEST_TIMEOUT_MS,
    });
    assert.equal(cancel.status, 200, JSON.stringify(cancel.body));
    assert.equal(cancel.body.task.status, "cancelled");

    redis.resume();
    const after = await acceptedAgain(frozenNode, token);
    await waitForTask(frozenNode.url, token, after.body.task.id, ["completed"]);
    if (first.status === 202) await waitForTask(frozenNode.url, token, first.body.task.id, ["completed"], 60_000);
    assert.doesNotMatch(frozenNode.logs(), /unhandled/i);
  });

  it("a private PostgreSQL frozen, then stopped: REST and socket acks answer 503 postgresql unavailable, the log stays short, work resumes after each", async function () {
    const unavailable = privatePostgresUnavailable();
    if (unavailable) skipBecause(this, unavailable);
    const postgres = await startPrivatePostgres();
    // Its own Redis prefix: the shared Redis also holds queues of nodes that use the run's database.
    const dbNode = await node({ DATABASE_URL: postgres.url, REDIS_PREFIX: `${TEST_REDIS_PREFIX}-deps-pg` });
    const token = mintToken({ tenant: freshTenant(), permissions: ["admin"] });
    const socket = await connect(dbNode.url, "tasks", { token });
    assert.equal((await subscribe(socket, "tasks")).ok, true);

    const outage = async (): Promise<void> => {
      const task = await submit(dbNode, token);
      assert.equal(task.status, 503, JSON.stringify(task.body));
      assert.deepEqual(task.body, UNAVAILABLE("postgresql"));
      assert.deepEqual((await ready(dbNode)).body.checks, { redis: "ok", postgres: "unavailable" });
      // A task room: whether the task exists in the tenant is asked of the database.
      const ack: unknown = await socket.timeout(REQUEST_TIMEOUT_MS).emitWithAck("subscribe", { room: "task:not-there" });
      assert.deepEqual(ack, { ok: false, error: { code: "UNAVAILABLE", message: "postgresql unavailable" } });
    };

    let from = lineCount(dbNode);
    postgres.pause();
    await outage();
    await sleep(OUTAGE_WINDOW_MS);
    assertQuietOutage(dbNode, from, "postgresql");
    postgres.resume();
    await waitForTask(dbNode.url, token, (await acceptedAgain(dbNode, token)).body.task.id, ["completed"]);
    const back = await eventually(
      () => linesSince(dbNode, from).some((line) => line.includes('"msg":"postgresql available again"')),
      10_000,
    );
    assert.ok(back, "the way back is logged");

    from = lineCount(dbNode);
    await postgres.stop();
    await outage();
    await sleep(OUTAGE_WINDOW_MS);
    assertQuietOutage(dbNode, from, "postgresql");
    await postgres.start();
    await waitForTask(dbNode.url, token, (await acceptedAgain(dbNode, token)).body.task.id, ["completed"]);
    assert.match(linesSince(dbNode, from).join("\n"), /"msg":"postgresql available again"/);
  });

  it("a node started on an empty Redis of its own, sharing the database, never marks a live worker of another node offline, and says why on /ready", async function () {
    const unavailable = privateRedisUnavailable();
    if (unavailable) skipBecause(this, unavailable);
    const presence = { WORKER_HEARTBEAT_INTERVAL_MS: "300", WORKER_HEARTBEAT_TIMEOUT_MS: "2000", WORKER_DISCONNECT_GRACE_MS: "1000" };
    // The cluster: node 1 and its worker on the shared Redis, under a prefix of this test's own.
    const prefix = `${TEST_REDIS_PREFIX}-deps-presence`;
    const cluster = await node({ ...presence, REDIS_PREFIX: prefix, NODE_ID: `presence-1-${process.pid}` });
    const tenant = freshTenant();
    const token = mintToken({ tenant });
    const created = await api(cluster.url, "POST", "/api/v1/pools", { token, body: { name: "watched" } });
    assert.equal(created.status, 201);
    const poolId = created.body.pool.id as string;
    // The pool's stored events: node 2 broadcasts into its own Redis, which no client of node 1 hears.
    const statuses = async (): Promise<WorkerStatus[]> => {
      const history = await api(cluster.url, "GET", `/api/v1/events?namespace=pools&room=pool:${poolId}&limit=1000`, { token });
      return (history.body.items as Envelope[])
        .filter((e) => e.type === "worker.status_changed")
        .map((e) => (e.data as { worker: { status: WorkerStatus } }).worker.status);
    };
    const worker = startWorker({
      token: mintToken({ tenant, permissions: ["pools:work"], poolId }),
      poolId,
      urls: [cluster.url],
      env: { WORKER_ID: "w-live", REDIS_URL: TEST_REDIS_URL, REDIS_PREFIX: prefix },
    });
    assert.ok(await eventually(async () => (await statuses()).includes("idle"), 20_000, 200), "the worker is idle");

    // Node 2: the same database, but an empty Redis in place of the cluster's (a wrong REDIS_URL).
    const stray = await startPrivateRedis();
    const astray = await node({ ...presence, REDIS_URL: stray.url, REDIS_PREFIX: prefix, NODE_ID: `presence-2-${process.pid}` });
    const noticed = await eventually(async () => (await ready(astray)).body.checks?.redis === "not_shared", 20_000, 200);
    const answer = await ready(astray);
    assert.ok(noticed, `node 2 reports its Redis: ${JSON.stringify(answer.body)}`);
    assert.equal(answer.status, 503);
    assert.match(astray.logs(), /it is probably not the cluster's Redis/);
    // Several more sweeps of node 2 (one a second): the worker stays as it is.
    await sleep(3000);
    assert.deepEqual(await statuses(), ["idle"], "no offline event for a live worker");
    const pool = (await api(cluster.url, "GET", `/api/v1/pools/${poolId}`, { token })).body.pool;
    assert.deepEqual(
      pool.workers.map((w: { id: string; status: string }) => [w.id, w.status]),
      [["w-live", "idle"]],
    );
    assert.equal((await ready(cluster)).status, 200, "node 1's Redis is the cluster's");

    // The guard holds back only live workers: once the worker is gone it goes offline (whichever node sees it
    // first), exactly once.
    await worker.kill();
    assert.ok(await eventually(async () => (await statuses()).includes("offline"), 20_000, 200), "the dead worker offline");
    await sleep(2000);
    assert.deepEqual(await statuses(), ["idle", "offline"]);
  });

  it("a direct-mode worker whose Redis is unreachable says so once, shows `error` in its pool, and exits 0 on SIGTERM", async () => {
    const server = await node({});
    const tenant = freshTenant();
    const token = mintToken({ tenant });
    const created = await api(server.url, "POST", "/api/v1/pools", { token, body: { name: "cut-off" } });
    assert.equal(created.status, 201);
    const poolId = created.body.pool.id as string;
    const closed = await freePort();
    const worker = startWorker({
      token: mintToken({ tenant, permissions: ["pools:work"], poolId }),
      poolId,
      urls: [server.url],
      env: { WORKER_ID: "w-cut-off", REDIS_URL: `redis://127.0.0.1:${closed}` },
      // Only a worker that takes its jobs from BullMQ itself has a Redis to lose (a hub-mode one never reads it).
      args: ["--direct"],
    });
    await worker.connected();
    const shown = await eventually(
      async () => {
        const pool = (await api(server.url, "GET", `/api/v1/pools/${poolId}`, { token })).body.pool;
        return pool.workers.some(
          (w: { id: string; status: string; detail: string | null }) => w.status === "error" && w.detail === "redis unavailable",
        );
      },
      20_000,
      200,
    );
    assert.ok(shown, "the worker shows error, redis unavailable");
    await sleep(OUTAGE_WINDOW_MS);
    const lines = worker
      .logs()
      .split("\n")
      .filter((line) => line.trim() !== "");
    assert.ok(lines.length < MAX_OUTAGE_LINES, lines.join("\n"));
    assert.equal(
      lines.filter((line) => line.includes('"msg":"redis unavailable"')).length,
      2,
      "once per connection (BullMQ, cancellations)",
    );
    assert.doesNotMatch(worker.logs(), /unhandled|\[ioredis\]/i);
    assert.equal(await worker.stop(), 0);
  });

  it("ensure-services.sh starts nothing for an address that is not this machine's default one, and says so", async () => {
    const port = await freePort();
    const result = await run("bash", ["scripts/ensure-services.sh"], {
      REDIS_URL: `redis://127.0.0.1:${port}`,
      ENSURE_SERVICES_TIMEOUT: "1",
    });
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(
      result.stderr,
      new RegExp(`^redis at redis://127\\.0\\.0\\.1:${port} is not reachable after 1s; not starting anything: start it yourself$`, "m"),
    );
    assert.equal(await listening(port), false, "no redis-server was started on that port");

    const database = await run("bash", ["scripts/ensure-services.sh"], {
      DATABASE_URL: `postgresql://someone:secret@127.0.0.1:${port}/x`,
      REDIS_URL: TEST_REDIS_URL,
      ENSURE_SERVICES_TIMEOUT: "1",
    });
    assert.equal(database.code, 1);
    assert.match(database.stderr, new RegExp(`postgresql at postgresql://someone:\\*\\*\\*@127\\.0\\.0\\.1:${port}/x is not reachable`));
    assert.doesNotMatch(database.stderr + database.stdout, /secret/);
  });
});
