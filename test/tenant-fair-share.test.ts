import assert from "node:assert/strict";
import { TenantFairShare } from "../src/limits/tenant-fair-share.js";

/** A piece of work that ends when the test says so. */
function gate(): { done: Promise<void>; end: () => void } {
  let end!: () => void;
  const done = new Promise<void>((resolve) => (end = resolve));
  return { done, end };
}

describe("TenantFairShare (pure)", () => {
  it("caps a tenant at its share and starts waiting work by tenant in turn, not first come", async () => {
    const share = new TenantFairShare(3, 2, 100);
    const started: string[] = [];
    const gates: Array<{ end: () => void }> = [];
    const piece = (tenant: string, name: string) =>
      share.run(tenant, async () => {
        started.push(name);
        const g = gate();
        gates.push(g);
        await g.done;
      });
    const all = [piece("a", "a1"), piece("a", "a2"), piece("a", "a3"), piece("a", "a4"), piece("a", "a5"), piece("b", "b1"), piece("b", "b2"), piece("c", "c1")];
    await Promise.resolve();
    // a has its share (2); b takes the last place; a's flood waits on a, not on b or c.
    assert.deepEqual(started, ["a1", "a2", "b1"]);
    assert.deepEqual(share.stats, { running: 3, waiting: 5, tenantsWaiting: 3 });
    gates.shift()!.end(); // a1 ends: a queued first, so it is first in turn
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(started, ["a1", "a2", "b1", "a3"]);
    gates.shift()!.end(); // a2 ends: b and c waited; b is next in turn
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(started.slice(4), ["b2"]);
    gates.shift()!.end(); // b1 ends: c
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(started.slice(5), ["c1"]);
    while (gates.length > 0 || started.length < 8) {
      gates.shift()?.end();
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(all);
    assert.deepEqual(share.stats, { running: 0, waiting: 0, tenantsWaiting: 0 });
  });

  it("refuses a tenant with maxWaitingPerTenant pieces waiting (RATE_LIMITED), and only that tenant", async () => {
    const share = new TenantFairShare(1, 1, 2);
    const g = gate();
    const first = share.run("a", () => g.done);
    const waiting = [share.run("a", async () => undefined), share.run("a", async () => undefined)];
    await assert.rejects(share.run("a", async () => undefined), (error: Error & { code?: string }) => error.code === "RATE_LIMITED");
    const other = share.run("b", async () => "b ran");
    g.end();
    await Promise.all([first, ...waiting]);
    assert.equal(await other, "b ran");
  });

  it("gives the place back when the work throws", async () => {
    const share = new TenantFairShare(1, 1, 10);
    await assert.rejects(share.run("a", async () => Promise.reject(new Error("boom"))), /boom/);
    assert.equal(await share.run("a", async () => 42), 42);
    assert.equal(share.stats.running, 0);
  });
});
