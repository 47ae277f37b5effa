import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import jwt from "jsonwebtoken";
import { connect, connectError, request, subscribe } from "./support/clients.js";
import { freshTenant, TEST_JWT_SECRET } from "./support/env.js";
import { api } from "./support/http.js";
import { rawToken } from "./support/jwt-raw.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { sharedServer } from "./support/shared.js";
import { mintToken } from "./support/tokens.js";

describe("authentication", () => {
  let server: ServerProcess;
  before(async () => {
    server = await sharedServer();
  });

  describe("Socket.IO handshake", () => {
    it("admits a valid HS256 token given in auth.token", async () => {
      const socket = await connect(server.url, "tasks", { token: mintToken({ tenant: freshTenant() }) });
      assert.equal(socket.connected, true);
    });

    it("admits a token given as Authorization: Bearer header", async () => {
      const token = mintToken({ tenant: freshTenant() });
      const socket = await connect(server.url, "pools", { extraHeaders: { authorization: `Bearer ${token}` } });
      assert.equal(socket.connected, true);
    });

    it("admits long-polling as well as WebSocket", async () => {
      const socket = await connect(server.url, "workflows", { token: mintToken({ tenant: freshTenant() }), transports: ["polling"] });
      assert.equal(socket.io.engine.transport.name, "polling");
    });

    const cases: Array<[string, () => string | undefined, string]> = [
      ["no token", () => undefined, "TOKEN_MISSING"],
      ["garbage", () => "not-a-jwt", "TOKEN_INVALID"],
      ["a wrong signature", () => mintToken({ tenant: "acme", secret: "another-secret-another-secret" }), "TOKEN_INVALID"],
      ["an expired token", () => mintToken({ tenant: "acme", ttl: -10 }), "TOKEN_EXPIRED"],
      ["no tenant_id", () => jwt.sign({ sub: "u", exp: Math.floor(Date.now() / 1000) + 60 }, TEST_JWT_SECRET), "CLAIMS_INVALID"],
      ["a malformed tenant_id", () => mintToken({ tenant: "acme|other" }), "CLAIMS_INVALID"],
      ["no exp", () => jwt.sign({ sub: "u", tenant_id: "acme" }, TEST_JWT_SECRET), "CLAIMS_INVALID"],
      ["no sub", () => jwt.sign({ tenant_id: "acme", exp: Math.floor(Date.now() / 1000) + 60 }, TEST_JWT_SECRET), "CLAIMS_INVALID"],
      [
        "alg none",
        () =>
          rawToken(
            { alg: "none", typ: "JWT" },
            { sub: "u", tenant_id: "acme", exp: Math.floor(Date.now() / 1000) + 60, permissions: ["admin"] },
          ),
        "TOKEN_INVALID",
      ],
      ["a pools:work token without pool_id", () => mintToken({ tenant: "acme", permissions: ["pools:work"] }), "CLAIMS_INVALID"],
    ];
    for (const [what, token, code] of cases) {
      it(`refuses ${what} with connect_error ${code}`, async () => {
        const error = await connectError(server.url, "tasks", { token: token() });
        assert.equal(error.message, "unauthorized");
        assert.equal(error.data?.code, code);
      });
    }

    it("refuses the main namespace without a token too", async () => {
      const error = await connectError(server.url, "", {});
      assert.equal(error.data?.code, "TOKEN_MISSING");
    });

    it("tells a socket its session expired, then disconnects it", async () => {
      const socket = await connect(server.url, "tasks", { token: mintToken({ tenant: freshTenant(), ttl: 2 }) });
      const expired = new Promise<unknown>((resolve) => socket.once("session.expired", resolve));
      const disconnected = new Promise<string>((resolve) => socket.once("disconnect", resolve));
      assert.deepEqual(await expired, { reason: "token_expired" });
      assert.equal(await disconnected, "io server disconnect");
    });
  });

  describe("REST", () => {
    it("answers 401 with the token error code", async () => {
      const missing = await api(server.url, "GET", "/api/v1/pools");
      assert.equal(missing.status, 401);
      assert.equal(missing.body.error.code, "TOKEN_MISSING");
      const expired = await api(server.url, "GET", "/api/v1/pools", { token: mintToken({ tenant: "acme", ttl: -5 }) });
      assert.equal(expired.status, 401);
      assert.equal(expired.body.error.code, "TOKEN_EXPIRED");
    });

    it("answers 403 naming the missing permission", async () => {
      const token = mintToken({ tenant: freshTenant(), permissions: ["pools:read"] });
      const response = await api(server.url, "POST", "/api/v1/pools", { token, body: { name: "p" } });
      assert.equal(response.status, 403);
      assert.equal(response.body.error.code, "FORBIDDEN");
      assert.match(response.body.error.message, /pools:write/);
    });
  });

  describe("RS256 and algorithm confusion", () => {
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const publicPem = publicKey.export({ type: "spki", format: "pem" }).toString();
    const privatePem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    let rsNode: ServerProcess;
    const claims = () => ({ sub: "u", tenant_id: freshTenant(), exp: Math.floor(Date.now() / 1000) + 60, permissions: ["tasks:read"] });

    before(async () => {
      rsNode = await startServer({ JWT_PUBLIC_KEY: publicPem, JWT_ISSUER: "https://issuer.test", JWT_AUDIENCE: "switchyard" });
    });
    after(async () => {
      await rsNode.stop();
    });

    it("admits a valid RS256 token with the configured issuer and audience", async () => {
      const token = jwt.sign(claims(), privatePem, { algorithm: "RS256", issuer: "https://issuer.test", audience: "switchyard" });
      const socket = await connect(rsNode.url, "tasks", { token });
      const ack = await subscribe(socket, "tasks");
      assert.equal(ack.ok, true, JSON.stringify(ack));
    });

    it("still admits HS256 tokens when both keys are configured", async () => {
      const token = jwt.sign(claims(), TEST_JWT_SECRET, { algorithm: "HS256", issuer: "https://issuer.test", audience: "switchyard" });
      await connect(rsNode.url, "tasks", { token });
    });

    it("refuses a wrong issuer or audience with CLAIMS_INVALID", async () => {
      const wrongIssuer = jwt.sign(claims(), privatePem, { algorithm: "RS256", issuer: "https://evil.test", audience: "switchyard" });
      assert.equal((await connectError(rsNode.url, "tasks", { token: wrongIssuer })).data?.code, "CLAIMS_INVALID");
      const wrongAudience = jwt.sign(claims(), privatePem, { algorithm: "RS256", issuer: "https://issuer.test", audience: "other" });
      assert.equal((await connectError(rsNode.url, "tasks", { token: wrongAudience })).data?.code, "CLAIMS_INVALID");
    });

    it("refuses an HS256 token keyed with the RSA public key (algorithm confusion)", async () => {
      const forged = rawToken({ alg: "HS256", typ: "JWT" }, { ...claims(), iss: "https://issuer.test", aud: "switchyard" }, publicPem);
      assert.equal((await connectError(rsNode.url, "tasks", { token: forged })).data?.code, "TOKEN_INVALID");
    });

    it("refuses RS256 tokens on a node that has no public key", async () => {
      const token = jwt.sign(claims(), privatePem, { algorithm: "RS256" });
      assert.equal((await connectError(server.url, "tasks", { token })).data?.code, "TOKEN_INVALID");
    });
  });

  it("keeps serving after every refused handshake", async () => {
    const response = await api(server.url, "GET", "/health");
    assert.equal(response.status, 200);
    const socket = await connect(server.url, "tasks", { token: mintToken({ tenant: freshTenant() }) });
    assert.equal((await request<{ ok: boolean }>(socket, "subscribe", { room: "tasks" })).ok, true);
  });
});
