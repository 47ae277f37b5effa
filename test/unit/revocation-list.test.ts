import assert from "node:assert/strict";
import { RevocationList } from "../../src/auth/revocation-list.js";

describe("RevocationList counts per tenant (unit)", () => {
  it("counts each revocation once per tenant, and gives the place back when it is forgotten", () => {
    const list = new RevocationList();
    list.add({ kind: "jti", tenantId: "t1", id: "a", at: 1000 });
    list.add({ kind: "sub", tenantId: "t1", id: "alice", at: 1000 });
    list.add({ kind: "sub", tenantId: "t1", id: "alice", at: 5000 }); // moved on: the same place
    list.add({ kind: "jti", tenantId: "t2", id: "a", at: 1000 });
    assert.equal(list.countFor("t1"), 2);
    assert.equal(list.countFor("t2"), 1);
    assert.ok(list.has({ kind: "sub", tenantId: "t1", id: "alice" }));
    list.forgetBefore(2000); // t1's jti and t2's go; alice (5000) stays
    assert.equal(list.countFor("t1"), 1);
    assert.equal(list.countFor("t2"), 0);
    assert.equal(list.size, 1);
  });
});
