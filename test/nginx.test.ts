import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { SwitchyardClient, type Envelope } from "../src/client/index.js";
import { decodeCursor } from "../src/protocol/cursor.js";
import { sleep } from "./support/clients.js";
import { freshTenant } from "./support/env.js";
import { api } from "./support/http.js";
import { checkConfig, nginxUnavailable, SHIPPED_CONFIG, siteConfig, startNginx, stopAllNginx, type NginxProcess } from "./support/nginx.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { mintToken } from "./support/tokens.js";
import { skipBecause } from "./support/skip.js";

const seqOf = (e: Envelope): number => decodeCursor(e.cursor)!.seq;

async function until(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A node's `switchyard_connected_sockets` for a namespace, read from its own /metrics (not through nginx). */
async function connectedSockets(node: ServerProcess, namespace: string): Promise<number> {
  const metrics = await api<string>(node.url, "GET", "/metrics");
  const match = new RegExp(`^switchyard_connected_sockets\\{[^}]*namespace="${namespace}"[^}]*\\} (\\d+)`, "m").exec(metrics.body);
  return match ? Number(match[1]) : 0;
}

// Closed after each test whatever happened: an open client keeps reconnecting and mocha from exiting.
const openClients = new Set<SwitchyardClient<"pools">>();

/** A SwitchyardClient that only knows nginx's address, on one transport, collecting what it delivers. */
async function clientThrough(lb: NginxProcess, token: string, room: string, transport: "websocket" | "polling") {
  const client = new SwitchyardClient({ urls: [lb.url], namespace: "pools", token, socketOptions: { transports: [transport] } });
  openClients.add(client);
  const delivered: Envelope[] = [];
  const resets: string[] = [];
  let connects = 0;
  client.socket.on("connect", () => connects++);
  client.onReset((_room, reason) => resets.push(reason));
  // Without sticky sessions a polling client never gets past its handshake: fail saying so, not at mocha's timeout.
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the ${transport} client did not connect and subscribe through nginx within 20 s`)), 20_000);
  });
  try {
    await Promise.race([client.subscribe(room, (event) => delivered.push(event)), stuck]);
  } finally {
    clearTimeout(timer);
  }
  return { client, transport, delivered, resets, connects: () => connects };
}

function assertExactlyOnceInOrder(events: Envelope[], count: number, what: string): void {
  const seqs = events.map(seqOf);
  assert.equal(seqs.length, count, `${what}: expected ${count} events, got ${seqs.length}`);
  for (let i = 1; i < seqs.length; i++)
    assert.equal(seqs[i], seqs[i - 1]! + 1, `${what}: gap or disorder at ${i}: ${seqs.slice(Math.max(0, i - 3), i + 2).join(",")}`);
  assert.equal(new Set(events.map((e) => e.id)).size, count, `${what}: each event once`);
}

describe("behind nginx (deploy/nginx/switchyard.conf)", function () {
  before(function () {
    const reason = nginxUnavailable();
    if (reason) {
      skipBecause(this, reason);
    }
  });
  afterEach(async () => {
    await stopAllNginx();
  });

  it("passes nginx -t as shipped and with the node list and listen address filled in", async () => {
    const shipped = await readFile(SHIPPED_CONFIG, "utf8");
    assert.match(await checkConfig(shipped), /test is successful/);
    const filled = siteConfig(shipped, ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"], "127.0.0.1:8080");
    assert.match(filled, /^\s*server 127\.0\.0\.1:3 max_fails=1 fail_timeout=10s;$/m);
    assert.match(await checkConfig(filled), /test is successful/);
  });

  describe("in front of an HTTP server that echoes what it receives", () => {
    let echo: Server;
    let received: IncomingHttpHeaders[];
    beforeEach(async () => {
      received = [];
      echo = createServer((req, res) => {
        received.push(req.headers);
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ url: req.url }));
      });
      await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
    });
    afterEach(async () => {
      await stopEcho();
    });
    async function stopEcho(): Promise<void> {
      echo.closeAllConnections();
      if (echo.listening) await new Promise<void>((resolve) => echo.close(() => resolve()));
    }

    it("passes X-Forwarded-For/-Proto, the caller's X-Request-Id or its own, and refuses /metrics in seven spellings", async () => {
      const lb = await startNginx([`127.0.0.1:${(echo.address() as AddressInfo).port}`]);
      const own = await api(lb.url, "GET", "/health", {
        headers: { "x-request-id": "caller-chosen-id-1", "x-forwarded-for": "198.51.100.7" },
      });
      assert.equal(own.status, 200);
      const generated = await api(lb.url, "GET", "/health");
      assert.equal(generated.status, 200);
      assert.equal(received.length, 2);
      const [first, second] = received as [IncomingHttpHeaders, IncomingHttpHeaders];
      assert.equal(first["x-request-id"], "caller-chosen-id-1");
      assert.match(String(second["x-request-id"]), /^[0-9a-f]{32}$/, "nginx makes one up when the caller sent none");
      // The address nginx saw is appended last: the one a node may trust.
      assert.equal(first["x-forwarded-for"], "198.51.100.7, 127.0.0.1");
      assert.equal(second["x-forwarded-for"], "127.0.0.1");
      assert.equal(first["x-forwarded-proto"], "http");
      assert.equal(first["x-real-ip"], "127.0.0.1");

      for (const path of ["/metrics", "/METRICS", "/metrics/", "/Metrics?x=1", "//metrics", "/%6detrics", "/metrics/../metrics"]) {
        const refused = await api(lb.url, "GET", path);
        assert.equal(refused.status, 404, `${path} must not reach a node`);
        assert.equal(refused.body.error.code, "NOT_FOUND", path);
      }
      assert.equal(received.length, 2, "no /metrics request reached the upstream");
      // Only /metrics is hidden: neighbours of the name still go through.
      assert.equal((await api(lb.url, "GET", "/metricsx")).status, 200);
    });

    it("answers a coded 503 UNAVAILABLE, not an HTML page, when no node is reachable", async () => {
      const lb = await startNginx([`127.0.0.1:${(echo.address() as AddressInfo).port}`]);
      await stopEcho();
      const down = await api(lb.url, "GET", "/api/v1/pools");
      assert.equal(down.status, 503);
      assert.equal(down.body.error.code, "UNAVAILABLE");
      assert.equal(down.headers.get("retry-after"), "1");
    });
  });

  describe("in front of two Switchyard nodes", () => {
    let nodes: ServerProcess[];
    beforeEach(async () => {
      nodes = await Promise.all([startServer({ NODE_ID: "lb-a" }), startServer({ NODE_ID: "lb-b" })]);
    });
    afterEach(async () => {
      for (const client of openClients) client.close();
      openClients.clear();
      await stopAllNginx();
      await Promise.all(nodes.map((node) => node.kill()));
    });

    it("WebSocket and polling clients connect through it, get events from both nodes, and after kill -9 of their node catch up through it on the other", async function () {
      this.timeout(120_000); // two nodes, nginx and a failover on a busy machine: only a guard against hanging
      const lb = await startNginx(nodes.map((node) => `127.0.0.1:${node.port}`));
      const token = mintToken({ tenant: freshTenant("lb") });
      // REST through nginx too.
      const created = await api(lb.url, "POST", "/api/v1/pools", { token, body: { name: "behind-nginx" } });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const poolId = created.body.pool.id as string;
      const room = `pool:${poolId}`;
      assert.equal((await api(lb.url, "GET", "/health")).status, 200);
      assert.equal((await api(lb.url, "GET", "/metrics")).status, 404);

      const clients = [await clientThrough(lb, token, room, "websocket"), await clientThrough(lb, token, room, "polling")];
      for (const c of clients) assert.equal(c.client.socket.io.engine.transport.name, c.transport);

      // Sticky: every request of both clients (the polling one makes many) went to one node, chosen by address.
      const counts = await Promise.all(nodes.map((node) => connectedSockets(node, "pools")));
      const home = counts.findIndex((count) => count === 2);
      assert.ok(home >= 0, `both clients on one node, found ${counts.join(" and ")}`);
      const [victim, survivor] = [nodes[home]!, nodes[1 - home]!];

      // Events published on either node reach both clients through nginx.
      let published = 0;
      const scale = async (node: ServerProcess): Promise<void> => {
        const response = await api(node.url, "POST", `/api/v1/pools/${poolId}/scale`, { token, body: { desiredWorkers: ++published } });
        assert.equal(response.status, 202, JSON.stringify(response.body));
      };
      for (let i = 0; i < 20; i++) await scale(nodes[i % 2]!);
      for (const c of clients) await until(() => c.delivered.length >= 20, 15_000, `20 events on the ${c.transport} client`);

      // kill -9 the node both clients are on; publish through the survivor while they reconnect through nginx.
      const killedAt = Date.now();
      await victim.kill();
      for (let i = 0; i < 30; i++) {
        await scale(survivor);
        await sleep(10);
      }
      const caughtUpAfter = await Promise.all(
        clients.map(async (c) => {
          await until(() => c.delivered.length >= 50, 30_000, `50 events on the ${c.transport} client after failover`);
          return `${c.transport} ${Date.now() - killedAt} ms`;
        }),
      );
      // Reported, not asserted: from the kill to each client having every event (30 published meanwhile, one by one).
      console.log(`      failover through nginx: caught up after ${caughtUpAfter.join(", ")}`);
      await until(async () => (await connectedSockets(survivor, "pools")) === 2, 15_000, "both clients on the surviving node");
      await sleep(300); // a duplicate would arrive now
      for (const c of clients) {
        assert.ok(c.connects() >= 2, `the ${c.transport} client reconnected`);
        assert.equal(c.client.socket.io.engine.transport.name, c.transport);
        assertExactlyOnceInOrder(c.delivered, 50, `${c.transport} client`);
        assert.deepEqual(c.resets, []);
      }
      assert.deepEqual(
        clients[0]!.delivered.map((e) => e.id),
        clients[1]!.delivered.map((e) => e.id),
        "both saw the same events in the same order",
      );

      // New events keep flowing to them through nginx.
      await scale(survivor);
      for (const c of clients) await until(() => c.delivered.length >= 51, 15_000, `a live event on the ${c.transport} client`);
    });
  });
});
