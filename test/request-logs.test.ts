import assert from "node:assert/strict";
import { connect, sleep } from "./support/clients.js";
import { freshTenant } from "./support/env.js";
import { api } from "./support/http.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { mintToken } from "./support/tokens.js";

/** The node's JSON log lines so far. */
function logLines(server: ServerProcess): Array<Record<string, unknown>> {
  return server
    .logs()
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

async function waitForLine(server: ServerProcess, match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const found = logLines(server).find(match);
    if (found) return found;
    await sleep(50);
  }
  assert.fail(`no matching log line in:\n${server.logs()}`);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe("operations: request ids and useful logs", () => {
  let server: ServerProcess;
  const tenant = freshTenant();
  const token = mintToken({ tenant, sub: "alice", permissions: ["admin"] });

  before(async () => {
    server = await startServer({ LOG_LEVEL: "debug" });
  });
  after(async () => {
    await server.stop();
  });

  it("answers every REST response with X-Request-Id: the caller's when valid, else a new one", async () => {
    const kept = await api(server.url, "GET", "/api/v1/pools", { token, headers: { "x-request-id": "dash-42.retry:1" } });
    assert.equal(kept.status, 200);
    assert.equal(kept.headers.get("x-request-id"), "dash-42.retry:1");

    for (const bad of ["has spaces", "x".repeat(129), "semi;colon"]) {
      const replaced = await api(server.url, "GET", "/api/v1/pools", { token, headers: { "x-request-id": bad } });
      assert.match(replaced.headers.get("x-request-id") ?? "", UUID, `replaces ${JSON.stringify(bad)}`);
    }
    const refused = await api(server.url, "GET", "/api/v1/pools");
    assert.equal(refused.status, 401);
    assert.match(refused.headers.get("x-request-id") ?? "", UUID);
    const unknown = await api(server.url, "GET", "/nowhere", { token });
    assert.equal(unknown.status, 404);
    assert.match(unknown.headers.get("x-request-id") ?? "", UUID);
    const health = await api(server.url, "GET", "/health");
    assert.match(health.headers.get("x-request-id") ?? "", UUID);
  });

  it("logs each request under its id, with the tenant and subject once authenticated, and never the token", async () => {
    const ok = await api(server.url, "POST", "/api/v1/tasks", {
      token,
      body: { type: "echo", payload: { n: 1 } },
      headers: { "x-request-id": "submit-1" },
    });
    assert.equal(ok.status, 202);
    const line = await waitForLine(server, (l) => l.reqId === "submit-1" && l.msg === "request completed");
    assert.equal(line.tenant, tenant);
    assert.equal(line.sub, "alice");
    assert.deepEqual(line.res, { statusCode: 202 });
    assert.deepEqual(line.req, { method: "POST", url: "/api/v1/tasks" });

    const bad = await api(server.url, "POST", "/api/v1/tasks", { rawBody: "{not json", token, headers: { "x-request-id": "broken-1" } });
    assert.equal(bad.status, 400);
    const refusal = await waitForLine(server, (l) => l.reqId === "broken-1" && l.msg === "request completed");
    assert.equal(refusal.level, 30, "a refused request is logged at info");

    assert.ok(!server.logs().includes(token), "the token never reaches the log");
    // One id per line: the access line's binding and the request context do not both write it.
    const raw = server
      .logs()
      .split("\n")
      .find((l) => l.includes('"submit-1"'));
    assert.equal(raw?.match(/"reqId"/g)?.length, 1, raw);
  });

  it("logs sockets connecting and disconnecting at debug, with tenant, namespace and reason", async () => {
    const socket = await connect(server.url, "tasks", { token });
    const connected = await waitForLine(server, (l) => l.msg === "socket connected" && l.tenant === tenant);
    assert.equal(connected.nsp, "tasks");
    assert.equal(connected.sub, "alice");
    socket.disconnect();
    const gone = await waitForLine(server, (l) => l.msg === "socket disconnected" && l.tenant === tenant);
    assert.equal(gone.reason, "client namespace disconnect");
    assert.equal(gone.nsp, "tasks");
  });
});
