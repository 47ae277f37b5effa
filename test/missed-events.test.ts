import assert from "node:assert/strict";
import { MissedEvents } from "../src/realtime/missed-events.js";
import type { Envelope } from "../src/protocol/events.js";

const envelope = (room: string, seq: number, epoch = "e1"): Envelope =>
  ({ id: `id${seq}`, type: "task.progress", room, cursor: `${epoch}-${String(seq).padStart(12, "0")}`, ts: "2026-01-01T00:00:00.000Z", data: {} }) as unknown as Envelope;

describe("MissedEvents (pure)", () => {
  it("skips nothing for a connection that is not behind, and keeps nothing for it", () => {
    const missed = new MissedEvents({ isBehind: () => false, behindCount: 0 });
    const socket = { conn: {} };
    assert.equal(missed.active, false);
    assert.equal(missed.skip(socket, envelope("tasks", 1)), false);
    assert.equal(missed.take(socket.conn), undefined);
  });

  it("for a connection behind, notes per socket and room the position before the first event it missed (the lowest)", () => {
    const conn = {};
    const missed = new MissedEvents({ isBehind: (c) => c === conn, behindCount: 1 });
    const a = { conn };
    const b = { conn };
    assert.equal(missed.skip(a, envelope("tasks", 7)), true);
    assert.equal(missed.skip(a, envelope("tasks", 9)), true);
    assert.equal(missed.skip(a, envelope("tasks", 6)), true, "an event that arrived late");
    assert.equal(missed.skip(a, envelope("task:x", 3)), true);
    assert.equal(missed.skip(b, envelope("tasks", 8)), true);
    missed.forget(a, "task:x");
    const taken = missed.take(conn)!;
    assert.deepEqual(Object.fromEntries(taken.get(a)!), { tasks: { epoch: "e1", seq: 5 } });
    assert.deepEqual(Object.fromEntries(taken.get(b)!), { tasks: { epoch: "e1", seq: 7 } });
    assert.equal(missed.take(conn), undefined, "taken once");
  });

  it("does not skip a packet without a cursor it can read", () => {
    const conn = {};
    const missed = new MissedEvents({ isBehind: () => true, behindCount: 1 });
    assert.equal(missed.skip({ conn }, { ...envelope("tasks", 1), cursor: "nonsense" }), false);
  });
});
