import assert from "node:assert/strict";
import { progressThrottle, type ProgressValue } from "../../src/worker/progress-throttle.js";

// An interval far longer than a test: the first value goes out at once, every later one waits, and flush() is
// what sends the last, so nothing here depends on time.
const LONG = 3_600_000;

describe("progressThrottle (pure)", () => {
  it("sends the first value at once and only the latest of those pushed meanwhile, on flush, in order", async () => {
    const sent: ProgressValue[] = [];
    const throttle = progressThrottle(LONG, async (value) => {
      sent.push(value);
      return "sent";
    });
    for (let percent = 0; percent <= 100; percent += 10) throttle.push(percent, `step ${percent}`);
    await throttle.flush();
    assert.deepEqual(sent, [
      { progress: 0, detail: "step 0" },
      { progress: 100, detail: "step 100" },
    ]);
  });

  it("cleans what a handler passes: NaN becomes 0, percentages are clamped, details become storable text", async () => {
    const sent: ProgressValue[] = [];
    const throttle = progressThrottle(0, async (value) => {
      sent.push(value);
      return "sent";
    });
    throttle.push(Number.NaN);
    throttle.push(250, "x".repeat(10_000));
    throttle.push(-5, "bad\u0000text");
    await throttle.flush();
    assert.deepEqual(
      sent.map((value) => value.progress),
      [0, 100, 0],
    );
    assert.ok(sent[1]!.detail!.length < 10_000);
    assert.ok(!sent[2]!.detail!.includes("\u0000"));
  });

  it("sends a value again when the delivery says retry, unless a newer one is waiting or the run is over", async () => {
    const attempts: number[] = [];
    let failNext = true;
    const throttle = progressThrottle(LONG, async (value) => {
      attempts.push(value.progress);
      if (failNext) {
        failNext = false;
        return "retry";
      }
      return "sent";
    });
    throttle.push(10);
    // Let the first delivery and its "retry" settle (promise callbacks only, no timer), then end the run.
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(attempts, [10]);
    await throttle.flush();
    assert.deepEqual(attempts, [10, 10], "the lost value went out again on flush");

    const newer: number[] = [];
    let first = true;
    const second = progressThrottle(LONG, async (value) => {
      newer.push(value.progress);
      if (first) {
        first = false;
        second.push(20); // a newer value arrives while the first is in flight: the lost one is not resent
        return "retry";
      }
      return "sent";
    });
    second.push(10);
    await new Promise((resolve) => setImmediate(resolve));
    await second.flush();
    assert.deepEqual(newer, [10, 20]);

    // Once flushed (the outcome is going out), a lost progress value is not sent again.
    const late: number[] = [];
    const third = progressThrottle(LONG, async (value) => {
      late.push(value.progress);
      return "retry";
    });
    third.push(30);
    await third.flush();
    assert.deepEqual(late, [30]);
  });
});
