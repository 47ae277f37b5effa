import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { PublishError, SwitchyardClient, type Envelope } from "../src/client/index.js";
import { createPrisma, type PrismaClient } from "../src/db/client.js";
import { EventLogWriter, type StoredEventInput } from "../src/events/event-log-writer.js";
import { decodeCursor } from "../src/protocol/cursor.js";
import type { Permission } from "../src/protocol/permissions.js";
import { MAX_JSON_DEPTH } from "../src/protocol/json-safety.js";
import type { PublishedEvent } from "../src/protocol/publish.js";
import { connect, EventRecorder, sleep, subscribe } from "./support/clients.js";
import { freshTenant, TEST_DATABASE_URL } from "./support/env.js";
import { api, type ApiResponse } from "./support/http.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { submitTask, waitForTask } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";
import { prismaSql } from "../src/db/sql.js";

interface Item {
  namespace: string;
  room: string;
  type: string;
  data?: unknown;
}
interface ErrorBody {
  error: { code: string; message: string; details?: Array<{ field: string; message: string }> };
}

const seqOf = (cursor: string): number => decodeCursor(cursor)!.seq;

async function publish(url: string, token: string, body: unknown): Promise<ApiResponse<{ items: PublishedEvent[] } & ErrorBody>> {
  return api(url, "POST", "/api/v1/events", { token, body });
}

/** A room's whole stored history (GET /api/v1/events, every page). */
async function history(url: string, token: string, namespace: string, room: string): Promise<{ items: Envelope[]; head: string }> {
  const items: Envelope[] = [];
  let after = "";
  for (;;) {
    const page = await api(url, "GET", `/api/v1/events?namespace=${namespace}&room=${encodeURIComponent(room)}&limit=1000${after}`, {
      token,
    });
    assert.equal(page.status, 200, JSON.stringify(page.body));
    items.push(...(page.body.items as Envelope[]));
    if (!page.body.hasMore) return { items, head: page.body.head as string };
    after = `&after=${page.body.nextCursor as string}`;
  }
}

function assertConsecutive(cursors: string[], what: string): void {
  const seqs = cursors.map(seqOf);
  for (let i = 1; i < seqs.length; i++)
    assert.equal(seqs[i], seqs[i - 1]! + 1, `${what}: not consecutive at ${i}: ${seqs.slice(Math.max(0, i - 2), i + 2).join(",")}`);
}

function batchOf(count: number, make: (i: number) => Item): { events: Item[] } {
  return { events: Array.from({ length: count }, (_, i) => make(i)) };
}

/** Asserts a 4xx whose details name exactly one field, of the given event. */
function assertNames(response: ApiResponse<ErrorBody>, status: number, code: string, field: string | RegExp, label: string): void {
  assert.equal(response.status, status, `${label}: ${JSON.stringify(response.body)}`);
  assert.equal(response.body.error.code, code, label);
  const fields = (response.body.error.details ?? []).map((d) => d.field);
  assert.ok(fields.length > 0, `${label}: no details`);
  for (const f of fields) {
    if (typeof field === "string") assert.equal(f, field, `${label}: ${fields.join(", ")}`);
    else assert.match(f, field, `${label}: ${fields.join(", ")}`);
  }
}

function nested(levels: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = [value];
  return value;
}

describe("publish API (POST /api/v1/events)", () => {
  let nodeA: ServerProcess;
  let nodeB: ServerProcess;
  before(async () => {
    [nodeA, nodeB] = await Promise.all([startServer({ NODE_ID: "pub-a" }), startServer({ NODE_ID: "pub-b" })]);
  });
  after(async () => {
    await Promise.all([nodeA.stop(), nodeB.stop()]);
  });

  it("delivers events posted to node B to a subscriber on node A, in order, with the cursors the response returned", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const socket = await connect(nodeA.url, "tasks", { token });
    const seen = new EventRecorder(socket);
    const ack = await subscribe(socket, "tasks");
    assert.equal(ack.ok, true);

    const single = await publish(nodeB.url, token, {
      namespace: "tasks",
      room: "tasks",
      type: "billing.invoice_paid",
      data: { invoice: "in_1" },
    });
    assert.equal(single.status, 202, JSON.stringify(single.body));
    assert.equal(single.body.items.length, 1);
    const batch = await publish(
      nodeB.url,
      token,
      batchOf(20, (i) => ({ namespace: "tasks", room: "tasks", type: i % 2 ? "billing.refund" : "billing.invoice_paid", data: { i } })),
    );
    assert.equal(batch.status, 202, JSON.stringify(batch.body));
    const items = [...single.body.items, ...batch.body.items];
    assert.equal(items.length, 21);
    for (const item of items) {
      assert.equal(item.namespace, "tasks");
      assert.equal(item.room, "tasks");
    }
    assert.equal(seqOf(items[0]!.cursor), seqOf(ack.cursor!) + 1);
    assertConsecutive(
      items.map((i) => i.cursor),
      "response cursors",
    );

    await seen.until((e) => e.length >= 21, 10_000, "21 published events");
    await sleep(200);
    assert.deepEqual(
      seen.events.map((e) => [e.id, e.cursor, e.room]),
      items.map((i) => [i.id, i.cursor, i.room]),
    );
    assert.deepEqual(seen.events[0]!.data, { invoice: "in_1" });
    assert.equal(seen.events[0]!.type, "billing.invoice_paid");
    assert.deepEqual(
      seen.events.slice(1).map((e) => [e.type, e.data]),
      batch.body.items.map((_, i) => [i % 2 ? "billing.refund" : "billing.invoice_paid", { i }]),
    );
    assert.ok(seen.events.every((e) => !Number.isNaN(Date.parse(e.ts))));
  });

  it("stores a batch across rooms and namespaces: items in input order, each room's events consecutive in input order", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const pool = (await api(nodeB.url, "POST", "/api/v1/pools", { token, body: { name: "mixed" } })).body.pool.id as string;
    const rooms: Array<[string, string]> = [
      ["tasks", "tasks"],
      ["pools", `pool:${pool}`],
      ["tasks", `pool:${pool}`],
      ["workflows", "workflows"],
      ["pools", "pools"],
    ];
    const body = batchOf(25, (i) => ({ namespace: rooms[i % 5]![0], room: rooms[i % 5]![1], type: "crm.contact_changed", data: { i } }));
    const response = await publish(nodeA.url, token, body);
    assert.equal(response.status, 202, JSON.stringify(response.body));
    const items = response.body.items;
    assert.deepEqual(
      items.map((i) => [i.namespace, i.room]),
      body.events.map((e) => [e.namespace, e.room]),
    );
    assert.equal(new Set(items.map((i) => i.id)).size, 25, "one id per event");
    for (const [namespace, room] of rooms) {
      const mine = items.filter((i) => i.namespace === namespace && i.room === room);
      assert.equal(mine.length, 5);
      assertConsecutive(
        mine.map((i) => i.cursor),
        `${namespace} ${room}`,
      );
      const stored = (await history(nodeB.url, token, namespace, room)).items.filter((e) => e.type === "crm.contact_changed");
      assert.deepEqual(
        stored.map((e) => [e.id, e.cursor]),
        mine.map((i) => [i.id, i.cursor]),
      );
      assert.deepEqual(
        stored.map((e) => (e.data as { i: number }).i),
        body.events.flatMap((e, i) => (e.namespace === namespace && e.room === room ? [i] : [])),
      );
    }
  });

  it("the client helper's publish() posts one event or a batch and returns the items; refusals are PublishErrors", async () => {
    const tenant = freshTenant();
    const reader = new SwitchyardClient({
      urls: [nodeA.url],
      namespace: "workflows",
      token: mintToken({ tenant, permissions: ["workflows:read"] }),
      socketOptions: { transports: ["websocket"] },
    });
    const publisher = new SwitchyardClient({
      urls: [nodeB.url],
      namespace: "workflows",
      token: () => mintToken({ tenant, permissions: ["events:publish"] }),
      socketOptions: { autoConnect: false },
    });
    try {
      const delivered: Envelope[] = [];
      await reader.subscribe("workflows", (e) => delivered.push(e));
      const one = await publisher.publish({ room: "workflows", type: "deploy.started", data: { build: 7 } });
      const many = await publisher.publish([
        { room: "workflows", type: "deploy.step", data: { step: 1 } },
        { room: "workflows", type: "deploy.finished" },
        { namespace: "workflows", room: "workflows", type: "deploy.step", data: "x" },
      ]);
      assert.equal(one.length, 1);
      assert.equal(many.length, 3);
      const items = [...one, ...many];
      const deadline = Date.now() + 10_000;
      while (delivered.length < 4 && Date.now() < deadline) await sleep(25);
      assert.deepEqual(
        delivered.map((e) => [e.id, e.cursor, e.type]),
        items.map((i, n) => [i.id, i.cursor, ["deploy.started", "deploy.step", "deploy.finished", "deploy.step"][n]]),
      );
      assert.equal(delivered[2]!.data, null, "data left out is null");

      await assert.rejects(
        publisher.publish([
          { room: "workflows", type: "deploy.ok" },
          { room: "workflows", type: "workflow.completed" },
        ]),
        (error: unknown) => {
          assert.ok(error instanceof PublishError);
          assert.equal(error.code, "BAD_REQUEST");
          assert.equal(error.status, 400);
          assert.deepEqual(
            (error.details as Array<{ field: string }>).map((d) => d.field),
            ["events.1.type"],
          );
          return true;
        },
      );
      const readOnly = new SwitchyardClient({
        urls: [nodeB.url],
        namespace: "workflows",
        token: mintToken({ tenant, permissions: ["workflows:read"] }),
        socketOptions: { autoConnect: false },
      });
      await assert.rejects(
        readOnly.publish({ room: "workflows", type: "deploy.started" }),
        (error: unknown) => error instanceof PublishError && error.code === "FORBIDDEN" && error.status === 403,
      );
      readOnly.close();
    } finally {
      reader.close();
      publisher.close();
    }
  });

  it("refuses grammar errors with 400 naming the first bad event by index", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const good = (i: number): Item => ({ namespace: "tasks", room: "tasks", type: "app.ok", data: { i } });
    const bad: Array<{ label: string; event: unknown; code: string; field: string | RegExp }> = [
      {
        label: "upper case type",
        event: { namespace: "tasks", room: "tasks", type: "Billing.paid" },
        code: "BAD_REQUEST",
        field: "events.3.type",
      },
      {
        label: "type without a dot",
        event: { namespace: "tasks", room: "tasks", type: "billing" },
        code: "BAD_REQUEST",
        field: "events.3.type",
      },
      {
        label: "type ending in a dot",
        event: { namespace: "tasks", room: "tasks", type: "billing." },
        code: "BAD_REQUEST",
        field: "events.3.type",
      },
      {
        label: "type starting with a digit",
        event: { namespace: "tasks", room: "tasks", type: "1x.y" },
        code: "BAD_REQUEST",
        field: "events.3.type",
      },
      {
        label: "type with a space",
        event: { namespace: "tasks", room: "tasks", type: "a.b c" },
        code: "BAD_REQUEST",
        field: "events.3.type",
      },
      {
        label: "type of 65 characters",
        event: { namespace: "tasks", room: "tasks", type: `a.${"b".repeat(63)}` },
        code: "BAD_REQUEST",
        field: "events.3.type",
      },
      { label: "type not a string", event: { namespace: "tasks", room: "tasks", type: 42 }, code: "BAD_REQUEST", field: "events.3.type" },
      { label: "type missing", event: { namespace: "tasks", room: "tasks" }, code: "BAD_REQUEST", field: "events.3.type" },
      ...["pool.", "worker.", "task.", "schedule.", "workflow.", "session.", "server."].map((prefix) => ({
        label: `built-in prefix ${prefix}`,
        event: { namespace: "tasks", room: "tasks", type: `${prefix}custom` },
        code: "BAD_REQUEST",
        field: "events.3.type",
      })),
      {
        label: "unknown namespace",
        event: { namespace: "sockets", room: "tasks", type: "app.x" },
        code: "BAD_REQUEST",
        field: "events.3.namespace",
      },
      {
        label: "namespace with a slash",
        event: { namespace: "/tasks", room: "tasks", type: "app.x" },
        code: "BAD_REQUEST",
        field: "events.3.namespace",
      },
      {
        label: "room of another namespace",
        event: { namespace: "tasks", room: "workflows", type: "app.x" },
        code: "INVALID_ROOM",
        field: "events.3.room",
      },
      {
        label: "resource kind of another namespace",
        event: { namespace: "pools", room: "task:abc", type: "app.x" },
        code: "INVALID_ROOM",
        field: "events.3.room",
      },
      { label: "empty id", event: { namespace: "tasks", room: "task:", type: "app.x" }, code: "INVALID_ROOM", field: "events.3.room" },
      {
        label: "id with a space",
        event: { namespace: "tasks", room: "task:a b", type: "app.x" },
        code: "INVALID_ROOM",
        field: "events.3.room",
      },
      {
        label: "room too long",
        event: { namespace: "tasks", room: `task:${"x".repeat(200)}`, type: "app.x" },
        code: "INVALID_ROOM",
        field: "events.3.room",
      },
      {
        label: "room not a string",
        event: { namespace: "tasks", room: ["tasks"], type: "app.x" },
        code: "BAD_REQUEST",
        field: "events.3.room",
      },
      { label: "unknown field", event: { ...good(3), tenantId: "other" }, code: "BAD_REQUEST", field: /^events\.3/ },
      { label: "event not an object", event: "app.x", code: "BAD_REQUEST", field: "events.3" },
      // The JSON input rules (every body meets them) name the path inside data.
      { label: "NUL in data", event: { ...good(3), data: { text: "a\u0000b" } }, code: "BAD_REQUEST", field: "events.3.data.text" },
      { label: "NUL in a data key", event: { ...good(3), data: { "a\u0000": 1 } }, code: "BAD_REQUEST", field: 'events.3.data."a\\u0000"' },
      { label: "lone surrogate in data", event: { ...good(3), data: ["ok", "\ud800"] }, code: "BAD_REQUEST", field: "events.3.data.1" },
      {
        label: "lone surrogate in a data key",
        event: { ...good(3), data: { "\udfffx": 1 } },
        code: "BAD_REQUEST",
        field: 'events.3.data."\\udfffx"',
      },
      // The body is 3 levels deep where data starts ({ events: [ { data } ] }).
      {
        label: "body nested past the depth limit",
        event: { ...good(3), data: nested(MAX_JSON_DEPTH - 2) },
        code: "BAD_REQUEST",
        field: /^events\.3\.data(\.0)+$/,
      },
    ];
    for (const { label, event, code, field } of bad) {
      const response = await publish(nodeB.url, token, { events: [good(0), good(1), good(2), event, good(4)] });
      assertNames(response, 400, code, field, label);
    }
    // The single form names the field alone.
    assertNames(
      await publish(nodeB.url, token, { namespace: "tasks", room: "tasks", type: "task.done" }),
      400,
      "BAD_REQUEST",
      "type",
      "single built-in",
    );
    assertNames(
      await publish(nodeB.url, token, { namespace: "tasks", room: "nope", type: "app.x" }),
      400,
      "INVALID_ROOM",
      "room",
      "single bad room",
    );
    // Only the first bad event is named, whatever comes after it.
    const twoBad = await publish(nodeB.url, token, { events: [good(0), { ...good(1), type: "X" }, good(2), { ...good(3), room: "nope" }] });
    assertNames(twoBad, 400, "BAD_REQUEST", "events.1.type", "two bad events");
    // Limits are inclusive: a 64-character type and a body nested MAX_JSON_DEPTH levels deep are fine.
    const edge = await publish(nodeB.url, token, {
      events: [
        { ...good(0), type: `a.${"b".repeat(62)}` },
        { ...good(1), data: nested(MAX_JSON_DEPTH - 3) },
        { ...good(2), data: { "😀": "ü \\u0000 is text, not NUL" } },
      ],
    });
    assert.equal(edge.status, 202, JSON.stringify(edge.body));
    // Nothing of the refused batches was stored.
    const stored = (await history(nodeB.url, token, "tasks", "tasks")).items;
    assert.equal(stored.length, 3);
    assert.deepEqual(stored[2]!.data, { "😀": "ü \\u0000 is text, not NUL" });
  });

  it("needs events:publish (admin includes it); the namespace's read or write permissions are not enough, and not needed", async () => {
    const tenant = freshTenant();
    const event = { namespace: "pools", room: "pools", type: "fleet.resized", data: { n: 1 } };
    const cases: Array<[Permission[], number]> = [
      [["pools:read", "pools:write", "tasks:read", "tasks:write", "workflows:read", "workflows:write"], 403],
      [["pools:work"], 403],
      [[], 403],
      [["events:publish"], 202],
      [["admin"], 202],
    ];
    for (const [permissions, status] of cases) {
      const response = await publish(
        nodeA.url,
        mintToken({ tenant, permissions, poolId: permissions.includes("pools:work") ? "default" : undefined }),
        event,
      );
      assert.equal(response.status, status, `${permissions.join(",")}: ${JSON.stringify(response.body)}`);
      if (status === 403) {
        assert.equal(response.body.error.code, "FORBIDDEN");
        assert.match(response.body.error.message, /events:publish/);
      }
    }
    // The permission is checked before the body: a refused caller learns nothing about its input.
    const garbage = await publish(nodeA.url, mintToken({ tenant, permissions: ["pools:read"] }), { events: "x" });
    assert.equal(garbage.status, 403);
    assert.equal((await api(nodeA.url, "POST", "/api/v1/events", { body: event })).status, 401);
    assert.equal(
      (await history(nodeA.url, mintToken({ tenant }), "pools", "pools")).items.filter((e) => e.type === "fleet.resized").length,
      2,
    );
  });

  it("publishes only inside the token's tenant: another tenant's resources are 404 and a room name cannot name a tenant", async () => {
    const owner = freshTenant("owner");
    const intruder = freshTenant("intruder");
    const ownerToken = mintToken({ tenant: owner });
    const intruderToken = mintToken({ tenant: intruder });
    const task = await submitTask(nodeA.url, ownerToken, { type: "echo", payload: {} });
    const pool = (await api(nodeA.url, "POST", "/api/v1/pools", { token: ownerToken, body: { name: "private" } })).body.pool.id as string;
    const watcher = await connect(nodeA.url, "tasks", { token: ownerToken });
    const seen = new EventRecorder(watcher);
    assert.equal((await subscribe(watcher, "tasks")).ok, true);

    const foreignTask = await publish(nodeB.url, intruderToken, {
      events: [
        { namespace: "tasks", room: "tasks", type: "app.x" },
        { namespace: "tasks", room: `task:${task.id}`, type: "app.x" },
      ],
    });
    assertNames(foreignTask, 404, "NOT_FOUND", "events.1.room", "another tenant's task");
    assertNames(
      await publish(nodeB.url, intruderToken, { namespace: "pools", room: `pool:${pool}`, type: "app.x" }),
      404,
      "NOT_FOUND",
      "room",
      "another tenant's pool",
    );
    assertNames(
      await publish(nodeB.url, intruderToken, { namespace: "tasks", room: "task:no-such-task", type: "app.x" }),
      404,
      "NOT_FOUND",
      "room",
      "unknown task",
    );
    assertNames(
      await publish(nodeB.url, intruderToken, { namespace: "workflows", room: "workflow:no-such", type: "app.x" }),
      404,
      "NOT_FOUND",
      "room",
      "unknown workflow",
    );
    assertNames(
      await publish(nodeB.url, intruderToken, { namespace: "tasks", room: `${owner}|tasks`, type: "app.x" }),
      400,
      "INVALID_ROOM",
      "room",
      "tenant in the room name",
    );
    assertNames(
      await publish(nodeB.url, intruderToken, { namespace: "tasks", room: `tenant:${owner}`, type: "app.x" }),
      400,
      "INVALID_ROOM",
      "room",
      "tenant: room",
    );
    assertNames(
      await publish(nodeB.url, intruderToken, { namespace: "tasks", room: "tasks", type: "app.x", tenantId: owner }),
      400,
      "BAD_REQUEST",
      /^body$|^$/,
      "tenantId field",
    );
    // The intruder's own collection room is its own: the owner's subscriber hears nothing of it.
    assert.equal((await publish(nodeB.url, intruderToken, { namespace: "tasks", room: "tasks", type: "app.x" })).status, 202);

    // The owner can publish into the same rooms; an unknown id before a bad type is the first bad event (404).
    const mine = await publish(nodeB.url, ownerToken, {
      events: [
        { namespace: "tasks", room: `task:${task.id}`, type: "app.note", data: "hi" },
        { namespace: "pools", room: `pool:${pool}`, type: "app.note" },
      ],
    });
    assert.equal(mine.status, 202, JSON.stringify(mine.body));
    assertNames(
      await publish(nodeB.url, ownerToken, {
        events: [
          { namespace: "tasks", room: "task:missing", type: "app.x" },
          { namespace: "tasks", room: "tasks", type: "BAD" },
        ],
      }),
      404,
      "NOT_FOUND",
      "events.0.room",
      "404 first",
    );
    assertNames(
      await publish(nodeB.url, ownerToken, {
        events: [
          { namespace: "tasks", room: "tasks", type: "BAD" },
          { namespace: "tasks", room: "task:missing", type: "app.x" },
        ],
      }),
      400,
      "BAD_REQUEST",
      "events.0.type",
      "400 first",
    );

    await sleep(300);
    assert.deepEqual(
      seen.events.filter((e) => e.type.startsWith("app.")),
      [],
      "the owner's subscriber saw none of the intruder's events",
    );
    const taskLog = (await history(nodeA.url, ownerToken, "tasks", `task:${task.id}`)).items;
    assert.deepEqual(
      taskLog.filter((e) => e.type.startsWith("app.")).map((e) => [e.id, e.data]),
      [[mine.body.items[0]!.id, "hi"]],
    );
    assert.deepEqual(
      (await history(nodeA.url, intruderToken, "tasks", "tasks")).items.map((e) => e.type),
      ["app.x"],
    );
  });

  it("a batch with one bad event stores nothing: histories, heads and subscribers are unchanged", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const pool = (await api(nodeA.url, "POST", "/api/v1/pools", { token, body: { name: "atomic" } })).body.pool.id as string;
    const rooms: Array<[string, string]> = [
      ["pools", "pools"],
      ["pools", `pool:${pool}`],
      ["tasks", "tasks"],
    ];
    const good = (i: number): Item => ({ namespace: rooms[i % 3]![0], room: rooms[i % 3]![1], type: "app.step", data: { i } });
    assert.equal((await publish(nodeA.url, token, batchOf(6, good))).status, 202);
    const before = await Promise.all(rooms.map(([ns, room]) => history(nodeB.url, token, ns, room)));
    const socket = await connect(nodeA.url, "pools", { token });
    const seen = new EventRecorder(socket);
    assert.equal((await subscribe(socket, "pools")).ok, true);

    const refusals: Array<[string, unknown, number]> = [
      ["bad type last", { events: [...batchOf(9, good).events, { ...good(9), type: "nope" }] }, 400],
      ["unknown task last", { events: [...batchOf(9, good).events, { namespace: "tasks", room: "task:ghost", type: "app.x" }] }, 404],
      ["too large last", { events: [...batchOf(9, good).events, { ...good(9), data: "x".repeat(70_000) }] }, 413],
      ["bad room first", { events: [{ ...good(0), room: "pool:" }, ...batchOf(9, good).events] }, 400],
      ["501 events", batchOf(501, good), 400],
    ];
    for (const [label, body, status] of refusals) {
      const response = await publish(nodeB.url, token, body);
      assert.equal(response.status, status, `${label}: ${JSON.stringify(response.body)}`);
    }
    await sleep(300);
    assert.deepEqual(seen.events, [], "nothing was broadcast");
    const after = await Promise.all(rooms.map(([ns, room]) => history(nodeB.url, token, ns, room)));
    assert.deepEqual(after, before, "nothing was stored and no number was used");

    // The next good batch continues right after the old heads: no number was consumed by the refused ones.
    const next = await publish(nodeB.url, token, batchOf(3, good));
    assert.equal(next.status, 202);
    next.body.items.forEach((item, i) => assert.equal(seqOf(item.cursor), seqOf(before[i]!.head) + 1, `${item.room} continues its head`));
  });

  it("concurrent batches from two nodes into one room are never split or interleaved", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const room = { namespace: "workflows", room: "workflows" };
    const batches = Array.from({ length: 12 }, (_, b) => ({
      url: b % 2 ? nodeA.url : nodeB.url,
      body: batchOf(450, (i) => ({ ...room, type: "load.tick", data: { b, i } })),
    }));
    const singles = Array.from({ length: 40 }, (_, s) => ({
      url: s % 2 ? nodeA.url : nodeB.url,
      body: { ...room, type: "load.single", data: { s } },
    }));
    const responses = await Promise.all([...batches, ...singles].map(({ url, body }) => publish(url, token, body)));
    for (const response of responses) assert.equal(response.status, 202, JSON.stringify(response.body).slice(0, 300));
    for (let b = 0; b < batches.length; b++) {
      const items = responses[b]!.body.items;
      assert.equal(items.length, 450);
      assertConsecutive(
        items.map((i) => i.cursor),
        `batch ${b}`,
      );
    }
    const stored = (await history(nodeA.url, token, room.namespace, room.room)).items;
    assert.equal(stored.length, 12 * 450 + 40);
    assertConsecutive(
      stored.map((e) => e.cursor),
      "the room's log",
    );
  });

  it("answers 413 PAYLOAD_TOO_LARGE for an event whose data is over 64 KiB serialized", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const event = (data: unknown): Item => ({ namespace: "tasks", room: "tasks", type: "blob.put", data });
    // A string of n characters serializes to n + 2 bytes.
    assert.equal((await publish(nodeB.url, token, event("x".repeat(65_534)))).status, 202, "exactly 64 KiB");
    assertNames(await publish(nodeB.url, token, event("x".repeat(65_535))), 413, "PAYLOAD_TOO_LARGE", "data", "64 KiB + 1");
    assertNames(
      await publish(nodeB.url, token, event({ text: "é".repeat(40_000) })),
      413,
      "PAYLOAD_TOO_LARGE",
      "data",
      "counted in bytes, not characters",
    );
    const batch = await publish(nodeB.url, token, { events: [event(1), event("x".repeat(70_000)), event(2)] });
    assertNames(batch, 413, "PAYLOAD_TOO_LARGE", "events.1.data", "batch");
    // Many events just under the limit fit in one request as long as the body stays under MAX_PAYLOAD_BYTES.
    const nearly = await publish(nodeB.url, token, { events: Array.from({ length: 12 }, () => event("y".repeat(65_000))) });
    assert.equal(nearly.status, 202, JSON.stringify(nearly.body).slice(0, 300));
    const stored = (await history(nodeB.url, token, "tasks", "tasks")).items;
    assert.equal(stored.length, 13);
    assert.equal(stored[0]!.data, "x".repeat(65_534));
  });

  it("500 events in one batch: stored in order, replayed by subscribe { after } and listed by GET /api/v1/events", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const task = await submitTask(nodeA.url, token, { type: "echo", payload: { hello: 1 } });
    await waitForTask(nodeA.url, token, task.id, ["completed"]);
    const room = `task:${task.id}`;
    const start = await history(nodeA.url, token, "tasks", room);
    const body = batchOf(500, (i) => ({ namespace: "tasks", room, type: "etl.row", data: { i, row: `r${i}` } }));
    const response = await publish(nodeB.url, token, body);
    assert.equal(response.status, 202, JSON.stringify(response.body).slice(0, 300));
    const items = response.body.items;
    assert.equal(items.length, 500);
    assertConsecutive(
      items.map((i) => i.cursor),
      "500 cursors",
    );

    const listed = (await history(nodeA.url, token, "tasks", room)).items.filter((e) => e.type === "etl.row");
    assert.deepEqual(
      listed.map((e) => [e.id, e.cursor, e.room]),
      items.map((i) => [i.id, i.cursor, i.room]),
    );
    assert.deepEqual(
      listed.map((e) => e.data),
      body.events.map((e) => e.data),
    );

    // A subscriber that saw only the task's first event replays everything after it, built-in and published
    // events alike, in cursor order.
    const socket = await connect(nodeA.url, "tasks", { token });
    const seen = new EventRecorder(socket);
    const resumed = await subscribe(socket, room, start.items[0]!.cursor);
    assert.equal(resumed.ok, true, JSON.stringify(resumed));
    const full = (await history(nodeA.url, token, "tasks", room)).items;
    await seen.until((e) => e.length >= full.length - 1, 10_000, "the replay");
    assert.equal(resumed.replayed, full.length - 1);
    assert.deepEqual(
      seen.events.slice(0, full.length - 1).map((e) => [e.id, e.cursor, e.type]),
      full.slice(1).map((e) => [e.id, e.cursor, e.type]),
    );
    assert.ok(full.some((e) => e.type.startsWith("task.")) && full.some((e) => e.type === "etl.row"));
  });

  it("never crashes on bad input: non-object bodies, malformed events lists, too many events, deep nesting", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const good = { namespace: "tasks", room: "tasks", type: "app.x" };
    const bodies: Array<[string, { body?: unknown; rawBody?: string; headers?: Record<string, string> }, number, string | RegExp]> = [
      ["array", { body: [good] }, 400, "body"],
      ["string", { body: "app.x" }, 400, "body"],
      ["number", { body: 42 }, 400, "body"],
      ["null", { rawBody: "null" }, 400, "body"],
      ["true", { body: true }, 400, "body"],
      ["empty object", { body: {} }, 400, /^(namespace|room|type)$/],
      ["no body", {}, 400, "body"],
      ["text body", { rawBody: "app.x", headers: { "content-type": "text/plain" } }, 400, "body"],
      ["events: string", { body: { events: "x" } }, 400, "events"],
      ["events: object", { body: { events: { 0: good } } }, 400, "events"],
      ["events: null", { body: { events: null } }, 400, "events"],
      ["events: empty", { body: { events: [] } }, 400, "events"],
      ["events: [1]", { body: { events: [1] } }, 400, "events.0"],
      ["events: [null]", { body: { events: [null] } }, 400, "events.0"],
      ["events and more", { body: { events: [good], namespace: "tasks" } }, 400, "namespace"],
      ["501 events", { body: { events: Array.from({ length: 501 }, () => good) } }, 400, "events"],
      [
        "deep data",
        { rawBody: `{"namespace":"tasks","room":"tasks","type":"app.x","data":${"[".repeat(50_000)}${"]".repeat(50_000)}}` },
        400,
        /^data(\.0)+$/,
      ],
      [
        "deep type",
        { rawBody: `{"namespace":"tasks","room":"tasks","type":${"[".repeat(50_000)}${"]".repeat(50_000)}}` },
        400,
        /^type(\.0)+$/,
      ],
      ["deep events", { rawBody: `{"events":${"[".repeat(50_000)}${"]".repeat(50_000)}}` }, 400, /^events(\.0)+$/],
    ];
    for (const [label, request, status, field] of bodies) {
      const response = await api<ErrorBody>(nodeB.url, "POST", "/api/v1/events", { token, ...request });
      assertNames(response, status, "BAD_REQUEST", field, label);
    }
    const malformed = await api<ErrorBody>(nodeB.url, "POST", "/api/v1/events", { token, rawBody: '{"events": [' });
    assert.equal(malformed.status, 400);
    const huge = await api<ErrorBody>(nodeB.url, "POST", "/api/v1/events", {
      token,
      rawBody: JSON.stringify({ events: [{ ...good, data: "x".repeat(2_000_000) }] }),
    });
    assert.equal(huge.status, 413);
    assert.equal(huge.body.error.code, "PAYLOAD_TOO_LARGE");
    await sleep(100);
    assert.equal(nodeB.process.exitCode, null, "the node is still running");
    assert.equal((await api(nodeB.url, "GET", "/health")).status, 200);
    assert.equal((await publish(nodeB.url, token, good)).status, 202);
    assert.deepEqual(
      (await history(nodeB.url, token, "tasks", "tasks")).items.map((e) => e.type),
      ["app.x"],
    );
  });
});

// What the API cannot reach (its validation refuses whatever PostgreSQL would): a group whose statement fails.
// The event log runs in this process against the run's PostgreSQL database; no server is involved.
describe("EventLogWriter.appendGroup (on the test database)", () => {
  let prisma: PrismaClient;
  let log: EventLogWriter;
  before(() => {
    prisma = createPrisma(TEST_DATABASE_URL);
    log = new EventLogWriter(prismaSql(prisma));
  });
  after(async () => {
    await prisma.$disconnect();
  });

  it("a group PostgreSQL refuses fails as a whole; the appends batched with it are stored, and a good group stays consecutive", async () => {
    const tenantId = freshTenant();
    const event = (type: string, data: unknown): StoredEventInput => ({
      tenantId,
      targets: [{ namespace: "tasks", room: "tasks" }],
      eventId: randomUUID(),
      type,
      data,
      ts: new Date(),
    });
    // The first append goes at once; the rest queue behind it and share the next statement, which fails because
    // of the bad group's lone surrogate and is retried item by item.
    const results = await Promise.allSettled([
      log.append(event("t.first", 0)),
      log.append(event("t.before", 1)),
      log.appendGroup([event("t.bad", 1), event("t.bad", "\ud800"), event("t.bad", 3)]),
      log.appendGroup([event("t.good", 1), event("t.good", 2), event("t.good", 3)]),
      log.append(event("t.after", 1)),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ["fulfilled", "fulfilled", "rejected", "fulfilled", "fulfilled"],
    );
    const group = (results[3] as PromiseFulfilledResult<Awaited<ReturnType<EventLogWriter["appendGroup"]>>>).value;
    assert.deepEqual(
      group.map((copies) => copies.map((c) => c.data)),
      [[1], [2], [3]],
    );
    const stored = await prisma.$queryRawUnsafe<Array<{ seq: number; type: string }>>(
      `SELECT r.seq, e.type FROM "RoomEvent" r JOIN "Event" e ON e.id = r."eventId" WHERE r."tenantId" = $1 ORDER BY r.seq`,
      tenantId,
    );
    assert.deepEqual(
      stored.map((e) => e.type),
      ["t.first", "t.before", "t.good", "t.good", "t.good", "t.after"],
    );
    assert.deepEqual(
      stored.map((e) => e.seq),
      [1, 2, 3, 4, 5, 6],
      "no number was used by the refused group",
    );
    assert.deepEqual(
      group.map((copies) => copies[0]!.seq),
      [3, 4, 5],
    );
  });
});
