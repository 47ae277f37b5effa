import assert from "node:assert/strict";
import { mock } from "node:test";
import { CachedReading } from "../src/observability/cached-reading.js";
import { sleep } from "./support/clients.js";

/** A read the test answers by hand: `pending` are the reads started and not yet answered. */
function manualRead() {
  const pending: Array<{ resolve: (value: number) => void; reject: (error: Error) => void }> = [];
  return {
    pending,
    started: 0,
    read(): Promise<number> {
      this.started++;
      return new Promise((resolve, reject) => pending.push({ resolve, reject }));
    },
  };
}

describe("CachedReading (the scrape-time figures' cache; no server)", () => {
  it("merges concurrent callers into one read and serves the value from cache until the TTL passes", async () => {
    const source = manualRead();
    const reading = new CachedReading(
      () => source.read(),
      { ttlMs: 60_000, deadlineMs: 60_000, maxAgeMs: 120_000 },
      () => undefined,
    );
    const callers = [reading.get(), reading.get(), reading.get()];
    await sleep(0);
    assert.equal(source.started, 1);
    source.pending[0]!.resolve(7);
    assert.deepEqual(await Promise.all(callers), [7, 7, 7]);
    assert.equal(await reading.get(), 7);
    assert.equal(source.started, 1, "cached: no second read");
  });

  it("answers a caller at the deadline with the last value while a read hangs, and with nothing when there is none", async () => {
    const source = manualRead();
    const reading = new CachedReading(
      () => source.read(),
      { ttlMs: 0, deadlineMs: 20, maxAgeMs: 60_000 },
      () => undefined,
    );
    assert.equal(await reading.get(), undefined, "nothing read yet");
    source.pending[0]!.resolve(3);
    await sleep(0);
    assert.equal(await reading.get(), 3, "the first read answered after its caller gave up");
    // The second read hangs: callers get the last value, and no further read starts meanwhile.
    assert.equal(await reading.get(), 3);
    assert.equal(source.started, 2);
  });

  it("forgets the value when a read fails: the figure is unknown, not old", async () => {
    const source = manualRead();
    const errors: unknown[] = [];
    const reading = new CachedReading(
      () => source.read(),
      { ttlMs: 0, deadlineMs: 60_000, maxAgeMs: 60_000 },
      (error) => errors.push(error),
    );
    const first = reading.get();
    await sleep(0);
    source.pending[0]!.resolve(5);
    assert.equal(await first, 5);
    const second = reading.get();
    await sleep(0);
    source.pending[1]!.reject(new Error("connection refused"));
    assert.equal(await second, undefined);
    assert.equal(errors.length, 1);
  });

  it("gives up on a read pending past maxAgeMs, and a late answer of it does not overwrite the newer one", async () => {
    // The test's own clock: "past maxAgeMs" is a tick of it, not a sleep that a busy machine could stretch.
    mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
    try {
      const source = manualRead();
      const reading = new CachedReading(
        () => source.read(),
        { ttlMs: 0, deadlineMs: 5, maxAgeMs: 30 },
        () => undefined,
      );
      const stuck = reading.get();
      mock.timers.tick(5);
      assert.equal(await stuck, undefined, "the caller's deadline passed with no value");
      mock.timers.tick(30);
      const fresh = reading.get();
      assert.equal(source.started, 2, "a new read replaced the stuck one");
      source.pending[1]!.resolve(9);
      assert.equal(await fresh, 9);
      source.pending[0]!.resolve(1);
      // One turn of the event loop (setImmediate is not faked): the late answer has been handled.
      await new Promise((resolve) => setImmediate(resolve));
      const again = reading.get();
      mock.timers.tick(5);
      assert.equal(await again, 9, "the stuck read's late answer is ignored");
    } finally {
      mock.timers.reset();
    }
  });
});
