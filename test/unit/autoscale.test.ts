import assert from "node:assert/strict";
import fc from "fast-check";
import { autoscaledWorkers } from "../../src/domains/pools/autoscaler.js";

describe("autoscaledWorkers (pure)", () => {
  it("one worker per targetQueuedPerWorker queued or running tasks, within the bounds", () => {
    const settings = { minWorkers: 1, maxWorkers: 3, targetQueuedPerWorker: 2 };
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 100].map((depth) => autoscaledWorkers(depth, settings)),
      [1, 1, 1, 2, 2, 3, 3],
    );
    assert.equal(autoscaledWorkers(7, { minWorkers: null, maxWorkers: null, targetQueuedPerWorker: 5 }), 2);
    assert.equal(autoscaledWorkers(0, { minWorkers: null, maxWorkers: null, targetQueuedPerWorker: 5 }), 0);
  });

  it("property: always within [min, max], never fewer than the queue needs unless capped", () => {
    fc.assert(
      fc.property(fc.nat(100_000), fc.nat(50), fc.nat(50), fc.integer({ min: 1, max: 1000 }), (depth, a, b, target) => {
        const [min, max] = a <= b ? [a, b] : [b, a];
        const n = autoscaledWorkers(depth, { minWorkers: min, maxWorkers: max, targetQueuedPerWorker: target });
        assert.ok(n >= min && n <= max);
        if (n < max) assert.ok(n * target >= depth);
      }),
    );
  });
});
