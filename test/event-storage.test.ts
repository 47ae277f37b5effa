import assert from "node:assert/strict";
import pg from "pg";
import type { Envelope } from "../src/protocol/events.js";
import { decodeCursor } from "../src/protocol/cursor.js";
import { connect, EventRecorder, subscribe } from "./support/clients.js";
import { freshTenant, TEST_DATABASE_URL } from "./support/env.js";
import { api } from "./support/http.js";
import { sharedServer } from "./support/shared.js";
import { submitTask, waitForTask } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";

/*
 * Each event is stored once ("Event"), and each of its rooms refers to it ("RoomEvent"): these tests count the
 * rows a task leaves behind, and check that what a client reads back (live, after a reconnect, and from the
 * history) is still every event once, in cursor order.
 */
describe("event storage: each event stored once", () => {
  let db: pg.Client;

  before(async () => {
    db = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await db.connect();
  });
  after(async () => {
    await db.end();
  });

  async function count(sql: string, values: unknown[]): Promise<number> {
    const { rows } = await db.query<{ n: string }>(sql, values);
    return Number(rows[0]!.n);
  }

  it("stores an echo task's five events once each, one narrow place per room, its payload and result once", async () => {
    const tenant = freshTenant("once");
    const token = mintToken({ tenant });
    const payload = { blob: "x".repeat(20_000), n: 7 };
    const task = await submitTask(server(), token, { type: "echo", payload });
    await waitForTask(server(), token, task.id, ["completed"]);

    const events = await db.query<{ type: string; targets: string[]; seqs: number[]; has_payload: boolean; has_result: boolean }>(
      `SELECT "type", "targets", "seqs", data->'task' ? 'payload' AS has_payload, data->'task' ? 'result' AS has_result
         FROM "Event" WHERE "tenantId" = $1 AND data->'task'->>'id' = $2 ORDER BY "ts", "type"`,
      [tenant, task.id],
    );
    const types = events.rows.map((e) => e.type).sort();
    assert.deepEqual(
      types,
      ["task.assigned", "task.completed", "task.created", "task.queued", "task.started"],
      "five events, each stored once",
    );
    assert.equal(events.rows.filter((e) => e.has_payload).length, 1, "the payload is stored in one event (task.created)");
    assert.equal(events.rows.filter((e) => e.has_result).length, 1, "the result is stored in one event (task.completed)");
    for (const event of events.rows) {
      const rooms = event.type === "task.assigned" ? 4 : 3;
      assert.equal(event.targets.length, rooms, `${event.type} lists its ${rooms} rooms`);
      assert.equal(event.seqs.length, rooms);
    }

    // One narrow place per event and room: tasks, task:<id>, pool:default (and /pools pool:default for task.assigned).
    assert.equal(
      await count(`SELECT count(*) AS n FROM "RoomEvent" WHERE "tenantId" = $1 AND "namespace" = 'tasks' AND "room" = $2`, [
        tenant,
        `task:${task.id}`,
      ]),
      5,
    );
    assert.equal(
      await count(`SELECT count(*) AS n FROM "RoomEvent" WHERE "tenantId" = $1 AND "namespace" = 'tasks' AND "room" = 'tasks'`, [tenant]),
      5,
    );
    assert.equal(
      await count(`SELECT count(*) AS n FROM "RoomEvent" WHERE "tenantId" = $1 AND "namespace" = 'pools' AND "room" = 'pool:default'`, [
        tenant,
      ]),
      1,
    );
    assert.equal(
      await count(
        `SELECT count(*) AS n FROM "RoomEvent" r JOIN "Event" e ON e."id" = r."eventId"
          WHERE r."tenantId" = $1 AND e."targets"[array_position(e."targets", r."namespace" || '|' || r."room")] IS NOT NULL
            AND e."seqs"[array_position(e."targets", r."namespace" || '|' || r."room")] = r."seq"`,
        [tenant],
      ),
      await count(`SELECT count(*) AS n FROM "RoomEvent" WHERE "tenantId" = $1`, [tenant]),
      "every place agrees with the position its event records",
    );
    // A task's change commits with its events in the log's own statement: nothing passes through the outbox.
    assert.equal(await count(`SELECT count(*) AS n FROM "Outbox" WHERE "tenantId" = $1`, [tenant]), 0);
  });

  it("a client that reconnects mid-stream gets every event of the room once, in order, live and from the log", async () => {
    const tenant = freshTenant("resume");
    const token = mintToken({ tenant });
    const first = await connect(server(), "tasks", { token, transports: ["websocket"] });
    const seen = new EventRecorder(first);
    await subscribe(first, "tasks");
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await submitTask(server(), token, { type: "echo", payload: { i } })).id);
    await seen.until((events) => events.length >= 4, 10_000, "some events");
    first.close();
    const before = [...seen.events];
    // More tasks while the client is away.
    for (let i = 0; i < 6; i++) ids.push((await submitTask(server(), token, { type: "echo", payload: { i: i + 6 } })).id);
    for (const id of ids) await waitForTask(server(), token, id, ["completed"]);

    const second = await connect(server(), "tasks", { token, transports: ["websocket"] });
    const again = new EventRecorder(second);
    const ack = await subscribe(second, "tasks", before.at(-1)!.cursor);
    assert.equal(ack.ok, true);
    const total = ids.length * 5;
    await again.until((events) => before.length + events.length >= total, 15_000, "the rest of the room");
    const all: Envelope[] = [...before, ...again.events];
    const seqs = all.map((e) => decodeCursor(e.cursor)!.seq);
    assert.deepEqual(
      seqs,
      Array.from({ length: total }, (_, i) => i + 1),
      "every cursor once, in order",
    );
    assert.equal(new Set(all.map((e) => e.id)).size, total, "every event once");
    second.close();

    // The history reads the same events, with the same data, as delivered.
    const history = await api(server(), "GET", `/api/v1/events?namespace=tasks&room=tasks&limit=1000`, { token });
    assert.deepEqual(
      (history.body.items as Envelope[]).map((e) => [e.id, e.cursor, e.type]),
      all.map((e) => [e.id, e.cursor, e.type]),
    );
    assert.deepEqual(
      (history.body.items as Envelope[]).map((e) => e.data),
      all.map((e) => e.data),
    );
  });

  let url: string | undefined;
  before(async () => {
    url = (await sharedServer()).url;
  });
  function server(): string {
    return url!;
  }
});
