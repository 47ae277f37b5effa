import assert from "node:assert/strict";
import fc from "fast-check";
import {
  findJsonProblem,
  findJsonTextDepthProblem,
  isStorableText,
  MAX_JSON_DEPTH,
  toStorableText,
} from "../../src/protocol/json-safety.js";

// The JSON input rules on their own: no server, no I/O. The seed is printed so that a failure can be replayed
// with FUZZ_SEED (fast-check also prints the counterexample and its seed).
const seed = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const numRuns = Number(process.env.FUZZ_RUNS ?? 300);

/** `levels` arrays around a number: `nested(2)` is `[[1]]`, nested `levels` deep. */
function nested(levels: number, wrap: (inner: unknown) => unknown = (inner) => [inner]): unknown {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = wrap(value);
  return value;
}

/** Strings without NUL or lone surrogates (any code point, emoji included). */
const goodString = fc.string({ unit: "grapheme", maxLength: 12 }).filter((s) => !s.includes("\u0000"));
const goodJson = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    goodString,
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(
      goodString.filter((k) => k !== "__proto__"),
      tie("value"),
      { maxKeys: 4 },
    ),
  ),
})).value;

/** Puts `bad` somewhere inside `host` (as a value or as a key) and returns the new value. */
const withBadText = (bad: string) =>
  fc.tuple(goodJson, fc.boolean(), fc.nat()).map(([host, asKey, pick]) => {
    const place = { [asKey ? `k${bad}` : "k"]: asKey ? 1 : `v${bad}` };
    if (Array.isArray(host)) return [...host.slice(0, pick % (host.length + 1)), place, ...host.slice(pick % (host.length + 1))];
    if (typeof host === "object" && host !== null) return { ...host, inner: place };
    return [host, place];
  });

describe("JSON input rules (src/protocol/json-safety.ts)", () => {
  before(() => {
    console.log(`    json-safety: FUZZ_SEED=${seed} FUZZ_RUNS=${numRuns}`);
  });

  it("accepts ordinary JSON, text and parsed value alike", () => {
    fc.assert(
      fc.property(goodJson, (value) => {
        assert.equal(findJsonProblem(value), undefined);
        assert.equal(findJsonTextDepthProblem(JSON.stringify(value) ?? "null"), undefined);
        assert.equal(findJsonTextDepthProblem(new TextEncoder().encode(JSON.stringify(value) ?? "null")), undefined);
      }),
      { seed, numRuns },
    );
  });

  it("refuses NUL characters and lone surrogates wherever they are, in keys too, and names the path", () => {
    for (const [bad, word] of [
      ["\u0000", "NUL"],
      ["\ud800", "surrogate"],
      ["\udfff", "surrogate"],
      ["x\udc00\ud800", "surrogate"],
    ] as const) {
      fc.assert(
        fc.property(withBadText(bad), (value) => {
          const problem = findJsonProblem(value);
          assert.ok(problem, JSON.stringify(value));
          assert.match(problem.message, new RegExp(word));
          assert.ok(problem.path.includes("k"), problem.path);
          assert.ok(problem.path.isWellFormed() && !problem.path.includes("\u0000"), "the path itself is safe to send back");
        }),
        { seed, numRuns: Math.ceil(numRuns / 4) },
      );
    }
    // A pair is one character, not a lone half.
    assert.equal(findJsonProblem({ "😀": "\ud83d\ude00" }), undefined);
    assert.equal(isStorableText("\\u0000 is text, not NUL"), true);
    assert.deepEqual(findJsonProblem({ a: [0, { "b\u0000": 1 }] }), {
      kind: "nul",
      path: 'a.1."b\\u0000"',
      message: "key must not contain NUL (\\u0000) characters",
    });
    assert.deepEqual(findJsonProblem(["\ud800"]), {
      kind: "lone_surrogate",
      path: "0",
      message: "must not contain lone UTF-16 surrogates",
    });
    assert.equal(findJsonProblem("a\u0000")?.path, "");
  });

  it("refuses the key __proto__ (assignment would set a prototype and drop the value), not constructor or prototype", () => {
    assert.deepEqual(findJsonProblem(JSON.parse('{"a":{"__proto__":{"x":1}}}')), {
      kind: "proto_key",
      path: "a.__proto__",
      message: 'key "__proto__" is not allowed',
    });
    assert.equal(findJsonProblem(JSON.parse('{"constructor":{"prototype":{"x":1}}}')), undefined);
  });

  it("reports the first problem in document order", () => {
    assert.equal(findJsonProblem({ a: "ok", b: ["\u0000"], c: "\ud800" })?.path, "b.0");
    assert.equal(findJsonProblem([nested(MAX_JSON_DEPTH), "\u0000"])?.kind, "depth");
    assert.equal(findJsonProblem(["\u0000", nested(MAX_JSON_DEPTH)])?.kind, "nul");
  });

  it("allows exactly MAX_JSON_DEPTH levels; text and parsed value agree on where the limit is crossed", () => {
    assert.equal(MAX_JSON_DEPTH, 64);
    const shapes = fc.array(fc.oneof(fc.constant("array"), fc.constant("object"), goodString), {
      minLength: MAX_JSON_DEPTH - 2,
      maxLength: MAX_JSON_DEPTH + 3,
    });
    fc.assert(
      fc.property(shapes, fc.boolean(), (levels, asBytes) => {
        // Each level is an array (the value at index 1), or an object under a (possibly odd) key.
        let value: unknown = "leaf";
        for (const level of [...levels].reverse()) {
          value = level === "array" ? [0, value] : { [level === "object" ? "o" : `${level}.key`]: value };
        }
        const text = JSON.stringify(value);
        const fromValue = findJsonProblem(value);
        const fromText = findJsonTextDepthProblem(asBytes ? new TextEncoder().encode(text) : text);
        if (levels.length <= MAX_JSON_DEPTH) {
          assert.equal(fromValue, undefined);
          assert.equal(fromText, undefined);
        } else {
          assert.equal(fromValue?.kind, "depth");
          assert.deepEqual(fromText, fromValue);
        }
      }),
      { seed, numRuns },
    );
  });

  it("ignores brackets inside strings and escaped quotes, and leaves malformed text to the parser", () => {
    const deepInString = JSON.stringify({ s: "[".repeat(1000) + '\\"{{{' });
    assert.equal(findJsonTextDepthProblem(deepInString), undefined);
    assert.equal(findJsonTextDepthProblem('{"a": [1, 2'), undefined);
    assert.equal(findJsonTextDepthProblem("]]]]}}}}"), undefined);
    assert.equal(
      findJsonTextDepthProblem('{"k\\"ey": ' + "[".repeat(MAX_JSON_DEPTH))?.path,
      `"k\\"ey".${Array(MAX_JSON_DEPTH - 1)
        .fill(0)
        .join(".")}`,
    );
  });

  it("refuses a 100,000-level body from its text, reading only its first brackets", () => {
    const text = "[".repeat(100_000) + "]".repeat(100_000);
    const problem = findJsonTextDepthProblem(new TextEncoder().encode(text));
    assert.equal(problem?.kind, "depth");
    assert.equal(problem.message, `must not nest arrays and objects more than ${MAX_JSON_DEPTH} levels deep`);
    // The parsed value gives the same answer without recursing (a recursive walk would overflow the stack here).
    assert.deepEqual(findJsonProblem(JSON.parse(text)), problem);
    assert.equal(findJsonProblem(nested(100_000, (inner) => ({ a: inner })))?.path, Array(MAX_JSON_DEPTH).fill("a").join("."));
  });

  it("keeps paths short and well formed, whatever the keys", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 5000 }), (key) => {
        const problem = findJsonProblem({ [key]: { [key]: "\u0000" } });
        assert.ok(problem);
        assert.ok(problem.path.isWellFormed(), problem.path);
        // Two segments of at most 33 characters, each escaped to at most 6 (\u0000), plus quotes and the dot.
        assert.ok(problem.path.length <= 2 * (33 * 6 + 2) + 1, `${problem.path.length} characters`);
      }),
      { seed, numRuns },
    );
  });

  it("does not walk binary attachments key by key", () => {
    assert.equal(findJsonProblem({ file: Buffer.alloc(1_000_000) }), undefined);
  });

  it("toStorableText makes any UTF-16 text storable and short enough, and leaves storable short text alone", () => {
    const anyUtf16 = fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 80 }).map((units) => String.fromCharCode(...units));
    fc.assert(
      fc.property(anyUtf16, fc.integer({ min: 1, max: 60 }), (text, max) => {
        const out = toStorableText(text, max);
        assert.ok(isStorableText(out), JSON.stringify(out));
        assert.ok(out.length <= max, `${out.length} > ${max}`);
        if (isStorableText(text) && text.length <= max) assert.equal(out, text);
        // Only replaced, or cut at the end: what is kept is the cleaned text's beginning.
        const cleaned = toStorableText(text, Infinity);
        assert.equal(cleaned.length, text.length);
        if (cleaned.length <= max) assert.equal(out, cleaned);
        else assert.ok(out.endsWith("…") && cleaned.startsWith(out.slice(0, -1)), JSON.stringify({ text, out }));
      }),
      { seed, numRuns },
    );
    assert.equal(toStorableText("a\u0000b\ud800c\udc00", 100), "a\ufffdb\ufffdc\ufffd");
    assert.equal(toStorableText("abcdef", 4), "abc…");
    // A cut never leaves half of a surrogate pair behind.
    assert.equal(toStorableText("ab\ud83d\ude00cd", 4), "ab…");
    assert.equal(toStorableText("\ud83d\ude00", 2), "\ud83d\ude00");
  });
});
