import assert from "node:assert/strict";
import { TenantFairShare } from "../../src/limits/tenant-fair-share.js";

/** A piece of work that ends when the test says so. */
function gate(): { done: Promise<void>; end: () => void } {
  let end!: () => void;
  const done = new Promise<void>((resolve) => (end = resolve));
  return { done, end };
}

describe("TenantFairShare (pure)", () => {
  it("within its share a tenant starts at once; over it, only into places not kept for another's share; the waiting go by tenant in turn", async () => {
    const share = new TenantFairShare(3, 2, 100);
    const started: string[] = [];
    const gates = new Map<string, () => void>();
    const piece = (tenant: string, name: string) =>
      share.run(tenant, async () => {
        started.push(name);
        const g = gate();
        gates.set(name, g.end);
        await g.done;
      });
    const end = async (name: string): Promise<void> => {
      gates.get(name)!();
      await new Promise((resolve) => setImmediate(resolve));
    };
    const all = [
      piece("a", "a1"),
      piece("a", "a2"),
      piece("a", "a3"),
      piece("a", "a4"),
      piece("a", "a5"),
      piece("b", "b1"),
      piece("b", "b2"),
      piece("c", "c1"),
    ];
    await Promise.resolve();
    // a takes its share (2) and not the last place, kept for another tenant's share: b's first starts at once
    // although five pieces were sent before it.
    assert.deepEqual(started, ["a1", "a2", "b1"]);
    assert.deepEqual(share.stats, { running: 3, waiting: 5, tenantsWaiting: 3 });
    await end("a1"); // a queued first and is within its share again: its turn
    assert.deepEqual(started.slice(3), ["a3"]);
    await end("a2"); // b's turn
    assert.deepEqual(started.slice(4), ["b2"]);
    await end("b1"); // c's turn
    assert.deepEqual(started.slice(5), ["c1"]);
    for (const name of ["a3", "b2", "c1"]) await end(name);
    assert.deepEqual(started.slice(6), ["a4", "a5"], "alone again, a uses its share");
    for (const name of ["a4", "a5"]) await end(name);
    await Promise.all(all);
    assert.deepEqual(share.stats, { running: 0, waiting: 0, tenantsWaiting: 0 });
  });

  it("a tenant alone uses every place but the last perTenant", async () => {
    const share = new TenantFairShare(10, 3, 100);
    const gates: Array<() => void> = [];
    let running = 0;
    const pieces = Array.from({ length: 20 }, () =>
      share.run("a", async () => {
        running++;
        await new Promise<void>((resolve) => gates.push(resolve));
        running--;
      }),
    );
    await Promise.resolve();
    assert.equal(running, 7);
    while (gates.length > 0) {
      gates.shift()!();
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(pieces);
  });

  it("refuses a tenant with maxWaitingPerTenant pieces waiting (RATE_LIMITED), and only that tenant", async () => {
    const share = new TenantFairShare(1, 1, 2);
    const g = gate();
    const first = share.run("a", () => g.done);
    const waiting = [share.run("a", async () => undefined), share.run("a", async () => undefined)];
    await assert.rejects(
      share.run("a", async () => undefined),
      (error: Error & { code?: string }) => error.code === "RATE_LIMITED",
    );
    const other = share.run("b", async () => "b ran");
    g.end();
    await Promise.all([first, ...waiting]);
    assert.equal(await other, "b ran");
  });

  it("gives the place back when the work throws", async () => {
    const share = new TenantFairShare(1, 1, 10);
    await assert.rejects(
      share.run("a", async () => Promise.reject(new Error("boom"))),
      /boom/,
    );
    assert.equal(await share.run("a", async () => 42), 42);
    assert.equal(share.stats.running, 0);
  });
});
