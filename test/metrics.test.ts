import assert from "node:assert/strict";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { connect, sleep, subscribe } from "./support/clients.js";
import { freshTenant, TEST_REDIS_URL } from "./support/env.js";
import { api } from "./support/http.js";
import { isolatedNodeEnv, isolatedPrefix } from "./support/isolation.js";
import { deleteRedisKeys } from "./support/redis-cleanup.js";
import { CONTRACT_SERIES, scrape, select, total, type Sample } from "./support/metrics.js";
import { destroyAllPrivateServices, privateRedisUnavailable, startPrivateRedis } from "./support/private-services.js";
import { startServer, startWorker, type ServerProcess } from "./support/server.js";
import { submitTask, waitForTask } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";
import { skipBecause } from "./support/skip.js";

/** Scrapes `url` until `predicate` holds (scrape-time figures are cached for a few seconds); returns that scrape. */
async function scrapeUntil(url: string, predicate: (samples: Sample[]) => boolean, what: string, timeoutMs = 30_000): Promise<Sample[]> {
  const deadline = Date.now() + timeoutMs;
  let last: Sample[] = [];
  while (Date.now() < deadline) {
    last = await scrape(url);
    if (predicate(last)) return last;
    await sleep(250);
  }
  const shown = last.filter((s) => /^switchyard_(queue_waiting|workers|redis_up|postgres_up)$/.test(s.name));
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(shown)}`);
}

const value = (samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined =>
  select(samples, name, labels)[0]?.value;

describe("metrics", () => {
  // Nodes on a Redis prefix of this file's own: no other node's embedded worker takes these tasks, so the counts
  // of the two nodes below are exactly this file's work.
  const prefix = isolatedPrefix("metrics");
  const env = isolatedNodeEnv(prefix);
  let nodeA: ServerProcess;
  let nodeB: ServerProcess;

  before(async () => {
    [nodeA, nodeB] = await Promise.all([startServer({ ...env, NODE_ID: "metrics-a" }), startServer({ ...env, NODE_ID: "metrics-b" })]);
  });
  after(async () => {
    await Promise.all([nodeA?.stop(), nodeB?.stop()]);
    await destroyAllPrivateServices();
    await deleteRedisKeys(TEST_REDIS_URL, prefix);
  });

  it("exports every contract series from the start, with bounded labels and no tenant label", async () => {
    const samples = await scrape(nodeA.url);
    for (const name of CONTRACT_SERIES) {
      assert.ok(select(samples, name).length > 0, `${name} is exported`);
    }
    for (const namespace of ["pools", "tasks", "workflows"])
      assert.ok(select(samples, "switchyard_connections_total", { namespace }).length === 1);
    assert.deepEqual(
      select(samples, "switchyard_rate_limited_total")
        .map((s) => s.labels.kind)
        .sort(),
      ["connections", "rest", "socket", "worker"],
    );
    assert.deepEqual(
      select(samples, "switchyard_workers")
        .map((s) => s.labels.status)
        .sort(),
      ["busy", "draining", "error", "idle", "offline"],
    );
    assert.deepEqual(
      select(samples, "switchyard_db_query_duration_seconds_count")
        .map((s) => s.labels.operation)
        .sort(),
      ["event_numbering", "head", "replay_read", "task_write"],
    );
    assert.equal(value(samples, "switchyard_redis_up"), 1);
    assert.equal(value(samples, "switchyard_postgres_up"), 1);
    const withTenant = samples.filter((s) => s.name.startsWith("switchyard_") && "tenant" in s.labels);
    assert.deepEqual(withTenant, [], "no series carries a tenant label by default");
  });

  it("counts a task's states, its duration, its events and the hot SQL on the two nodes that did the work", async () => {
    const tenant = freshTenant();
    const token = mintToken({ tenant });
    const before = await Promise.all([scrape(nodeA.url), scrape(nodeB.url)]);
    // A subscriber on B (a room's head), then a resubscribe from its cursor (a replay read).
    const socket = await connect(nodeB.url, "tasks", { token });
    const first = await subscribe(socket, "tasks");
    assert.equal(first.ok, true, JSON.stringify(first));
    const task = await submitTask(nodeA.url, token, { type: "echo", payload: { n: 1 } });
    await waitForTask(nodeA.url, token, task.id, ["completed"]);
    const again = await subscribe(socket, "tasks", first.cursor);
    assert.equal(again.ok, true, JSON.stringify(again));
    const published = await api(nodeB.url, "POST", "/api/v1/events", {
      token,
      body: { namespace: "tasks", room: "tasks", type: "billing.paid", data: {} },
    });
    assert.equal(published.status, 202, JSON.stringify(published.body));

    const after = await Promise.all([scrape(nodeA.url), scrape(nodeB.url)]);
    const delta = (name: string, labels: Record<string, string> = {}): number => total(after, name, labels) - total(before, name, labels);
    // Wherever the embedded worker ran it, the task entered each state once, on one of the two nodes.
    for (const status of ["created", "queued", "assigned", "started", "completed"]) {
      assert.equal(delta("switchyard_tasks_total", { status }), 1, `tasks entering ${status}`);
    }
    for (const status of ["failed", "cancelled", "retrying"])
      assert.equal(delta("switchyard_tasks_total", { status }), 0, `tasks entering ${status}`);
    assert.equal(delta("switchyard_task_duration_seconds_count"), 1);
    assert.ok(delta("switchyard_task_duration_seconds_sum") > 0);
    // Six task events in three rooms each (task.assigned also in /pools), and the published one.
    assert.ok(delta("switchyard_events_published_total", { namespace: "tasks" }) >= 16, "events delivered to /tasks rooms");
    assert.ok(delta("switchyard_publish_duration_seconds_count") >= 2);
    assert.ok(delta("switchyard_event_log_batch_rows_count") >= 1);
    assert.ok(delta("switchyard_event_log_batch_rows_sum") >= 16, "rows stored by numbering statements");
    for (const operation of ["task_write", "event_numbering", "head", "replay_read"]) {
      assert.ok(delta("switchyard_db_query_duration_seconds_count", { operation }) >= 1, `timed ${operation}`);
    }
    assert.equal(delta("switchyard_connections_total", { namespace: "tasks" }), 1);
    assert.equal(value(after[1], "switchyard_connected_sockets", { namespace: "tasks" }), 1);
    assert.equal(value(after[1], "switchyard_subscriptions", { namespace: "tasks" }), 1);
  });

  it("reports the jobs waiting in every pool's queue and the workers by status, as BullMQ and PostgreSQL hold them", async function () {
    // Four waits of up to 30 s each on readings cached for a few seconds: the test's own bound must hold them.
    this.timeout(90_000);
    const tenant = freshTenant();
    const token = mintToken({ tenant });
    const idle = (samples: Sample[]): number => value(samples, "switchyard_workers", { status: "idle" }) ?? Number.NaN;
    const waiting = (samples: Sample[]): number => value(samples, "switchyard_queue_waiting") ?? Number.NaN;
    const start = await scrapeUntil(nodeA.url, (s) => Number.isFinite(waiting(s)) && Number.isFinite(idle(s)), "known counts");

    // A pool nobody serves: its jobs wait.
    const idlePool = (await api(nodeA.url, "POST", "/api/v1/pools", { token, body: { name: "unserved" } })).body.pool.id as string;
    const queued = [];
    for (let i = 0; i < 3; i++) queued.push(await submitTask(nodeA.url, token, { type: "echo", poolId: idlePool }));
    await scrapeUntil(nodeB.url, (s) => waiting(s) === waiting(start) + 3, `${waiting(start) + 3} waiting jobs`);

    // A standalone worker: one more idle worker, counted on every node.
    const servedPool = (await api(nodeA.url, "POST", "/api/v1/pools", { token, body: { name: "served" } })).body.pool.id as string;
    const worker = startWorker({
      token: mintToken({ tenant, permissions: ["pools:work"], poolId: servedPool }),
      poolId: servedPool,
      urls: [nodeB.url],
    });
    await worker.connected();
    await scrapeUntil(nodeA.url, (s) => idle(s) >= idle(start) + 1, "the worker counted idle");

    // Cancelled, the jobs leave their queue.
    for (const task of queued) assert.equal((await api(nodeA.url, "POST", `/api/v1/tasks/${task.id}/cancel`, { token })).status, 200);
    await scrapeUntil(nodeA.url, (s) => waiting(s) === waiting(start), "the queue back to where it was");
  });

  it("follows Redis down and back up on switchyard_redis_up, and /metrics keeps answering meanwhile", async function () {
    const unavailable = privateRedisUnavailable();
    if (unavailable) {
      skipBecause(this, unavailable);
    }
    const redis = await startPrivateRedis();
    const node = await startServer({ ...env, REDIS_URL: redis.url, NODE_ID: "metrics-redis" });
    try {
      await scrapeUntil(node.url, (s) => value(s, "switchyard_redis_up") === 1, "redis_up 1");
      await redis.stop();
      const down = await scrapeUntil(node.url, (s) => value(s, "switchyard_redis_up") === 0, "redis_up 0");
      assert.equal(value(down, "switchyard_postgres_up"), 1);
      // Queue counts need Redis: unknown (NaN), not a made-up 0.
      await scrapeUntil(node.url, (s) => Number.isNaN(value(s, "switchyard_queue_waiting")), "queue_waiting unknown");
      await redis.start();
      await scrapeUntil(
        node.url,
        (s) => value(s, "switchyard_redis_up") === 1 && Number.isFinite(value(s, "switchyard_queue_waiting")),
        "redis_up 1 again",
      );
    } finally {
      await node.stop();
      await redis.destroy();
    }
  });

  it("answers /metrics with postgres_up 0 and the database's counts unknown when PostgreSQL accepts connections but never answers", async () => {
    // A hung database (a black hole: connections accepted, nothing ever said) rather than a refused one: node-postgres
    // has no connect timeout of its own, so only the checks' and readings' deadlines keep the scrape from hanging.
    const sockets = new Set<Socket>();
    const blackHole = createServer((socket) => {
      sockets.add(socket);
      socket.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => blackHole.listen(0, "127.0.0.1", resolve));
    const port = (blackHole.address() as AddressInfo).port;
    const node = await startServer({ ...env, DATABASE_URL: `postgresql://postgres@127.0.0.1:${port}/none`, NODE_ID: "metrics-hungpg" });
    try {
      for (let scrapeNo = 0; scrapeNo < 2; scrapeNo++) {
        const samples = await scrape(node.url);
        assert.equal(value(samples, "switchyard_postgres_up"), 0);
        assert.equal(value(samples, "switchyard_redis_up"), 1);
        assert.ok(Number.isNaN(value(samples, "switchyard_queue_waiting")), "queue_waiting is NaN");
        for (const sample of select(samples, "switchyard_workers"))
          assert.ok(Number.isNaN(sample.value), `workers{status=${sample.labels.status}} is NaN`);
      }
    } finally {
      await node.kill(); // its connections to the black hole would hold a graceful stop
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => blackHole.close(resolve));
    }
  });

  it("with METRICS_TENANT_LABELS=true labels the task and event counters (only those) with the tenant", async () => {
    const node = await startServer({ ...env, METRICS_TENANT_LABELS: "true", NODE_ID: "metrics-tenants" });
    try {
      const tenant = freshTenant();
      const token = mintToken({ tenant });
      const task = await submitTask(node.url, token, { type: "echo" });
      await waitForTask(node.url, token, task.id, ["completed"]);
      const samples = await scrape(node.url);
      assert.equal(value(samples, "switchyard_tasks_total", { status: "completed", tenant }), 1);
      assert.ok((value(samples, "switchyard_events_published_total", { namespace: "tasks", tenant }) ?? 0) > 0);
      const labelled = new Set(samples.filter((s) => s.name.startsWith("switchyard_") && "tenant" in s.labels).map((s) => s.name));
      assert.deepEqual([...labelled].sort(), ["switchyard_events_published_total", "switchyard_tasks_total"]);
    } finally {
      await node.stop();
    }
  });

  it("refuses a METRICS_TENANT_LABELS that is not a boolean", async () => {
    const error = await startServer({ METRICS_TENANT_LABELS: "sometimes" }).then(
      () => assert.fail("started"),
      (e: Error) => e.message,
    );
    assert.match(error, /config error: METRICS_TENANT_LABELS: must be true or false/);
  });
});

describe("METRICS_TOKEN, and nosniff on every response", () => {
  const METRICS_TOKEN = "scrape-only-0123456789abcdef";
  let node: ServerProcess;
  before(async () => {
    node = await startServer({ NODE_ID: "metrics-token", METRICS_TOKEN });
  });
  after(async () => {
    await node?.stop();
  });

  it("answers /metrics only with the bearer token; without it or with another, 401 and no figures", async () => {
    for (const authorization of [undefined, "Bearer wrong-token-0123456789abcdef", `Basic ${METRICS_TOKEN}`, `Bearer ${METRICS_TOKEN}x`]) {
      const refused = await fetch(`${node.url}/metrics`, { headers: authorization ? { authorization } : {} });
      assert.equal(refused.status, 401, String(authorization));
      assert.match(refused.headers.get("www-authenticate") ?? "", /^Bearer/);
      const body = await refused.text();
      assert.ok(!body.includes("switchyard_"), "no figure in the refusal");
      assert.equal((JSON.parse(body) as { error: { code: string } }).error.code, "UNAUTHORIZED");
    }
    const scraped = await fetch(`${node.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    assert.equal(scraped.status, 200);
    assert.match(await scraped.text(), /^switchyard_redis_up\{[^}]*\} 1$/m);
    // /health and /ready stay open: load balancers and the bash health check use them.
    assert.equal((await fetch(`${node.url}/health`)).status, 200);
  });

  it("sends X-Content-Type-Options: nosniff on API answers, refusals and health", async () => {
    const token = mintToken({ tenant: freshTenant() });
    for (const [path, headers] of [
      ["/api/v1/tasks", { authorization: `Bearer ${token}` }],
      ["/api/v1/tasks", {}],
      ["/api/v1/nothing-here", { authorization: `Bearer ${token}` }],
      ["/health", {}],
    ] as const) {
      const response = await fetch(`${node.url}${path}`, { headers });
      assert.equal(response.headers.get("x-content-type-options"), "nosniff", `${path} ${response.status}`);
    }
  });
});
