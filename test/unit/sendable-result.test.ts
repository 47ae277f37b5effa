import assert from "node:assert/strict";
import { sendableResult } from "../../src/worker/sendable-result.js";

describe("a handler's result as a worker sends it (src/worker/sendable-result.ts)", () => {
  const LIMIT = 1_048_576;

  it("sends JSON as the server will read it: a Date as its string, undefined members dropped, undefined as null", () => {
    const at = new Date("2026-11-23T12:00:00Z");
    assert.deepEqual(sendableResult({ at, gone: undefined, n: 1 }, LIMIT), { ok: true, value: { at: "2026-11-23T12:00:00.000Z", n: 1 } });
    assert.deepEqual(sendableResult(undefined, LIMIT), { ok: true, value: null });
    assert.deepEqual(sendableResult("text", LIMIT), { ok: true, value: "text" });
  });

  it("says why a result cannot be sent: not JSON, breaking the input rules, or too big", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const cases: Array<[unknown, RegExp]> = [
      [{ n: 1n }, /is not JSON: .*BigInt/],
      [cyclic, /is not JSON: .*circular/i],
      [() => 1, /is not JSON: a function/],
      [{ rows: [{ name: "a\u0000b" }] }, /at rows\.0\.name must not contain NUL/],
      [{ text: "\ud800" }, /at text must not contain lone UTF-16 surrogates/],
      ["x".repeat(LIMIT), /is 1048578 bytes of JSON; the server takes at most 1044480/],
    ];
    for (const [result, problem] of cases) {
      const sent = sendableResult(result, LIMIT);
      assert.equal(sent.ok, false);
      if (!sent.ok) assert.match(sent.problem, problem);
    }
  });
});
