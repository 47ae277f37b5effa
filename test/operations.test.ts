import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { runCli } from "./support/cli.js";
import { connect, subscribe } from "./support/clients.js";
import { freshTenant } from "./support/env.js";
import { healthcheck } from "./support/healthcheck.js";
import { api } from "./support/http.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { sharedServer } from "./support/shared.js";
import { mintToken } from "./support/tokens.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

describe("operations", () => {
  let server: ServerProcess;
  before(async () => {
    server = await sharedServer();
  });

  it("serves /health and /ready with real Redis and PostgreSQL checks", async () => {
    assert.deepEqual((await api(server.url, "GET", "/health")).body.status, "ok");
    const ready = await api(server.url, "GET", "/ready");
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body, { status: "ready", node: server.nodeId, checks: { redis: "ok", postgres: "ok" } });
  });

  it("exposes Prometheus metrics with sockets and subscriptions per namespace", async () => {
    const socket = await connect(server.url, "workflows", { token: mintToken({ tenant: freshTenant() }) });
    await subscribe(socket, "workflows");
    const metrics = await api<string>(server.url, "GET", "/metrics");
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get("content-type") ?? "", /text\/plain/);
    assert.match(metrics.body, /switchyard_connected_sockets\{namespace="workflows",node="[^"]+"\} [1-9]/);
    assert.match(metrics.body, /switchyard_subscriptions\{namespace="workflows",node="[^"]+"\} [1-9]/);
    assert.match(metrics.body, /process_resident_memory_bytes/);
  });

  it("turns /ready to 503 naming Redis when Redis is unreachable, and keeps serving /health", async () => {
    const node = await startServer({ REDIS_URL: "redis://127.0.0.1:6399" });
    try {
      const ready = await api(node.url, "GET", "/ready");
      assert.equal(ready.status, 503);
      assert.deepEqual(ready.body.checks, { redis: "unavailable", postgres: "ok" });
      assert.equal((await api(node.url, "GET", "/health")).status, 200);
      const check = await healthcheck([node.url]);
      assert.notEqual(check.code, 0);
      assert.match(check.stderr, /ready.*redis/);
    } finally {
      await node.stop();
    }
  });

  it("turns /ready to 503 naming PostgreSQL when the database is unreachable", async () => {
    const node = await startServer({ DATABASE_URL: "postgresql://postgres@127.0.0.1:5999/none" });
    try {
      const ready = await api(node.url, "GET", "/ready");
      assert.equal(ready.status, 503);
      assert.deepEqual(ready.body.checks, { redis: "ok", postgres: "unavailable" });
    } finally {
      await node.stop();
    }
  });

  it("healthcheck.sh exits 0 against a healthy node and non-zero with a reason against a stopped one", async () => {
    const healthy = await healthcheck([server.url]);
    assert.equal(healthy.code, 0, healthy.stderr);
    const node = await startServer();
    await node.stop();
    const stopped = await healthcheck([node.url]);
    assert.notEqual(stopped.code, 0);
    assert.equal(stopped.stderr.trim().split("\n").length, 1);
    assert.match(stopped.stderr, /unhealthy: \/health/);
  });

  it("refuses to start on invalid configuration with one line per bad variable", async () => {
    const error = await startServer({ PORT: "http", REDIS_URL: "nope", EMBEDDED_WORKER: "maybe" }).then(
      () => assert.fail("started"),
      (e: Error) => e.message,
    );
    assert.match(error, /config error: PORT: /);
    assert.match(error, /config error: REDIS_URL: /);
    assert.match(error, /config error: EMBEDDED_WORKER: /);
  });

  it("in production refuses to start without JWT_SECRET; in development warns and generates one", async () => {
    const prod = await startServer({ NODE_ENV: "production", JWT_SECRET: "" }).then(
      () => assert.fail("started"),
      (e: Error) => e.message,
    );
    assert.match(prod, /config error: JWT_SECRET: required/);
    // The node writes its throwaway key next to where it runs (here the repository): keep a developer's own.
    const keyFile = path.join(repoRoot, ".switchyard", "dev-jwt-secret");
    const before = existsSync(keyFile) ? readFileSync(keyFile) : undefined;
    const dev = await startServer({ JWT_SECRET: "" });
    try {
      assert.match(dev.logs(), /"level":40.*JWT_SECRET is not set/);
      assert.match(dev.logs(), /npm run token/);
      // The key is in a file only its owner can read, and nowhere in the log.
      const key = readFileSync(keyFile, "utf8").trim();
      assert.ok(key.length >= 32);
      assert.equal(statSync(keyFile).mode & 0o777, 0o600);
      assert.ok(!dev.logs().includes(key), "the key is not logged");
      // `npm run token` there, without JWT_SECRET, signs with it: the node takes the token.
      const mint = runCli(
        process.execPath,
        ["--import", "tsx", "scripts/mint-token.ts", "--tenant", freshTenant("devkey"), "--permissions", "admin"],
        {
          cwd: repoRoot,
          env: { PATH: process.env.PATH ?? "" },
        },
      );
      assert.equal(await mint.exited, 0, mint.stderr());
      assert.match(mint.stderr(), /throwaway key/);
      assert.equal((await api(dev.url, "GET", "/api/v1/tasks", { token: mint.stdout().trim() })).status, 200);
    } finally {
      await dev.stop();
      if (before) writeFileSync(keyFile, before, { mode: 0o600 });
      else rmSync(keyFile, { force: true });
    }
  });

  it("on SIGTERM tells clients to reconnect elsewhere, closes them and exits 0", async () => {
    const node = await startServer();
    const socket = await connect(node.url, "tasks", { token: mintToken({ tenant: freshTenant() }) });
    const told = new Promise<unknown>((resolve) => socket.once("server.shutdown", resolve));
    const disconnected = new Promise<string>((resolve) => socket.once("disconnect", resolve));
    const code = await node.stop();
    assert.equal(code, 0);
    assert.deepEqual(await told, { node: node.nodeId, reconnect: true });
    // "transport close" (not "io server disconnect") is the reason on which socket.io-client reconnects by itself.
    assert.equal(await disconnected, "transport close");
  });
});
