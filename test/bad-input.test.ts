import assert from "node:assert/strict";
import { connect, request, sleep, subscribe } from "./support/clients.js";
import { freshTenant } from "./support/env.js";
import { api } from "./support/http.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { sharedServer } from "./support/shared.js";
import { mintToken } from "./support/tokens.js";

describe("bad input", () => {
  let server: ServerProcess;
  before(async () => {
    server = await sharedServer();
  });

  describe("over Socket.IO", () => {
    it("answers malformed subscribe/unsubscribe payloads with BAD_REQUEST and keeps the socket usable", async () => {
      const socket = await connect(server.url, "tasks", { token: mintToken({ tenant: freshTenant() }) });
      const noRoom: unknown[] = [null, 42, "tasks", [], ["tasks"], {}, { room: 7 }, { room: null }, true];
      for (const payload of [...noRoom, { room: "tasks", after: 5 }, { room: "tasks", after: "x".repeat(100) }]) {
        const ack = await request<{ ok: boolean; error?: { code: string } }>(socket, "subscribe", payload);
        assert.equal(ack.ok, false, JSON.stringify(payload));
        assert.equal(ack.error?.code, "BAD_REQUEST", JSON.stringify(payload));
      }
      for (const payload of noRoom) {
        const unsub = await request<{ ok: boolean; error?: { code: string } }>(socket, "unsubscribe", payload);
        assert.equal(unsub.error?.code, "BAD_REQUEST", JSON.stringify(payload));
      }
      assert.equal((await subscribe(socket, "tasks", "not-a-cursor")).error?.code, "BAD_REQUEST");
      assert.equal((await subscribe(socket, "tasks")).ok, true);
    });

    it("survives events without acks, acks without payloads, unknown events and huge strings", async () => {
      const socket = await connect(server.url, "pools", { token: mintToken({ tenant: freshTenant() }) });
      socket.emit("subscribe");
      socket.emit("subscribe", { room: "pools" });
      socket.emit("unsubscribe", 1, 2, 3);
      socket.emit("worker.status", { status: "idle" });
      socket.emit("no.such.event", { a: 1 });
      const noPayload = await request<{ ok: boolean; error?: { code: string } }>(socket, "subscribe");
      assert.equal(noPayload.error?.code, "BAD_REQUEST");
      const unknown = await request<{ ok: boolean; error?: { code: string } }>(socket, "no.such.event", { a: 1 });
      assert.equal(unknown.error?.code, "BAD_REQUEST");
      const huge = await subscribe(socket, "pool:" + "x".repeat(200_000));
      assert.equal(huge.error?.code, "INVALID_ROOM");
      await sleep(100);
      assert.equal(socket.connected, true);
      assert.equal((await subscribe(socket, "pools")).ok, true);
    });

    it("closes only the connection that sends a message over the size limit", async () => {
      const node = await startServer({ MAX_PAYLOAD_BYTES: "10000" });
      try {
        const token = mintToken({ tenant: freshTenant() });
        const bystander = await connect(node.url, "tasks", { token });
        const offender = await connect(node.url, "tasks", { token });
        const closed = new Promise<string>((resolve) => offender.once("disconnect", resolve));
        offender.emit("subscribe", { room: "tasks", padding: "x".repeat(50_000) });
        assert.match(await closed, /transport (close|error)/);
        assert.equal((await subscribe(bystander, "tasks")).ok, true);
        assert.equal((await api(node.url, "GET", "/health")).status, 200);
      } finally {
        await node.stop();
      }
    });
  });

  describe("over REST", () => {
    const token = () => mintToken({ tenant: freshTenant() });

    it("answers malformed JSON with 400", async () => {
      const response = await api(server.url, "POST", "/api/v1/pools", { token: token(), rawBody: '{"name": "x",' });
      assert.equal(response.status, 400);
      assert.equal(response.body.error.code, "BAD_REQUEST");
      assert.match(response.body.error.message, /JSON/);
    });

    it("answers wrong types with 400 naming the field", async () => {
      const response = await api(server.url, "POST", "/api/v1/pools", { token: token(), body: { name: 12, desiredWorkers: "many" } });
      assert.equal(response.status, 400);
      const fields = response.body.error.details.map((d: { field: string }) => d.field).sort();
      assert.deepEqual(fields, ["desiredWorkers", "name"]);
      const array = await api(server.url, "POST", "/api/v1/pools", { token: token(), body: [1, 2] });
      assert.equal(array.status, 400);
      const unknownField = await api(server.url, "POST", "/api/v1/pools", { token: token(), body: { name: "a", colour: "red" } });
      assert.equal(unknownField.status, 400);
      const badLimit = await api(server.url, "GET", "/api/v1/pools?limit=abc", { token: token() });
      assert.equal(badLimit.status, 400);
      assert.equal(badLimit.body.error.details[0].field, "limit");
      const badCursor = await api(server.url, "GET", "/api/v1/pools?cursor=%%%", { token: token() });
      assert.equal(badCursor.status, 400);
      // A cursor that decodes to a date and an id holding a NUL (which PostgreSQL cannot take): a 400, not a 500.
      const nul = Buffer.from("2026-12-07T00:00:00.000Z|ab\u0000cd").toString("base64url");
      for (const list of ["pools", "tasks", "workflows", "schedules"]) {
        const response = await api(server.url, "GET", `/api/v1/${list}?cursor=${nul}`, { token: token() });
        assert.equal(response.status, 400, `${list}: ${JSON.stringify(response.body)}`);
        assert.equal(response.body.error.details[0].field, "cursor");
      }
    });

    it("answers oversized bodies with 413 and keeps serving", async () => {
      const response = await api(server.url, "POST", "/api/v1/pools", {
        token: token(),
        rawBody: JSON.stringify({ name: "x".repeat(2_000_000) }),
      });
      assert.equal(response.status, 413);
      assert.equal(response.body.error.code, "PAYLOAD_TOO_LARGE");
      assert.equal((await api(server.url, "GET", "/health")).status, 200);
    });

    it("answers a duplicate pool name with 409 and unknown ids and routes with 404", async () => {
      const t = token();
      assert.equal((await api(server.url, "POST", "/api/v1/pools", { token: t, body: { name: "dup" } })).status, 201);
      const duplicate = await api(server.url, "POST", "/api/v1/pools", { token: t, body: { name: "dup" } });
      assert.equal(duplicate.status, 409);
      assert.equal(duplicate.body.error.code, "CONFLICT");
      assert.equal((await api(server.url, "GET", "/api/v1/pools/nope", { token: t })).status, 404);
      const route = await api(server.url, "GET", "/api/v1/nothing-here", { token: t });
      assert.equal(route.status, 404);
      assert.equal(route.body.error.code, "NOT_FOUND");
    });
  });
});
