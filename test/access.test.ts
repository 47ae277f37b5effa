import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import http from "node:http";
import { Redis } from "ioredis";
import jwt from "jsonwebtoken";
import WebSocket from "ws";
import type { Socket } from "socket.io-client";
import { connect, connectError, openSocket, sleep } from "./support/clients.js";
import { eventually } from "./support/faults.js";
import { freshTenant, TEST_JWT_SECRET, TEST_REDIS_PREFIX, TEST_REDIS_URL } from "./support/env.js";
import { api } from "./support/http.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { mintToken } from "./support/tokens.js";

const ALLOWED_ORIGIN = "https://app.example";
const EVIL_ORIGIN = "https://evil.example";
const HANDSHAKE_PATH = "/socket.io/?EIO=4";

interface HttpAnswer {
  status: number;
  body: string;
}

/** Engine.IO's first long-polling request (the one that opens a session), with the headers given. */
function pollingHandshake(baseUrl: string, headers: Record<string, string>): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.get(`${baseUrl}${HANDSHAKE_PATH}&transport=polling`, { headers, agent: false }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (body += chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on("error", reject);
  });
}

/** A WebSocket opened directly (no polling first): 101 when the server upgrades, else its HTTP answer. */
function websocketHandshake(baseUrl: string, origin?: string): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${baseUrl.replace(/^http/, "ws")}${HANDSHAKE_PATH}&transport=websocket`, origin ? { origin } : {});
    ws.once("open", () => {
      ws.terminate();
      resolve({ status: 101, body: "" });
    });
    // With this listener `ws` hands over the refusal instead of failing with a generic error.
    ws.once("unexpected-response", (request, response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (body += chunk));
      response.on("end", () => {
        request.destroy();
        resolve({ status: response.statusCode ?? 0, body });
      });
    });
    ws.once("error", reject);
  });
}

/** Waits for the socket to be told its session was revoked and to be disconnected; returns both. */
function revokedSession(socket: Socket): Promise<[unknown, string]> {
  return Promise.all([
    new Promise<unknown>((resolve) => socket.once("session.revoked", resolve)),
    new Promise<string>((resolve) => socket.once("disconnect", resolve)),
  ]);
}

async function revoke(node: ServerProcess, token: string, body: unknown) {
  return api(node.url, "POST", "/api/v1/tokens/revoke", { token, body });
}

/** What a REST call with the token answers: 200, or the 401's code. */
async function restWith(node: ServerProcess, token: string): Promise<number | string> {
  const response = await api(node.url, "GET", "/api/v1/tasks?limit=1", { token });
  return response.status === 200 ? 200 : `${response.status} ${response.body?.error?.code}`;
}

const nowS = (): number => Math.floor(Date.now() / 1000);

describe("access control", function () {
  this.timeout(60_000);
  // Two nodes sharing Redis and PostgreSQL, with CORS_ORIGINS set and the default JWT_CLOCK_TOLERANCE_S (5 s).
  let a: ServerProcess;
  let b: ServerProcess;

  before(async () => {
    const env = { CORS_ORIGINS: ALLOWED_ORIGIN, EMBEDDED_WORKER: "false" };
    [a, b] = await Promise.all([startServer(env), startServer(env)]);
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  describe("Origin on Socket.IO handshakes (CORS_ORIGINS set)", () => {
    it("refuses another origin with 403 on long-polling", async () => {
      const answer = await pollingHandshake(a.url, { origin: EVIL_ORIGIN });
      assert.equal(answer.status, 403);
      assert.match(answer.body, /origin https:\/\/evil\.example is not allowed/);
    });

    it("refuses another origin with 403 on a WebSocket", async () => {
      const answer = await websocketHandshake(a.url, EVIL_ORIGIN);
      assert.equal(answer.status, 403);
      assert.equal(JSON.parse(answer.body).code, "FORBIDDEN");
    });

    it("admits a listed origin, the node's own origin, and handshakes without Origin, on both transports", async () => {
      for (const origin of [ALLOWED_ORIGIN, a.url, undefined]) {
        const polling = await pollingHandshake(a.url, origin ? { origin } : {});
        assert.equal(polling.status, 200, `polling with Origin ${origin}: ${polling.body}`);
        assert.match(polling.body, /^0\{"sid"/, "an Engine.IO open packet");
        assert.equal((await websocketHandshake(a.url, origin)).status, 101, `WebSocket with Origin ${origin}`);
      }
    });

    it("refuses a listed origin's look-alikes and the opaque origin null", async () => {
      for (const origin of ["https://app.example.evil.example", "http://app.example", "https://app.example:8443", "null"]) {
        assert.equal((await pollingHandshake(a.url, { origin })).status, 403, origin);
        assert.equal((await websocketHandshake(a.url, origin)).status, 403, origin);
      }
    });

    it("shows socket.io-client a transport error, and keeps serving after refusals", async () => {
      const token = mintToken({ tenant: freshTenant() });
      const overWebSocket = await connectError(a.url, "tasks", { token, extraHeaders: { origin: EVIL_ORIGIN }, transports: ["websocket"] });
      assert.equal(overWebSocket.message, "websocket error");
      const overPolling = await connectError(a.url, "tasks", { token, extraHeaders: { origin: EVIL_ORIGIN }, transports: ["polling"] });
      assert.equal(overPolling.message, "xhr poll error");
      const socket = await connect(a.url, "tasks", { token, transports: ["polling", "websocket"] });
      assert.equal(socket.connected, true);
    });
  });

  describe("revocation by jti", () => {
    it("refuses the token on every node, ends its sessions there, and leaves the subject's other tokens alone", async () => {
      const tenant = freshTenant("rj");
      const admin = mintToken({ tenant, sub: "admin-1" });
      const jti = randomUUID();
      const stolen = mintToken({ tenant, sub: "alice", permissions: ["tasks:read", "pools:read"], jti });
      const sibling = mintToken({ tenant, sub: "alice", permissions: ["tasks:read", "pools:read"] });
      // Sessions in two namespaces on node B and one on node A (each its own connection).
      const sessions = await Promise.all([
        connect(b.url, "tasks", { token: stolen }),
        connect(b.url, "pools", { token: stolen }),
        connect(a.url, "tasks", { token: stolen }),
      ]);
      const ended = sessions.map(revokedSession);
      const siblingSocket = await connect(b.url, "tasks", { token: sibling });
      let siblingEnded = false;
      siblingSocket.on("session.revoked", () => (siblingEnded = true));

      const response = await revoke(a, admin, { jti });
      assert.equal(response.status, 202, JSON.stringify(response.body));
      assert.equal(response.body.revoked.jti, jti);
      assert.equal(response.body.revoked.tenantId, tenant);
      assert.ok(!Number.isNaN(Date.parse(response.body.revoked.at)));

      // Right after the 202 from A, B refuses it too: the announcement reached B before the 202 left A.
      assert.equal(await restWith(b, stolen), "401 TOKEN_REVOKED");
      assert.equal(await restWith(a, stolen), "401 TOKEN_REVOKED");
      for (const [info, reason] of await Promise.all(ended)) {
        assert.deepEqual(info, { reason: "token_revoked" });
        assert.equal(reason, "io server disconnect");
      }
      for (const node of [a, b]) {
        const refused = await connectError(node.url, "tasks", { token: stolen });
        assert.equal(refused.message, "unauthorized");
        assert.equal(refused.data?.code, "TOKEN_REVOKED");
      }

      assert.equal(await restWith(b, sibling), 200);
      await connect(a.url, "workflows", { token: sibling });
      assert.equal(siblingSocket.connected, true);
      assert.equal(siblingEnded, false);
    });

    it("keeps the revocation in Redis for JWT_MAX_LIFETIME_S + JWT_CLOCK_TOLERANCE_S", async () => {
      const tenant = freshTenant("rk");
      const jti = randomUUID();
      assert.equal((await revoke(b, mintToken({ tenant }), { jti })).status, 202);
      const redis = new Redis(TEST_REDIS_URL);
      try {
        const key = `${TEST_REDIS_PREFIX}:revocations`;
        const entries = await redis.xrange(key, "-", "+");
        const entry = entries.find(([, fields]) => fields[1] === `jti:${tenant}:${jti}`);
        assert.ok(entry, "stored in the stream");
        assert.equal(entry[1][2], "at");
        assert.ok(Number(entry[1][3]) > Date.now() - 60_000, "with its revocation time");
        const ttl = await redis.pttl(key);
        const retention = (30 * 24 * 3600 + 5) * 1000;
        assert.ok(ttl > retention - 60_000 && ttl <= retention, `TTL ${ttl} ms`);
      } finally {
        redis.disconnect();
      }
    });

    it("picks up a revocation whose announcement a node missed, by following the stream", async () => {
      const tenant = freshTenant("rm");
      const jti = randomUUID();
      const token = mintToken({ tenant, jti });
      const sessions = await Promise.all([connect(a.url, "tasks", { token }), connect(b.url, "tasks", { token })]);
      const ended = sessions.map(revokedSession);
      // Stored the way the route stores it, but never announced: as if every node's subscription had been down.
      const redis = new Redis(TEST_REDIS_URL);
      try {
        await redis.xadd(`${TEST_REDIS_PREFIX}:revocations`, "*", "m", `jti:${tenant}:${jti}`, "at", String(Date.now()));
      } finally {
        redis.disconnect();
      }
      // Each node ends its own session when its next read of the stream finds the revocation; from then on it refuses the token.
      for (const [info] of await Promise.all(ended)) assert.deepEqual(info, { reason: "token_revoked" });
      for (const node of [a, b]) assert.equal(await restWith(node, token), "401 TOKEN_REVOKED");
    });
  });

  describe("revocation during handshakes", () => {
    it("leaves no socket of the revoked subject connected, however far its handshake had got when the revocation came", async () => {
      const tenant = freshTenant("rh");
      const admin = mintToken({ tenant, sub: "admin-1" });
      const token = mintToken({ tenant, sub: "hasty", permissions: ["tasks:read"] });
      // Handshakes in flight on both nodes while node a stores the revocation and node b hears of it.
      const sockets = Array.from({ length: 120 }, (_, i) => openSocket((i % 2 ? b : a).url, "tasks", { token }));
      const outcomes = sockets.map(
        (socket) =>
          new Promise<string>((resolve) => {
            socket.once("connect", () => resolve("connected"));
            socket.once("connect_error", (error: Error & { data?: { code?: string } }) => resolve(error.data?.code ?? error.message));
          }),
      );
      await sleep(5);
      assert.equal((await revoke(a, admin, { sub: "hasty" })).status, 202);
      const results = await Promise.all(outcomes);
      // Whatever got through before the revocation is ended by it; nothing connects after it.
      assert.ok(
        await eventually(() => sockets.every((socket) => !socket.connected), 5000, 20),
        "every socket of the revoked subject is disconnected",
      );
      const refused = results.filter((r) => r !== "connected");
      assert.ok(
        refused.every((code) => code === "TOKEN_REVOKED"),
        `refusals: ${[...new Set(refused)].join(", ")}`,
      );
      assert.equal((await connectError(a.url, "tasks", { token })).data?.code, "TOKEN_REVOKED");
    });
  });

  describe("revocation by sub", () => {
    it("refuses the subject's tokens issued until the revocation, on every node, and admits newer ones", async () => {
      const tenant = freshTenant("rs");
      const admin = mintToken({ tenant, sub: "admin-1" });
      const old = mintToken({ tenant, sub: "bob", permissions: ["tasks:read", "workflows:read"] });
      const withoutIat = jwt.sign({ sub: "bob", tenant_id: tenant, exp: nowS() + 600, permissions: ["tasks:read"] }, TEST_JWT_SECRET, {
        noTimestamp: true,
      });
      const otherSubject = mintToken({ tenant, sub: "carol", permissions: ["tasks:read"] });
      const sessions = await Promise.all([connect(a.url, "tasks", { token: old }), connect(b.url, "workflows", { token: old })]);
      const ended = sessions.map(revokedSession);

      const response = await revoke(b, admin, { sub: "bob" });
      assert.equal(response.status, 202, JSON.stringify(response.body));
      assert.equal(response.body.revoked.sub, "bob");
      assert.equal(response.body.revoked.tenantId, tenant);

      for (const node of [a, b]) {
        assert.equal(await restWith(node, old), "401 TOKEN_REVOKED");
        assert.equal(await restWith(node, withoutIat), "401 TOKEN_REVOKED", "a token without iat counts as issued before");
        assert.equal((await connectError(node.url, "tasks", { token: old })).data?.code, "TOKEN_REVOKED");
        assert.equal(await restWith(node, otherSubject), 200);
      }
      for (const [info, reason] of await Promise.all(ended)) {
        assert.deepEqual(info, { reason: "token_revoked" });
        assert.equal(reason, "io server disconnect");
      }

      // iat has whole seconds, and a token of the revocation's own second counts as issued before it.
      const revokedInSecond = Math.floor(Date.parse(response.body.revoked.at) / 1000);
      while (nowS() <= revokedInSecond) await sleep(50);
      const fresh = mintToken({ tenant, sub: "bob", permissions: ["tasks:read"] });
      for (const node of [a, b]) {
        assert.equal(await restWith(node, fresh), 200);
        await connect(node.url, "tasks", { token: fresh });
      }
    });
  });

  describe("who may revoke", () => {
    it("needs admin", async () => {
      const tenant = freshTenant("rw");
      const token = mintToken({ tenant, sub: "eve", permissions: ["tasks:read", "tasks:write", "pools:write", "events:publish"] });
      const response = await revoke(a, token, { sub: "eve" });
      assert.equal(response.status, 403);
      assert.equal(response.body.error.code, "FORBIDDEN");
      assert.match(response.body.error.message, /admin/);
      assert.equal(await restWith(a, token), 200, "nothing was revoked");
    });

    it("revokes only in the caller's tenant: another tenant's same sub and jti keep working", async () => {
      const [mine, theirs] = [freshTenant("rt"), freshTenant("ru")];
      const jti = randomUUID();
      const myToken = mintToken({ tenant: mine, sub: "dave", jti });
      const theirSameJti = mintToken({ tenant: theirs, sub: "frank", jti });
      const theirSameSub = mintToken({ tenant: theirs, sub: "dave" });
      const theirSocket = await connect(b.url, "tasks", { token: theirSameSub });
      let theirsEnded = false;
      theirSocket.on("session.revoked", () => (theirsEnded = true));
      const admin = mintToken({ tenant: mine, sub: "admin-1" });
      assert.equal((await revoke(a, admin, { jti })).status, 202);
      assert.equal((await revoke(a, admin, { sub: "dave" })).status, 202);
      assert.equal(await restWith(b, myToken), "401 TOKEN_REVOKED");
      assert.equal(await restWith(b, theirSameJti), 200);
      assert.equal(await restWith(b, theirSameSub), 200);
      await connect(a.url, "tasks", { token: theirSameSub });
      assert.equal(theirSocket.connected, true);
      assert.equal(theirsEnded, false);
    });

    it("refuses bodies that are not exactly one of jti and sub, naming the fields", async () => {
      const admin = mintToken({ tenant: freshTenant("rb") });
      const cases: Array<[unknown, string[]]> = [
        [{}, ["jti", "sub"]],
        [{ jti: "x", sub: "y" }, ["jti", "sub"]],
        [{ jti: 5 }, ["jti"]],
        [{ sub: "" }, ["sub"]],
        [{ jti: "x".repeat(257) }, ["jti"]],
        [{ jti: "x", tenantId: "other" }, ["tenantId"]],
        [["jti"], ["body"]],
      ];
      for (const [body, fields] of cases) {
        const response = await revoke(a, admin, body);
        assert.equal(response.status, 400, JSON.stringify(body));
        assert.equal(response.body.error.code, "BAD_REQUEST");
        assert.deepEqual(
          [...new Set(response.body.error.details.map((d: { field: string }) => d.field))].sort(),
          fields,
          JSON.stringify(body),
        );
      }
      const anonymous = await api(a.url, "POST", "/api/v1/tokens/revoke", { body: { sub: "x" } });
      assert.equal(anonymous.status, 401);
    });
  });

  describe("clock tolerance, maximum lifetime, CORS_ORIGINS unset, and revocations loaded at start", () => {
    // A third node with JWT_CLOCK_TOLERANCE_S=0 and no CORS_ORIGINS, started after a revocation was made.
    let strict: ServerProcess;
    let revokedBeforeStart: string;
    let revokedBeforeUpgrade: string;

    before(async () => {
      const tenant = freshTenant("rl");
      const jti = randomUUID();
      revokedBeforeStart = mintToken({ tenant, jti });
      assert.equal((await revoke(a, mintToken({ tenant }), { jti })).status, 202);
      // Where a release before the stream kept revocations: still in force after an upgrade.
      const legacyJti = randomUUID();
      revokedBeforeUpgrade = mintToken({ tenant, jti: legacyJti });
      const redis = new Redis(TEST_REDIS_URL);
      try {
        await redis.zadd(`${TEST_REDIS_PREFIX}:revoked-tokens`, Date.now(), `jti:${tenant}:${legacyJti}`);
      } finally {
        redis.disconnect();
      }
      strict = await startServer({ JWT_CLOCK_TOLERANCE_S: "0", EMBEDDED_WORKER: "false" });
    });
    after(async () => {
      await strict?.stop();
    });

    it("a node started later refuses what was revoked before it started", async () => {
      assert.equal(await restWith(strict, revokedBeforeStart), "401 TOKEN_REVOKED");
      assert.equal((await connectError(strict.url, "tasks", { token: revokedBeforeStart })).data?.code, "TOKEN_REVOKED");
      assert.equal(await restWith(strict, revokedBeforeUpgrade), "401 TOKEN_REVOKED", "and what an earlier release stored");
    });

    it("accepts a token expired 2 s ago within a tolerance of 5 s, and refuses it with a tolerance of 0", async () => {
      const token = mintToken({ tenant: freshTenant("ct"), ttl: -2 });
      assert.equal(await restWith(a, token), 200);
      await connect(a.url, "tasks", { token });
      assert.equal(await restWith(strict, token), "401 TOKEN_EXPIRED");
      assert.equal((await connectError(strict.url, "tasks", { token })).data?.code, "TOKEN_EXPIRED");
    });

    it("gives iat and nbf the same tolerance", async () => {
      const tenant = freshTenant("cf");
      const soon = mintToken({ tenant, extra: { iat: nowS() + 3 } });
      assert.equal(await restWith(a, soon), 200);
      assert.equal(await restWith(strict, soon), "401 CLAIMS_INVALID");
      const notYet = mintToken({ tenant, extra: { nbf: nowS() + 3 } });
      assert.equal(await restWith(a, notYet), 200);
      assert.equal(await restWith(strict, notYet), "401 TOKEN_INVALID");
      const future = mintToken({ tenant, extra: { iat: nowS() + 600, exp: nowS() + 1200 } });
      const refused = await api(a.url, "GET", "/api/v1/tasks", { token: future });
      assert.equal(refused.body.error.code, "CLAIMS_INVALID");
      assert.match(refused.body.error.message, /iat is in the future/);
    });

    it("refuses a token that lives longer than JWT_MAX_LIFETIME_S (30 days) with CLAIMS_INVALID", async () => {
      const tenant = freshTenant("ml");
      const year33658 = Math.floor(Date.UTC(33658, 0, 1) / 1000);
      const forever = mintToken({ tenant, extra: { exp: year33658 } });
      const response = await api(a.url, "GET", "/api/v1/tasks", { token: forever });
      assert.equal(response.status, 401);
      assert.equal(response.body.error.code, "CLAIMS_INVALID");
      assert.match(response.body.error.message, /lifetime \(exp - iat\) of \d+ s is longer than the accepted maximum of 2592000 s/);
      assert.equal((await connectError(b.url, "tasks", { token: forever })).data?.code, "CLAIMS_INVALID");

      const month = 30 * 24 * 3600;
      assert.equal(await restWith(a, mintToken({ tenant, ttl: month })), 200, "exactly the maximum is accepted");
      assert.equal(await restWith(a, mintToken({ tenant, ttl: month + 1 })), "401 CLAIMS_INVALID");
      const noIat = (exp: number): string =>
        jwt.sign({ sub: "u", tenant_id: tenant, exp, permissions: ["admin"] }, TEST_JWT_SECRET, { noTimestamp: true });
      const far = await api(a.url, "GET", "/api/v1/tasks", { token: noIat(nowS() + month + 3600) });
      assert.equal(far.body.error.code, "CLAIMS_INVALID");
      assert.match(far.body.error.message, /exp - now/);
      assert.equal(await restWith(a, noIat(nowS() + 3600)), 200);
    });

    it("with CORS_ORIGINS unset, admits only the node's own origin and handshakes without Origin", async () => {
      for (const origin of [EVIL_ORIGIN, ALLOWED_ORIGIN]) {
        assert.equal((await pollingHandshake(strict.url, { origin })).status, 403, origin);
        assert.equal((await websocketHandshake(strict.url, origin)).status, 403, origin);
      }
      for (const origin of [strict.url, undefined]) {
        assert.equal((await pollingHandshake(strict.url, origin ? { origin } : {})).status, 200, String(origin));
        assert.equal((await websocketHandshake(strict.url, origin)).status, 101, String(origin));
      }
    });
  });
});

describe("MAX_REVOCATIONS_PER_TENANT", function () {
  this.timeout(60_000);
  const env = { MAX_REVOCATIONS_PER_TENANT: "3", EMBEDDED_WORKER: "false" };
  const nodes: ServerProcess[] = [];
  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  });

  it("refuses a tenant's revocation beyond the cap with 429 QUOTA_EXCEEDED naming the field; re-revoking and other tenants are unaffected; a node started later counts what is stored", async () => {
    const a = await startServer(env);
    nodes.push(a);
    const tenant = freshTenant("cap");
    const admin = mintToken({ tenant, sub: "root" });
    for (const body of [{ jti: randomUUID() }, { jti: randomUUID() }, { sub: "carol" }])
      assert.equal((await revoke(a, admin, body)).status, 202, JSON.stringify(body));
    const over = await revoke(a, admin, { jti: "one-too-many" });
    assert.equal(over.status, 429, JSON.stringify(over.body));
    assert.equal(over.body.error.code, "QUOTA_EXCEEDED");
    assert.equal(over.body.error.details[0].field, "jti");
    assert.match(over.body.error.message, /3 revocations/);
    // The refused token still works: nothing was stored.
    assert.equal(await restWith(a, mintToken({ tenant, jti: "one-too-many" })), 200);
    // Revoking a subject again (its time moves on) takes no new place.
    assert.equal((await revoke(a, admin, { sub: "carol" })).status, 202);
    // Another tenant has its own cap.
    assert.equal((await revoke(a, mintToken({ tenant: freshTenant("cap-other") }), { sub: "carol" })).status, 202);
    // A node started now loads the stored revocations, and counts them.
    const b = await startServer(env);
    nodes.push(b);
    assert.equal((await revoke(b, admin, { sub: "mallory" })).status, 429);
  });
});
