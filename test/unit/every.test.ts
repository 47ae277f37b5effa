import assert from "node:assert/strict";
import { every, type WarnLogger } from "../../src/every.js";

/** Resolves once `condition` holds, looking after each turn of the event loop's timers. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 1));
}

describe("every (pure)", () => {
  it("never starts a run while the previous one is under way", async () => {
    let running = 0;
    let most = 0;
    let runs = 0;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const timer = every(
      1,
      async () => {
        runs++;
        running++;
        most = Math.max(most, running);
        if (runs === 1) await held;
        running--;
      },
      { name: "test", onError: (error) => assert.fail(String(error)) },
    );
    // The first run is held while the timer keeps ticking: ticks pass without a second run.
    await until(() => runs === 1);
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 2));
    assert.equal(runs, 1);
    release();
    await until(() => runs >= 3);
    timer.stop();
    assert.equal(most, 1);
  });

  it("hands a throwing or rejecting run to onError and runs again at the next tick", async () => {
    const errors: string[] = [];
    let runs = 0;
    const timer = every(
      1,
      () => {
        runs++;
        if (runs === 1) throw new Error("thrown");
        if (runs === 2) return Promise.reject(new Error("rejected"));
        return undefined;
      },
      { name: "test", onError: (error) => errors.push((error as Error).message) },
    );
    await until(() => runs >= 3);
    timer.stop();
    assert.deepEqual(errors, ["thrown", "rejected"]);
  });

  it("logs a failed run under its name when given a logger", async () => {
    const lines: Array<{ task: unknown; message: string }> = [];
    const logger: WarnLogger = { warn: (fields, message) => void lines.push({ task: fields.task, message }) };
    const timer = every(1, () => Promise.reject(new Error("down")), { name: "outbox relay", logger });
    await until(() => lines.length > 0);
    timer.stop();
    assert.deepEqual(lines[0], { task: "outbox relay", message: "outbox relay failed" });
  });

  it("starts no run after stop", async () => {
    let runs = 0;
    const timer = every(1, () => void runs++, { name: "test", onError: () => undefined });
    await until(() => runs > 0);
    timer.stop();
    const stoppedAt = runs;
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 2));
    assert.equal(runs, stoppedAt);
  });
});
