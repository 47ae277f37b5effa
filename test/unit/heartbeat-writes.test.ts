import assert from "node:assert/strict";
import { HeartbeatWrites } from "../../src/domains/pools/heartbeat-writes.js";

describe("HeartbeatWrites (pure)", () => {
  it("writes once per gap per connection, at once for a new connection, and again after the connection is forgotten", () => {
    let now = 0;
    const writes = new HeartbeatWrites(2500, () => now);
    assert.equal(writes.due("t|w", "c1"), true);
    assert.equal(writes.due("t|w", "c1"), false);
    now = 2499;
    assert.equal(writes.due("t|w", "c1"), false);
    now = 2500;
    assert.equal(writes.due("t|w", "c1"), true);
    assert.equal(writes.due("t|w", "c2"), true, "another connection of the worker takes its presence over");
    assert.equal(writes.due("t|other", "c1"), true, "each worker on its own");
    writes.forget("t|w", "c1"); // not c1's any more: kept
    assert.equal(writes.due("t|w", "c2"), false);
    writes.forget("t|w", "c2");
    assert.equal(writes.due("t|w", "c2"), true);
    assert.equal(writes.size, 2);
  });
});
