import assert from "node:assert/strict";
import type { Socket } from "socket.io-client";
import WebSocket from "ws";
import { PROGRESS_STORE_INTERVAL_MS } from "../src/domains/tasks/progress-coalescer.js";
import { connect, connectError, request, sleep, subscribe, type ConnectFailure } from "./support/clients.js";
import { freshTenant, TEST_DATABASE_URL } from "./support/env.js";
import { api } from "./support/http.js";
import { DbInspector } from "./support/private-services.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { submitTask, takeJob } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";
import { parseMetrics, select } from "./support/metrics.js";

/** Small limits, so that a test reaches them with a handful of sockets and requests. */
const LIMITS = {
  MAX_CONNECTIONS_PER_TENANT: "4",
  REST_RATE_PER_TENANT: "5",
  SOCKET_EVENTS_PER_SECOND: "5",
  WORKER_EVENTS_PER_SECOND: "2000",
  CONNECT_TIMEOUT_MS: "1000",
  // Also how long a dead node's connections keep counting.
  WORKER_HEARTBEAT_INTERVAL_MS: "300",
  WORKER_HEARTBEAT_TIMEOUT_MS: "1500",
};
const LIVE_FOR_MS = Number(LIMITS.WORKER_HEARTBEAT_TIMEOUT_MS);

function assertConnectionLimit(failure: ConnectFailure, what: string): void {
  assert.equal(failure.message, "unauthorized", what);
  assert.equal(failure.data?.code, "CONNECTION_LIMIT", what);
}

/** Connects, retrying while the tenant is at its limit (slots are given back asynchronously); fails after `timeoutMs`. */
async function connectOnceFreed(url: string, namespace: string, token: string, timeoutMs = 20_000): Promise<Socket> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await connect(url, namespace, { token });
    } catch (error) {
      assertConnectionLimit(error as ConnectFailure, "while waiting for a free slot");
      if (Date.now() > deadline) throw new Error(`no connection slot freed within ${timeoutMs} ms`, { cause: error });
      await sleep(100);
    }
  }
}

async function rateLimitedTotal(node: ServerProcess, limit: string): Promise<number> {
  const text = (await api<string>(node.url, "GET", "/metrics")).body;
  const line = text.split("\n").find((l) => l.startsWith("switchyard_rate_limited_total{") && l.includes(`kind="${limit}"`));
  return Number(line?.split(" ").at(-1) ?? 0);
}

describe("cluster-wide limits (two nodes sharing Redis)", () => {
  let nodeA: ServerProcess;
  let nodeB: ServerProcess;
  let db: DbInspector;

  before(async () => {
    [nodeA, nodeB] = await Promise.all([startServer({ ...LIMITS, NODE_ID: "limits-a" }), startServer({ ...LIMITS, NODE_ID: "limits-b" })]);
    db = new DbInspector(TEST_DATABASE_URL);
  });
  after(async () => {
    await Promise.all([nodeA?.stop(), nodeB?.stop()]);
    await db?.close();
  });

  it("MAX_CONNECTIONS_PER_TENANT counts a tenant's sockets on both nodes; a closed socket gives its slot back", async () => {
    const token = mintToken({ tenant: freshTenant("conn") });
    const held = [
      await connect(nodeA.url, "tasks", { token }),
      await connect(nodeB.url, "pools", { token }),
      await connect(nodeA.url, "workflows", { token }),
      await connect(nodeB.url, "tasks", { token }),
    ];
    assertConnectionLimit(await connectError(nodeA.url, "tasks", { token }), "a fifth socket on node A");
    assertConnectionLimit(await connectError(nodeB.url, "pools", { token }), "a fifth socket on node B");
    const other = await connect(nodeA.url, "tasks", { token: mintToken({ tenant: freshTenant("conn-other") }) });
    assert.equal((await subscribe(other, "tasks")).ok, true, "another tenant connects and works");

    // Live nodes keep their counts alive past the liveness period.
    await sleep(2 * LIVE_FOR_MS);
    assertConnectionLimit(await connectError(nodeB.url, "tasks", { token }), "still full after the liveness period");
    assert.equal((await subscribe(held[3]!, "tasks")).ok, true, "the admitted sockets work");

    held[0]!.disconnect();
    const replacement = await connectOnceFreed(nodeB.url, "tasks", token);
    assert.equal(replacement.connected, true);
    assertConnectionLimit(await connectError(nodeA.url, "tasks", { token }), "full again");
    assert.ok((await rateLimitedTotal(nodeA, "connections")) >= 1, "counted in switchyard_rate_limited_total");
  });

  it("a node killed with its sockets connected stops counting within the heartbeat timeout", async () => {
    const nodeC = await startServer({ ...LIMITS, NODE_ID: "limits-c" });
    try {
      const token = mintToken({ tenant: freshTenant("conn-kill") });
      for (const namespace of ["tasks", "pools", "workflows"]) await connect(nodeC.url, namespace, { token });
      await connect(nodeA.url, "tasks", { token });
      assertConnectionLimit(await connectError(nodeB.url, "tasks", { token }), "full while node C lives");
      await nodeC.kill();
      const killedAt = Date.now();
      // Node C's three slots come back: three more sockets fit, then the tenant is full again.
      for (let i = 0; i < 3; i++) await connectOnceFreed(nodeB.url, "tasks", token);
      console.log(`      node C's slots were free ${Date.now() - killedAt} ms after its kill -9 (liveness ${LIVE_FOR_MS} ms)`);
      assertConnectionLimit(await connectError(nodeA.url, "pools", { token }), "full again with the freed slots taken");
    } finally {
      await nodeC.kill();
    }
  });

  it("REST_RATE_PER_TENANT: the flooding tenant gets 429 RATE_LIMITED with Retry-After on both nodes, another tenant 200s", async () => {
    const flooder = mintToken({ tenant: freshTenant("flood") });
    const calm = mintToken({ tenant: freshTenant("calm") });
    const floodStarted = Date.now();
    const onA = await Promise.all(Array.from({ length: 30 }, () => api(nodeA.url, "GET", "/api/v1/tasks", { token: flooder })));
    const refusedA = onA.filter((r) => r.status === 429);
    assert.ok(refusedA.length > 0, "30 requests at once exceed 5/s with a burst of 10");
    assert.ok(
      onA.some((r) => r.status === 200),
      "the first ones pass",
    );
    for (const response of refusedA) {
      assert.equal(response.body.error.code, "RATE_LIMITED");
      const retryAfter = response.headers.get("retry-after");
      assert.match(retryAfter ?? "", /^[1-9]\d*$/, "Retry-After in whole seconds, at least 1");
      assert.ok(Number(retryAfter) <= 10, `Retry-After ${retryAfter}`);
    }

    // The count is shared: what both nodes let through together stays within one limit for the time the flood took,
    // however long that was. The windows start at the tenant's first request: in t seconds at most floor(t) + 1
    // one-second windows of 5 and floor(t / 10) + 1 burst windows of 5 more. A limit per node would let about twice
    // that through while the flood is quicker than a second.
    const [onB, calmAnswers] = await Promise.all([
      Promise.all(Array.from({ length: 20 }, () => api(nodeB.url, "GET", "/api/v1/tasks", { token: flooder }))),
      Promise.all([nodeA, nodeB].map((node) => api(node.url, "GET", "/api/v1/tasks", { token: calm }))),
    ]);
    const floodSeconds = (Date.now() - floodStarted) / 1000;
    const passed = [...onA, ...onB].filter((r) => r.status === 200).length;
    const allowed = 5 * (Math.floor(floodSeconds) + 1) + 5 * (Math.floor(floodSeconds / 10) + 1);
    assert.ok(
      onB.some((r) => r.status === 429),
      "node B refuses the flooding tenant too",
    );
    assert.ok(
      passed <= allowed,
      `both nodes let ${passed} of 50 through in ${floodSeconds.toFixed(1)} s; one shared limit allows ${allowed}`,
    );
    assert.deepEqual(
      calmAnswers.map((r) => r.status),
      [200, 200],
      "another tenant is served on both nodes meanwhile",
    );
    assert.ok((await rateLimitedTotal(nodeA, "rest")) >= refusedA.length);
  });

  it("SOCKET_EVENTS_PER_SECOND: a flooding dashboard socket gets RATE_LIMITED acks, then is disconnected; others go on", async () => {
    const token = mintToken({ tenant: freshTenant("chatty") });
    const calm = await connect(nodeA.url, "tasks", { token });
    const flooder = await connect(nodeA.url, "tasks", { token });
    const disconnected = new Promise<string>((resolve) => flooder.once("disconnect", resolve));
    const acks: Array<{ ok: boolean; error?: { code: string } } | undefined> = [];
    // Every event counts, known or not.
    for (let i = 0; i < 300; i++)
      flooder.emit(i % 2 ? "subscribe" : "no.such.event", { room: "tasks" }, (ack: { ok: boolean }) => (acks[i] = ack));
    assert.equal(await disconnected, "io server disconnect");
    const limited = acks.filter((a) => a?.error?.code === "RATE_LIMITED").length;
    // The first second's worth is served (a subscribe still reading the room's head when the connection closed is
    // not answered), then events are refused, and nothing is answered after the disconnect.
    assert.ok(
      acks.slice(0, 5).every((a) => a === undefined || a.ok || a.error?.code === "BAD_REQUEST"),
      JSON.stringify(acks.slice(0, 5)),
    );
    assert.ok(limited >= 40, `${limited} RATE_LIMITED acks`);
    assert.ok(acks.length < 300, "nothing is answered after the disconnect");
    assert.equal((await subscribe(calm, "tasks")).ok, true, "another socket of the same tenant on the same node is unaffected");
    assert.ok((await rateLimitedTotal(nodeA, "socket")) >= 40);
  });

  it("a worker's progress flood stores a bounded number of events and the last value; identical statuses store nothing; WORKER_EVENTS_PER_SECOND", async () => {
    const tenant = freshTenant("progress");
    const token = mintToken({ tenant });
    const pool = await api(nodeA.url, "POST", "/api/v1/pools", { token, body: { name: "flood" } });
    assert.equal(pool.status, 201);
    const poolId = pool.body.pool.id as string;
    const task = await submitTask(nodeA.url, token, { type: "echo", poolId });
    // Take the job the way a worker does, with a lock token of our own, so the reports carry a real lease.
    const taken = await takeJob(tenant, poolId, "flood-worker:1");
    try {
      assert.equal(taken.job.id, task.id);
      const { lease } = taken;
      const worker = await connect(nodeB.url, "pools", {
        auth: { token: mintToken({ tenant, permissions: ["pools:work"], poolId }), worker: { id: "w-flood" } },
      });
      const report = (body: Record<string, unknown>) =>
        worker.timeout(60_000).emitWithAck("task.report", { taskId: task.id, lease, ...body }) as Promise<{
          ok: boolean;
          accepted?: boolean;
        }>;
      assert.equal((await report({ kind: "started", attempt: 1, workerId: "w-flood" })).accepted, true);

      const FLOOD = 1500;
      const started = Date.now();
      const acks = await Promise.all(
        Array.from({ length: FLOOD }, (_, i) => report({ kind: "progress", progress: Math.floor((i * 100) / FLOOD), detail: `#${i}` })),
      );
      const elapsedMs = Date.now() - started;
      assert.ok(
        acks.every((a) => a.ok && a.accepted),
        "every report is answered, accepted",
      );
      assert.equal((await report({ kind: "completed", result: { done: true } })).accepted, true);

      const statuses = await Promise.all(
        Array.from({ length: 300 }, () => request<{ ok: boolean }>(worker, "worker.status", { status: "busy" })),
      );
      assert.ok(statuses.every((s) => s.ok));

      const rows = await db.query<{ type: string; data: { progress?: number; detail?: string } }>(
        `SELECT e.type, e.data FROM "RoomEvent" r JOIN "Event" e ON e.id = r."eventId" WHERE r."tenantId" = $1 AND r.namespace = 'tasks' AND r.room = $2 ORDER BY r.seq`,
        [tenant, `task:${task.id}`],
      );
      const progress = rows.filter((r) => r.type === "task.progress");
      const bound = Math.ceil(elapsedMs / PROGRESS_STORE_INTERVAL_MS) + 1;
      console.log(`      ${FLOOD} progress reports in ${elapsedMs} ms stored ${progress.length} task.progress events (at most ${bound})`);
      assert.ok(
        progress.length >= 1 && progress.length <= bound,
        `${progress.length} stored, at most one per ${PROGRESS_STORE_INTERVAL_MS} ms`,
      );
      assert.deepEqual(
        progress.at(-1)!.data,
        { taskId: task.id, status: "started", progress: 99, detail: `#${FLOOD - 1}` },
        "the last progress is stored",
      );
      assert.equal(rows.at(-1)!.type, "task.completed", "and no progress after the outcome");

      const changes = await db.query<{ n: string }>(
        `SELECT count(*) AS n FROM "RoomEvent" r JOIN "Event" e ON e.id = r."eventId" WHERE r."tenantId" = $1 AND r.namespace = 'pools' AND r.room = 'pools' AND e.type = 'worker.status_changed' AND e.data->'worker'->>'status' = 'busy'`,
        [tenant],
      );
      assert.equal(Number(changes[0]!.n), 1, "300 identical statuses store one change");

      // The worker's own, higher limit (the dashboards' 5 per second did not apply above): beyond it, RATE_LIMITED.
      const burst = await Promise.all(
        Array.from({ length: 6000 }, () => request<{ ok: boolean; error: { code: string } }>(worker, "task.report", {})),
      );
      const refused = burst.filter((a) => a.error.code === "RATE_LIMITED").length;
      assert.ok(refused > 0 && burst.every((a) => ["RATE_LIMITED", "BAD_REQUEST"].includes(a.error.code)), `${refused} of 6000 refused`);
      assert.equal(worker.connected, true, "a burst is refused, not disconnected");
      assert.ok((await rateLimitedTotal(nodeB, "worker")) >= refused);
      await taken.job.moveToCompleted({ done: true }, taken.lockToken, false);
    } finally {
      await taken.close();
    }
  });

  it("an Engine.IO session that joins no namespace within CONNECT_TIMEOUT_MS is closed; an authenticated one stays", async () => {
    const open = (): Promise<WebSocket> =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`${nodeA.url.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`);
        ws.on("error", reject);
        ws.once("message", (data: Buffer) =>
          data.toString().startsWith("0") ? resolve(ws) : reject(new Error(`no open packet: ${data.toString()}`)),
        );
      });
    const silent = await open();
    const refused = await open();
    const member = await connect(nodeA.url, "tasks", { token: mintToken({ tenant: freshTenant("member") }) });
    try {
      // Answer pings, so that only the missing namespace can close them.
      for (const ws of [silent, refused]) ws.on("message", (data: Buffer) => data.toString() === "2" && ws.send("3"));
      const refusal = new Promise<string>((resolve) =>
        refused.on("message", (data: Buffer) => data.toString().startsWith("44") && resolve(data.toString())),
      );
      refused.send(`40/tasks,${JSON.stringify({ token: "not-a-token" })}`);
      assert.match(await refusal, /"code":"TOKEN_INVALID"/);
      const closed = (ws: WebSocket) =>
        new Promise<void>((resolve) => (ws.readyState === WebSocket.CLOSED ? resolve() : ws.once("close", () => resolve())));
      await Promise.all([closed(silent), closed(refused)]);
      await sleep(Number(LIMITS.CONNECT_TIMEOUT_MS));
      assert.equal(member.connected, true, "a socket that joined a namespace is not affected");
      assert.equal((await subscribe(member, "tasks")).ok, true);
    } finally {
      silent.terminate();
      refused.terminate();
    }
  });
});

describe("a tenant's share of a node (NODE_WORK_CONCURRENCY, TENANT_WORK_CONCURRENCY)", () => {
  let node: ServerProcess;
  before(async () => {
    node = await startServer({
      NODE_WORK_CONCURRENCY: "2",
      TENANT_WORK_CONCURRENCY: "1",
      REST_RATE_PER_TENANT: "10000",
      EMBEDDED_WORKER: "false",
    });
  });
  after(async () => {
    await node?.stop();
  });

  it("a tenant with 60 requests in flight waits on its own: another tenant's request, sent after them, is answered before most of them", async () => {
    const flooder = mintToken({ tenant: freshTenant("flood") });
    const other = mintToken({ tenant: freshTenant("quiet") });
    // Both tenants exist before the race (the first request of a tenant creates its row).
    assert.equal((await api(node.url, "GET", "/api/v1/pools", { token: flooder })).status, 200);
    assert.equal((await api(node.url, "GET", "/api/v1/pools", { token: other })).status, 200);
    const finished: string[] = [];
    const flood = Array.from({ length: 60 }, (_, i) =>
      api(node.url, "GET", "/api/v1/tasks/counts", { token: flooder }).then((response) => {
        assert.equal(response.status, 200, JSON.stringify(response.body));
        finished.push(`flood-${i}`);
      }),
    );
    await sleep(20);
    const quiet = api(node.url, "GET", "/api/v1/pools", { token: other }).then((response) => {
      assert.equal(response.status, 200);
      finished.push("quiet");
    });
    await Promise.all([...flood, quiet]);
    const position = finished.indexOf("quiet");
    // Without the share all 61 would run at once and the quiet request would queue for a database connection
    // behind most of the flood. With it the flood runs one at a time and the quiet request takes the free place.
    assert.ok(position < 30, `the quiet tenant's request finished ${position + 1}th of 61`);
    const work = parseMetrics((await api<string>(node.url, "GET", "/metrics")).body);
    assert.deepEqual(
      select(work, "switchyard_tenant_work")
        .map((s) => [s.labels.state, s.value])
        .sort(),
      [
        ["running", 0],
        ["waiting", 0],
      ],
      "every place was given back (/metrics takes none)",
    );
  });
});
