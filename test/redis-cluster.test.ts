import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { SwitchyardClient, type Envelope } from "../src/client/index.js";
import { dropDatabase, setupDatabase } from "../src/db/setup.js";
import { decodeCursor } from "../src/protocol/cursor.js";
import { roomKey } from "../src/events/room-key.js";
import { connect, EventRecorder, sleep, subscribe } from "./support/clients.js";
import { freshTenant, TEST_DATABASE_URL } from "./support/env.js";
import { api } from "./support/http.js";
import { privateRedisUnavailable, startPrivateRedisCluster, type PrivateRedisCluster } from "./support/private-services.js";
import { startServer, startWorker, type ServerProcess, type WorkerProcess } from "./support/server.js";
import { waitForTask } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";
import { skipBecause } from "./support/skip.js";

/*
 * REDIS_CLUSTER_NODES on a real local Redis Cluster (three masters, each with a replica): two nodes and a
 * standalone worker on it, cross-node delivery through sharded pub/sub, tasks, worker presence, replay; then a
 * master fails over to its replica while events stream, and delivery resumes with nothing lost.
 *
 * Its own database: nodes on another Redis than the run's must not see (and repair, or sweep) other tests' tasks
 * and workers.
 */

const run = promisify(execFile);
const PREFIX = "sycluster";
const seqOf = (e: Envelope): number => decodeCursor(e.cursor)!.seq;

async function cli(port: number, ...args: string[]): Promise<string> {
  return (await run("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args])).stdout;
}

async function until(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string | (() => string)): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === "string" ? what : what()}`);
    await sleep(50);
  }
}

describe("Redis Cluster (REDIS_CLUSTER_NODES): sharded pub/sub, tasks, presence, replay, failover", function () {
  this.timeout(180_000);
  const unavailable = privateRedisUnavailable();
  let cluster: PrivateRedisCluster;
  let nodeA: ServerProcess;
  let nodeB: ServerProcess;
  let worker: WorkerProcess | undefined;
  const clients: Array<{ close(): void }> = [];
  const databaseUrl = (() => {
    const url = new URL(TEST_DATABASE_URL);
    url.pathname = `${url.pathname}_cluster`;
    return url.toString();
  })();
  const tenant = freshTenant("cl");
  const admin = mintToken({ tenant, permissions: ["admin", "events:publish"] });

  before(async function () {
    if (unavailable) {
      skipBecause(this, unavailable);
    }
    [cluster] = await Promise.all([startPrivateRedisCluster(3, 1), setupDatabase(databaseUrl)]);
    const env = {
      REDIS_CLUSTER_NODES: cluster.spec,
      // A URL nobody listens on: in cluster mode nothing may use it.
      REDIS_URL: "redis://127.0.0.1:1",
      REDIS_PREFIX: PREFIX,
      DATABASE_URL: databaseUrl,
    };
    [nodeA, nodeB] = await Promise.all([startServer({ ...env, NODE_ID: "cluster-a" }), startServer({ ...env, NODE_ID: "cluster-b" })]);
  });

  after(async () => {
    for (const client of clients) client.close();
    await worker?.kill();
    await Promise.all([nodeA?.stop(), nodeB?.stop()]);
    await cluster?.destroy();
    await dropDatabase(databaseUrl);
  });

  it("is ready on the cluster, and ensure-services.sh waits for the cluster without starting anything", async () => {
    const ready = await api(nodeA.url, "GET", "/ready");
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
    assert.equal(ready.body.checks.redis, "ok");
    const { stdout } = await run("bash", ["scripts/ensure-services.sh"], {
      env: { PATH: process.env.PATH ?? "", REDIS_CLUSTER_NODES: cluster.spec, DATABASE_URL: databaseUrl, ENSURE_SERVICES_TIMEOUT: "10" },
    });
    assert.match(stdout, /^redis cluster: running at 127\.0\.0\.1:\d+ \(first of REDIS_CLUSTER_NODES\)$/m);
  });

  it("lists both nodes on GET /api/v1/nodes (their readings share one hash slot; no events/s on a cluster)", async () => {
    let items: Array<{ nodeId: string; eventsPerSecond: number | null }> = [];
    for (let i = 0; i < 50 && items.length < 2; i++) {
      items = (await api(nodeB.url, "GET", "/api/v1/nodes", { token: admin })).body.items;
      if (items.length < 2) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.deepEqual(items.map((n) => n.nodeId).sort(), ["cluster-a", "cluster-b"]);
    assert.ok(items.every((n) => n.eventsPerSecond === null));
  });

  it("delivers across nodes through sharded pub/sub (SSUBSCRIBE per room, no classic channel)", async () => {
    const socket = await connect(nodeA.url, "pools", { token: admin });
    clients.push(socket);
    const recorder = new EventRecorder(socket);
    await subscribe(socket, "pools");
    const created = await api(nodeB.url, "POST", "/api/v1/pools", { token: admin, body: { name: "images" } });
    assert.equal(created.status, 201);
    const [event] = await recorder.until((events) => events.some((e) => e.type === "pool.created"), 15_000, "pool.created on node A");
    assert.equal((event!.data as { pool: { name: string } }).pool.name, "images");

    // The room's channel is a shard channel on the master that owns its slot, and no node uses classic pub/sub
    // for the adapter.
    const channel = `${PREFIX}:socket.io#/pools#${roomKey(tenant, "pools")}#`;
    const owner = await cluster.masterOf(channel);
    assert.match(await cli(owner.port, "pubsub", "shardchannels", `${PREFIX}:socket.io*`), new RegExp(channel.replace(/[|#.*]/g, "\\$&")));
    for (const node of cluster.nodes) assert.equal((await cli(node.port, "pubsub", "channels", `${PREFIX}:socket.io*`)).trim(), "");
  });

  it("runs tasks on the embedded worker and on a standalone worker, with its presence", async () => {
    const embedded = await api<{ task: { id: string } }>(nodeA.url, "POST", "/api/v1/tasks", {
      token: admin,
      body: { type: "echo", payload: { hello: "cluster" } },
    });
    assert.equal(embedded.status, 202);
    const done = await waitForTask(nodeB.url, admin, embedded.body.task.id, ["completed"], 30_000);
    assert.deepEqual(done.result, { hello: "cluster" });

    const pool = await api<{ pool: { id: string } }>(nodeA.url, "POST", "/api/v1/pools", { token: admin, body: { name: "gpu" } });
    const poolId = pool.body.pool.id;
    worker = startWorker({
      token: mintToken({ tenant, permissions: ["pools:work"], poolId, sub: "gpu-1" }),
      poolId,
      urls: [nodeA.url, nodeB.url],
      env: { REDIS_CLUSTER_NODES: cluster.spec, REDIS_URL: "redis://127.0.0.1:1", REDIS_PREFIX: PREFIX, WORKER_ID: "gpu-1" },
    });
    await worker.connected();
    await until(
      async () => {
        const view = await api<{ pool: { workers: Array<{ id: string; status: string }> } }>(nodeB.url, "GET", `/api/v1/pools/${poolId}`, {
          token: admin,
        });
        return view.body.pool.workers.some((w) => w.id === "gpu-1" && w.status === "idle");
      },
      20_000,
      "worker gpu-1 idle in its pool",
    );
    const task = await api<{ task: { id: string } }>(nodeB.url, "POST", "/api/v1/tasks", {
      token: admin,
      body: { type: "echo", poolId, payload: { on: "gpu" } },
    });
    const finished = await waitForTask(nodeA.url, admin, task.body.task.id, ["completed"], 30_000);
    assert.equal(finished.workerId, "gpu-1");
    assert.deepEqual(finished.result, { on: "gpu" });
  });

  it("fires a schedule on the cluster (its job scheduler and due-time jobs under the BullMQ hash tag): a task a second", async () => {
    const created = await api(nodeB.url, "POST", "/api/v1/schedules", {
      token: admin,
      body: { name: "cluster-tick", every: 1000, task: { type: "echo" } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.schedule.id as string;
    assert.ok(created.body.schedule.nextRunAt);
    await sleep(3500);
    assert.equal((await api(nodeA.url, "PATCH", `/api/v1/schedules/${id}`, { token: admin, body: { paused: true } })).status, 200);
    const tasks = (await api(nodeA.url, "GET", `/api/v1/tasks?scheduleId=${id}`, { token: admin })).body.items as Array<{
      scheduleId: string;
      createdAt: string;
    }>;
    assert.ok(tasks.length >= 2 && tasks.length <= 4, `about 3 due times, got ${tasks.length}`);
    assert.equal((await api(nodeA.url, "DELETE", `/api/v1/schedules/${id}`, { token: admin })).status, 204);
  });

  it("replays the events a client missed, from its cursor", async () => {
    // A tenant of its own: the earlier tests' worker may still report into this tenant's `pools` room meanwhile.
    const owner = mintToken({ tenant: freshTenant("clr"), permissions: ["admin"] });
    const socket = await connect(nodeA.url, "pools", { token: owner });
    clients.push(socket);
    const first = await subscribe(socket, "pools");
    socket.disconnect();
    for (let i = 0; i < 5; i++)
      assert.equal((await api(nodeB.url, "POST", "/api/v1/pools", { token: owner, body: { name: `replay-${i}` } })).status, 201);
    const again = await connect(nodeB.url, "pools", { token: owner });
    clients.push(again);
    const recorder = new EventRecorder(again);
    const ack = await subscribe(again, "pools", first.cursor);
    assert.equal(ack.replayed, 5, `replayed: ${recorder.events.map((e) => `${e.type}@${e.cursor}`).join(", ")}`);
    assert.deepEqual(
      recorder.of("pool.created").map((e) => (e.data as { pool: { name: string } }).pool.name),
      [0, 1, 2, 3, 4].map((i) => `replay-${i}`),
    );
  });

  it("keeps delivering through a master's failover to its replica; a resubscribing client loses nothing", async () => {
    const room = "pool:default";
    const client = new SwitchyardClient({
      urls: [nodeA.url],
      namespace: "pools",
      token: admin,
      socketOptions: { transports: ["websocket"] },
    });
    clients.push(client);
    const delivered: Envelope[] = [];
    await client.subscribe(room, (event) => delivered.push(event));
    // A plain socket too: it shows live delivery itself resuming, not just the client's catch-up.
    const raw = await connect(nodeA.url, "pools", { token: admin });
    clients.push(raw);
    const live = new EventRecorder(raw);
    await subscribe(raw, room);

    let published = 0;
    let publishing = true;
    // What the publisher got back, by status (or error): a timeout below says whether publishing or delivery stalled.
    const outcomes = new Map<string, number>();
    const publisher = (async () => {
      while (publishing) {
        let outcome: string;
        try {
          const response = await api(nodeB.url, "POST", "/api/v1/events", {
            token: admin,
            body: { type: "deploy.step", namespace: "pools", room, data: { n: published + 1 } },
            timeoutMs: 20_000,
          });
          if (response.status === 202) published++;
          outcome = response.status === 202 ? "202" : `${response.status} ${JSON.stringify(response.body).slice(0, 120)}`;
        } catch (error) {
          outcome = `error ${(error as Error).message}`;
        }
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        await sleep(50);
      }
    })();
    const diagnosis = (): string => {
      const seen = live.of("deploy.step").map((e) => (e.data as { n: number }).n);
      const problems = [nodeA, nodeB].flatMap((node) =>
        node
          .logs()
          .split("\n")
          .filter((line) => /"level":(40|50|60)/.test(line))
          .slice(-8),
      );
      return `published ${published} (${[...outcomes].map(([o, n]) => `${o} ×${n}`).join(", ")}); raw socket saw up to n=${Math.max(0, ...seen)}; client ${delivered.length}; node warnings:\n${problems.join("\n")}`;
    };
    await until(
      () => delivered.length >= 10,
      20_000,
      () => `events before the failover: ${diagnosis()}`,
    );

    const owner = await cluster.masterOf(`${PREFIX}:socket.io#/pools#${roomKey(tenant, room)}#`);
    const promoted = await cluster.failover(owner);
    assert.notEqual(promoted.port, owner.port);
    const afterFailover = published;
    // Live delivery resumes: the plain socket sees events published well after the failover.
    await until(
      () => live.of("deploy.step").some((e) => (e.data as { n: number }).n > afterFailover + 10),
      30_000,
      () => `live delivery after the failover: ${diagnosis()}`,
    );
    publishing = false;
    await publisher;
    await until(
      () => delivered.filter((e) => e.type === "deploy.step").length >= published,
      30_000,
      () => `all ${published} events through the client: ${diagnosis()}`,
    );

    const steps = delivered.filter((e) => e.type === "deploy.step");
    assert.deepEqual(
      steps.map((e) => (e.data as { n: number }).n),
      Array.from({ length: published }, (_, i) => i + 1),
      "every event once, in order",
    );
    const seqs = delivered.map(seqOf);
    for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1]! + 1, "consecutive cursors");
  });
  it("fails the same shard over back and forth; live delivery resumes each time", async () => {
    const room = "pool:default";
    const raw = await connect(nodeA.url, "pools", { token: admin });
    clients.push(raw);
    const live = new EventRecorder(raw);
    await subscribe(raw, room);
    let published = 0;
    let publishing = true;
    const publisher = (async () => {
      while (publishing) {
        try {
          const response = await api(nodeB.url, "POST", "/api/v1/events", {
            token: admin,
            body: { type: "flip.step", namespace: "pools", room, data: { n: published + 1 } },
            timeoutMs: 20_000,
          });
          if (response.status === 202) published++;
        } catch {
          // counted by what the socket sees
        }
        await sleep(50);
      }
    })();
    const maxSeen = (): number => Math.max(0, ...live.of("flip.step").map((e) => (e.data as { n: number }).n));
    try {
      for (let round = 1; round <= 3; round++) {
        const owner = await cluster.masterOf(`${PREFIX}:socket.io#/pools#${roomKey(tenant, room)}#`);
        await cluster.failover(owner);
        const at = published;
        await until(
          () => maxSeen() > at + 5,
          30_000,
          () => `delivery after failover ${round}: published ${published}, the socket saw up to ${maxSeen()}`,
        );
        // The masters refuse to vote for another failover of this shard within twice the node timeout.
        await sleep(4500);
      }
    } finally {
      publishing = false;
      await publisher;
    }
  });
});
