import assert from "node:assert/strict";
import { encodeCursor } from "../src/protocol/cursor.js";
import type { Envelope } from "../src/protocol/events.js";
import { MAX_HELD_EVENTS, RoomSeams, SEAM_GRACE_MS } from "../src/realtime/room-seams.js";

const KEY = "t1:tasks";
const at = (seq: number, epoch = "e1"): Envelope => ({ id: `id${seq}`, type: "x.y", room: "tasks", cursor: encodeCursor({ epoch, seq }), ts: "", data: {} });
const packet = (seq: number, epoch?: string): unknown[] => ["x.y", at(seq, epoch)];
const rooms = new Set([KEY]);

describe("room seams (replay → live hand-over, unit)", () => {
  it("touches nothing for rooms without a replaying socket, nor packets that are not stored events", () => {
    const seams = new RoomSeams();
    assert.equal(seams.exceptFor(rooms, packet(1)), undefined);
    seams.hold(KEY, "s1");
    assert.equal(seams.exceptFor(new Set(["t1:other"]), packet(1)), undefined);
    assert.equal(seams.exceptFor(rooms, ["session.revoked", { reason: "token_revoked" }]), undefined);
  });

  it("holds live events during the replay, releases only those after what was replayed, then drops late copies", () => {
    const seams = new RoomSeams();
    seams.hold(KEY, "s1");
    for (const seq of [5, 6, 7]) assert.deepEqual(seams.exceptFor(rooms, packet(seq)), new Set(["s1"]));
    const late = seams.release(KEY, "s1", { epoch: "e1", seq: 5 });
    assert.deepEqual(late?.map((e) => e.cursor), [at(6).cursor, at(7).cursor]);
    // Live now: a copy of an event the replay sent is not sent again, a new one is.
    assert.deepEqual(seams.exceptFor(rooms, packet(4)), new Set(["s1"]));
    assert.equal(seams.exceptFor(rooms, packet(8)), undefined);
    // Another epoch is another life of the room: never taken for a copy.
    assert.equal(seams.exceptFor(rooms, packet(2, "e2")), undefined);
    seams.forget(KEY, "s1");
    assert.equal(seams.size, 0);
    assert.equal(seams.exceptFor(rooms, packet(3)), undefined);
  });

  it("past MAX_HELD_EVENTS asks for one more read of the log instead of keeping more", () => {
    const seams = new RoomSeams();
    seams.hold(KEY, "s1");
    for (let seq = 1; seq <= MAX_HELD_EVENTS + 1; seq++) seams.exceptFor(rooms, packet(seq));
    assert.equal(seams.release(KEY, "s1", { epoch: "e1", seq: 0 }), null, "overflowed: read the log again");
    seams.exceptFor(rooms, packet(MAX_HELD_EVENTS + 2));
    assert.deepEqual(seams.release(KEY, "s1", { epoch: "e1", seq: MAX_HELD_EVENTS + 1 })?.map((e) => e.id), [`id${MAX_HELD_EVENTS + 2}`]);
  });

  it("past its byte bound, the same: a slow reader's catch-up keeps no more than that of a busy room in memory", () => {
    const seams = new RoomSeams(10_000);
    seams.hold(KEY, "s1");
    for (let seq = 1; seq <= 3; seq++) seams.exceptFor(rooms, packet(seq), 4_000);
    assert.equal(seams.release(KEY, "s1", { epoch: "e1", seq: 0 }), null, "12,000 bytes held: read the log again");
    seams.exceptFor(rooms, packet(4), 4_000);
    seams.exceptFor(rooms, packet(5), 4_000);
    assert.deepEqual(seams.release(KEY, "s1", { epoch: "e1", seq: 3 })?.map((e) => e.id), ["id4", "id5"]);
  });

  it("forgets a live seam SEAM_GRACE_MS after it went live (a late copy comes within milliseconds), never a held one", () => {
    const seams = new RoomSeams();
    seams.hold(KEY, "live");
    seams.hold(KEY, "holding");
    seams.release(KEY, "live", { epoch: "e1", seq: 5 });
    const later = Date.now() + SEAM_GRACE_MS + 1;
    assert.deepEqual(seams.exceptFor(rooms, packet(4), 0, later), new Set(["holding"]), "the live one is no longer looked at");
    assert.equal(seams.size, 1);
  });
});
