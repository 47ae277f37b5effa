import fc from "fast-check";

/**
 * fast-check generators of hostile client input for test/fuzz.test.ts: REST requests to every POST/PATCH route and
 * raw Engine.IO / Socket.IO frames. Large inputs are generated as small markers (`deep`, `huge`) expanded only when
 * sent, so that a counterexample prints in a few lines and shrinks quickly.
 */

/** The server's MAX_PAYLOAD_BYTES in the fuzz test (its default): bodies are generated around it. */
export const FUZZ_MAX_PAYLOAD_BYTES = 1_048_576;

/** `sometimes(arb, 1, 10)`: a value from `arb` once in 10 draws, otherwise null (fc.option's `freq` counts the nulls). */
export const sometimes = <T>(arb: fc.Arbitrary<T>, times: number, outOf: number): fc.Arbitrary<T | null> =>
  fc.oneof({ weight: outOf - times, arbitrary: fc.constant(null) }, { weight: times, arbitrary: arb });

// ---------------------------------------------------------------------------------------------------------------
// JSON values

/** Markers inside generated values, replaced in the serialized text (the \u0001 keeps them apart from real text). */
const DEEP = /"\\u0001deep:(\d+):(array|object)\\u0001"/g;
const HUGE = /"\\u0001huge:(\d+)\\u0001"/g;
export const deepMarker = (levels: number, shape: "array" | "object"): string => `\u0001deep:${levels}:${shape}\u0001`;
const hugeMarker = (chars: number): string => `\u0001huge:${chars}\u0001`;

/** Serializes a generated value, expanding its markers: nesting `levels` deep, or a string of `chars` characters. */
export function toJsonText(value: unknown): string {
  const text = JSON.stringify(value) ?? "null";
  return text
    .replace(DEEP, (_m, levels: string, shape: string) => {
      const n = Number(levels);
      return shape === "array" ? `${"[".repeat(n)}0${"]".repeat(n)}` : `${'{"a":'.repeat(n)}0${"}".repeat(n)}`;
    })
    .replace(HUGE, (_m, chars: string) => `"${"x".repeat(Number(chars))}"`);
}

/** Code units of every kind, lone surrogates and NUL included (fast-check's string units only give whole code points). */
const codeUnits = fc
  .array(fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0xd800, max: 0xdfff }), fc.constant(0)), { maxLength: 8 })
  .map((units) => String.fromCharCode(...units));
const nastyConstants = fc.constantFrom(
  "",
  "\u0000",
  "a\u0000b",
  "\ud800",
  "\udfff",
  "x\udc00y",
  "\ud83d\ude00",
  "😀",
  "\u2028\u2029",
  "\\u0000",
  "%00",
  "tasks",
  "pools",
  "pool:default",
  "task:",
  "../..",
  "' OR 1=1 --",
  "<script>",
  "default",
  "echo",
  "fuzz.event",
);
export const nastyString = fc.oneof(
  { weight: 2, arbitrary: nastyConstants },
  { weight: 1, arbitrary: codeUnits },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 12 }) },
  { weight: 3, arbitrary: fc.string({ maxLength: 12 }) },
);
const nastyKey = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "__proto__",
      "constructor",
      "prototype",
      "toString",
      "hasOwnProperty",
      "room",
      "after",
      "type",
      "payload",
      "data",
      "events",
      "name",
    ),
  },
  { weight: 3, arbitrary: nastyString },
);
const nastyNumber = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -0, 1e308, -1e308, 5e-324, 2 ** 53 + 1, Number.MAX_SAFE_INTEGER, -1, 101, 1e21),
);

/** Any JSON value, with hostile strings and keys (own `__proto__` keys included), and now and then a deep or huge marker. */
export const nastyJson: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    { weight: 1, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.boolean() },
    { weight: 2, arbitrary: nastyNumber },
    { weight: 3, arbitrary: nastyString },
    { weight: 2, arbitrary: fc.array(tie("value"), { maxLength: 4 }) },
    // Object.fromEntries defines own properties, so "__proto__" stays a key rather than setting a prototype.
    { weight: 2, arbitrary: fc.array(fc.tuple(nastyKey, tie("value")), { maxLength: 4 }).map((entries) => Object.fromEntries(entries)) },
    {
      weight: 1,
      arbitrary: fc
        .record({
          levels: fc.oneof(fc.integer({ min: 55, max: 70 }), fc.integer({ min: 70, max: 100_000 })),
          shape: fc.constantFrom("array" as const, "object" as const),
        })
        .map(({ levels, shape }) => deepMarker(levels, shape)),
    },
  ),
})).value;

// ---------------------------------------------------------------------------------------------------------------
// REST

export interface RestCase {
  method: "POST" | "PATCH";
  /** The path as sent: it may hold raw percent escapes, valid or not. */
  path: string;
  headers: Record<string, string>;
  /** The body as JSON-ish text (markers expanded when sent), or raw bytes, or none. */
  body: { json: unknown } | { text: string } | { bytes: number[] } | undefined;
}

/** Path ids: real ones, and escapes that decode to NUL, to lone surrogates, or not at all. */
const pathId = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom("default", "00000000-0000-4000-8000-000000000000") },
  fc.constantFrom("%00", "%ud800", "%ED%A0%80", "%E0%A4", "%", "%zz", "a%2Fb", "x".repeat(300), "%20"),
  fc.string({ unit: "grapheme", minLength: 1, maxLength: 10 }).map(encodeURIComponent),
);

/** A field that is mostly valid, so that bodies get past validation into storage, and now and then anything. */
const mostly = <T>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> =>
  fc.oneof({ weight: 5, arbitrary: valid }, { weight: 1, arbitrary: nastyJson });
const name = fc.string({ minLength: 1, maxLength: 20 });

/** A plausible body for each route: mostly valid fields, hostile values where any JSON is allowed (payload, data). */
const poolBody = fc.record({ name: mostly(name), desiredWorkers: mostly(fc.nat(100)) }, { requiredKeys: [] });
const patchBody = fc.record(
  {
    name: mostly(name),
    description: mostly(fc.oneof(fc.string(), fc.constant(null))),
    desiredWorkers: mostly(fc.nat(100)),
    maxConcurrency: mostly(fc.oneof(fc.integer({ min: -2, max: 10_002 }), fc.constant(null))),
  },
  { requiredKeys: [] },
);
const scaleBody = fc.record({ desiredWorkers: mostly(fc.nat(100)) }, { requiredKeys: [] });
const bulkBody = fc.record(
  {
    action: mostly(fc.constantFrom("cancel", "retry")),
    filter: mostly(
      fc.record(
        {
          status: mostly(fc.constantFrom("queued", "failed", "cancelled", "completed")),
          type: mostly(fc.constantFrom("echo", "fail")),
          poolId: mostly(fc.constant("default")),
          createdAfter: mostly(fc.date({ noInvalidDate: true }).map((d) => d.toISOString())),
          createdBefore: mostly(fc.date({ noInvalidDate: true }).map((d) => d.toISOString())),
        },
        { requiredKeys: [] },
      ),
    ),
  },
  { requiredKeys: [] },
);
const taskBody = fc.record(
  {
    // Not `sleep`: a long sleep would hold the embedded worker past the test.
    type: mostly(fc.constantFrom("echo", "fail")),
    payload: nastyJson,
    poolId: mostly(fc.constant("default")),
    priority: mostly(fc.nat(100)),
    maxAttempts: mostly(fc.integer({ min: 1, max: 3 })),
    timeoutMs: mostly(fc.integer({ min: 1, max: 60_000 })),
  },
  { requiredKeys: ["type"] },
);
/** Schedules of long periods (an hour and more): the ones stored never fire while the fuzzing runs. */
const scheduleTiming = fc.oneof(
  fc.record({ every: mostly(fc.integer({ min: 3_600_000, max: 2_000_000_000 })) }),
  fc.record(
    {
      cron: mostly(fc.constantFrom("0 0 1 1 *", "30 4 29 2 *", "* * *", "61 * * * *", "@daily")),
      timezone: mostly(fc.constantFrom("UTC", "Europe/Berlin", "Mars/Olympus", "")),
    },
    { requiredKeys: ["cron"] },
  ),
  fc.record({ every: mostly(fc.integer({ min: 0, max: 999 })), cron: mostly(fc.constant("0 0 1 1 *")) }, { requiredKeys: [] }),
);
const scheduleBody = fc
  .tuple(fc.record({ name: mostly(name), task: mostly(taskBody) }, { requiredKeys: [] }), scheduleTiming)
  .map(([named, timing]) => ({ ...named, ...timing }));
const schedulePatchBody = fc
  .tuple(fc.record({ paused: mostly(fc.boolean()), task: mostly(taskBody) }, { requiredKeys: [] }), scheduleTiming)
  .map(([fields, timing]) => ({ ...fields, ...timing }));
const workflowBody = fc.record(
  {
    name: mostly(name),
    steps: mostly(
      fc.array(
        fc.record(
          {
            key: mostly(fc.constantFrom("a", "b", "c")),
            type: mostly(fc.constant("echo")),
            payload: nastyJson,
            dependsOn: mostly(fc.constantFrom([], ["a"], ["b", "c"])),
          },
          { requiredKeys: ["key", "type"] },
        ),
        { minLength: 1, maxLength: 4 },
      ),
    ),
  },
  { requiredKeys: ["name", "steps"] },
);
const publishEvent = fc.record(
  {
    namespace: mostly(fc.constantFrom("tasks", "pools", "workflows")),
    room: mostly(fc.constantFrom("tasks", "pools", "workflows", "pool:default", "task:nope")),
    type: mostly(fc.constantFrom("fuzz.event", "fuzz.other", "task.fake")),
    data: nastyJson,
  },
  { requiredKeys: ["namespace", "room", "type"] },
);
const publishBody = fc.oneof(publishEvent, fc.record({ events: mostly(fc.array(publishEvent, { minLength: 1, maxLength: 4 })) }));

const withExtraKey = <T>(body: fc.Arbitrary<T>) =>
  fc
    .tuple(body, sometimes(fc.tuple(nastyKey, nastyJson), 1, 4))
    .map(([value, extra]) => (extra && typeof value === "object" && value !== null ? { ...value, ...Object.fromEntries([extra]) } : value));

/** A task body of `total` bytes (its payload a string of the right length): near, at and over the limit. */
export function bodyOfSize(total: number): { json: unknown } {
  const empty = toJsonText({ type: "echo", payload: "" });
  return { json: { type: "echo", payload: hugeMarker(Math.max(0, total - empty.length)) } };
}
const hugeBody = fc
  .oneof(
    fc.integer({ min: -64, max: 64 }).map((delta) => FUZZ_MAX_PAYLOAD_BYTES + delta),
    fc.constant(2 * FUZZ_MAX_PAYLOAD_BYTES),
  )
  .map(bodyOfSize);

/** Text that is JSON only now and then: truncations, stray bytes, NUL, lone-surrogate escapes, wrong literals. */
const brokenText = fc.oneof(
  fc.constantFrom(
    "{",
    '{"a":',
    "[1,]",
    "nul",
    "\u0000",
    '{"a":"\\ud800"}',
    '{"a":"\\u0000"}',
    '{"\\u0000":1}',
    '"\\x"',
    '{"__proto__":{"type":"echo"}}',
    "1e999999",
    "-",
    "true false",
    "",
    " ",
    "\ufeff{}",
  ),
  fc.tuple(nastyJson, fc.nat()).map(([value, cut]) => {
    const text = toJsonText(value);
    return text.slice(0, cut % (text.length + 1));
  }),
  fc.string({ unit: "binary", maxLength: 40 }),
);

const contentType = fc.oneof(
  { weight: 12, arbitrary: fc.constant("application/json") },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "application/json; charset=utf-8",
      "application/json; charset=utf-16le",
      "application/json; charset=utf-32",
      "application/json; charset=latin1",
      "application/json; charset=nope",
      "application/vnd.api+json",
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "application/octet-stream",
      "",
    ),
  },
);
const contentEncoding = sometimes(fc.constantFrom("gzip", "deflate", "br", "identity", "x-bogus"), 1, 20);
/** Header values fetch can send: visible ASCII and spaces. */
const idempotencyKey = sometimes(
  fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 210 }).map((key) => key.replace(/[^\x20-\x7e]/g, "-")),
  1,
  4,
);

const ROUTES: ReadonlyArray<{ method: "POST" | "PATCH"; path: (id: string) => string; body: fc.Arbitrary<unknown> }> = [
  { method: "POST", path: () => "/api/v1/pools", body: poolBody },
  { method: "PATCH", path: (id) => `/api/v1/pools/${id}`, body: patchBody },
  { method: "POST", path: (id) => `/api/v1/pools/${id}/scale`, body: scaleBody },
  { method: "POST", path: (id) => `/api/v1/pools/${id}/pause`, body: nastyJson },
  { method: "POST", path: (id) => `/api/v1/pools/${id}/resume`, body: nastyJson },
  { method: "POST", path: () => "/api/v1/tasks", body: taskBody },
  { method: "POST", path: (id) => `/api/v1/tasks/${id}/cancel`, body: nastyJson },
  { method: "POST", path: (id) => `/api/v1/tasks/${id}/retry`, body: nastyJson },
  { method: "POST", path: () => "/api/v1/tasks/bulk", body: bulkBody },
  { method: "POST", path: () => "/api/v1/workflows", body: workflowBody },
  { method: "POST", path: (id) => `/api/v1/workflows/${id}/cancel`, body: nastyJson },
  { method: "POST", path: () => "/api/v1/events", body: publishBody },
  { method: "POST", path: () => "/api/v1/schedules", body: scheduleBody },
  { method: "PATCH", path: (id) => `/api/v1/schedules/${id}`, body: schedulePatchBody },
  { method: "POST", path: (id) => `/api/v1/${id}`, body: nastyJson },
];

export const restCase: fc.Arbitrary<RestCase> = fc
  .record({
    route: fc.nat(ROUTES.length - 1),
    id: pathId,
    type: contentType,
    encoding: contentEncoding,
    key: idempotencyKey,
    choice: fc.nat(99),
  })
  .chain(({ route, id, type, encoding, key, choice }) => {
    const { method, path, body: shaped } = ROUTES[route]!;
    const body: fc.Arbitrary<RestCase["body"]> =
      choice < 50
        ? withExtraKey(shaped).map((json) => ({ json }))
        : choice < 70
          ? nastyJson.map((json) => ({ json }))
          : choice < 85
            ? brokenText.map((text) => ({ text }))
            : choice < 90
              ? fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 64 }).map((bytes) => ({ bytes }))
              : choice < 95
                ? hugeBody
                : fc.constant(undefined);
    return body.map((b): RestCase => {
      const headers: Record<string, string> = {};
      if (type) headers["content-type"] = type;
      if (encoding) headers["content-encoding"] = encoding;
      if (key) headers["idempotency-key"] = key;
      return { method, path: path(id), headers, body: b };
    });
  });

/** The bytes a case sends as its body. */
export function restBody(body: RestCase["body"]): Uint8Array | string | undefined {
  if (!body) return undefined;
  if ("json" in body) return toJsonText(body.json);
  if ("text" in body) return body.text;
  return Uint8Array.from(body.bytes);
}

// ---------------------------------------------------------------------------------------------------------------
// Engine.IO / Socket.IO frames (Engine.IO v4 message "4" + Socket.IO v5 packet: type, [attachments-], [nsp,], [id], [json])

export type Frame =
  /** A well-formed EVENT on the connection's namespace, with an ack id or without. */
  | { kind: "event"; event: string; args: unknown[]; ack: number | null }
  /** Any text: bad Engine.IO and Socket.IO packet types, bad namespaces, junk. */
  | { kind: "text"; text: string }
  /** A Socket.IO packet of any type on the connection's namespace, with any id and data (none included). */
  | { kind: "packet"; type: string; id: string; data: string }
  /** Random bytes, as a binary frame or (invalid UTF-8) as a text frame. */
  | { kind: "bytes"; bytes: number[]; asText: boolean }
  /** A BINARY_EVENT header announcing `count` attachments (any text), with placeholders, followed by `sent` binary frames. */
  | { kind: "binary-event"; count: string; placeholders: unknown[]; sent: number; ack: number | null }
  /** A namespace CONNECT with any auth, to any namespace name. */
  | { kind: "connect"; nsp: string; auth: unknown }
  /** DISCONNECT from the connection's namespace: later events on it are not answered. */
  | { kind: "disconnect" }
  /** One text frame of `bytes` bytes (a 10 MB one is far over MAX_PAYLOAD_BYTES). */
  | { kind: "huge"; bytes: number };

const clientEvent = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom("subscribe", "unsubscribe", "worker.status", "worker.heartbeat", "task.report") },
  { weight: 1, arbitrary: fc.constantFrom("error", "connect", "disconnect", "disconnecting", "newListener", "__proto__", "") },
  { weight: 1, arbitrary: nastyString },
);
const eventArgs = fc.oneof(
  fc.array(nastyJson, { maxLength: 3 }),
  fc
    .record(
      { room: mostly(fc.constantFrom("tasks", "pools", "workflows", "pool:default")), after: mostly(fc.constant("0-000000000000")) },
      { requiredKeys: ["room"] },
    )
    .map((payload) => [payload]),
  fc
    .record(
      {
        taskId: mostly(fc.uuid()),
        lease: mostly(fc.constant("token#1")),
        kind: mostly(fc.constantFrom("completed", "progress", "failed")),
        result: nastyJson,
        detail: nastyJson,
      },
      { requiredKeys: ["taskId", "lease", "kind"] },
    )
    .map((report) => [report]),
  fc
    .record({ status: mostly(fc.constantFrom("idle", "busy", "error", "draining")), detail: nastyJson }, { requiredKeys: ["status"] })
    .map((status) => [status]),
);
const ackId = sometimes(fc.integer({ min: 1, max: 1_000_000 }), 3, 4);

const junkText = fc.oneof(
  // Engine.IO packet types 0-6 (client-side 0, 5 and 2 are protocol errors here), unknown types, empty frames.
  fc.constantFrom("", "0", "0{}", "1", "2", "2probe", "3", "5", "6", "7", "9", "x", "4", "40", "41", "44", "4x", "4{"),
  // Socket.IO packet types 0-6 and unknown ones, on good and bad namespaces, with junk after them.
  fc
    .tuple(
      fc.constantFrom("0", "1", "2", "3", "4", "5", "6", "7", "9", "-", "a"),
      fc.constantFrom("", "/", "/tasks,", "/pools,", "/nope,", "/tasks", "/\u0000,", "/tasks/../pools,"),
      fc.oneof(fc.constant(""), fc.nat().map(String)),
      brokenText,
    )
    .map(([type, nsp, id, rest]) => `4${type}${nsp}${id}${rest}`),
  fc.string({ unit: "binary", maxLength: 30 }).map((text) => `4${text}`),
  codeUnits,
);

export const frame: fc.Arbitrary<Frame> = fc.oneof(
  { weight: 16, arbitrary: fc.record({ kind: fc.constant("event" as const), event: clientEvent, args: eventArgs, ack: ackId }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("text" as const), text: junkText }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("packet" as const),
      type: fc.constantFrom("0", "1", "2", "3", "4", "5", "6", "7", "9", "x", ""),
      id: fc.oneof(fc.constant(""), fc.nat().map(String), fc.constantFrom("-1", "1.5", "99999999999999999999")),
      data: fc.oneof(fc.constant(""), brokenText, fc.array(nastyJson, { maxLength: 3 }).map(toJsonText), nastyJson.map(toJsonText)),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("bytes" as const),
      bytes: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 32 }),
      asText: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("binary-event" as const),
      count: fc.constantFrom("0", "1", "2", "10", "999999999999", "-1", "1e3", "x", "", "01"),
      placeholders: fc.array(
        fc.oneof(fc.record({ _placeholder: fc.constant(true), num: fc.oneof(fc.integer({ min: -2, max: 12 }), nastyJson) }), nastyJson),
        { maxLength: 3 },
      ),
      sent: fc.integer({ min: 0, max: 3 }),
      ack: ackId,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("connect" as const),
      nsp: fc.constantFrom("/tasks", "/pools", "/workflows", "/", "/nope", "/tasks/x", "tasks"),
      auth: nastyJson,
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "disconnect" as const }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("huge" as const),
      bytes: fc.constantFrom(FUZZ_MAX_PAYLOAD_BYTES - 64, FUZZ_MAX_PAYLOAD_BYTES + 1, 10 * 1024 * 1024),
    }),
  },
);

/** What a frame puts on the wire, on a connection to `nsp` ("/tasks"): text or binary frames, in order. */
export function wireFrames(f: Frame, nsp: string): Array<{ data: string | Buffer; asText?: boolean }> {
  const prefix = `${nsp},`;
  switch (f.kind) {
    case "event":
      return [{ data: `42${prefix}${f.ack ?? ""}${toJsonText([f.event, ...f.args])}` }];
    case "text":
      return [{ data: f.text }];
    case "packet":
      return [{ data: `4${f.type}${prefix}${f.id}${f.data}` }];
    case "bytes":
      return [{ data: Buffer.from(f.bytes), asText: f.asText }];
    case "binary-event":
      return [
        { data: `45${f.count}-${prefix}${f.ack ?? ""}${toJsonText(["subscribe", ...f.placeholders])}` },
        ...Array.from({ length: f.sent }, (_, i) => ({ data: Buffer.from([i, 0xff, 0x00]) })),
      ];
    case "connect":
      return [{ data: `40${f.nsp === "/" ? "" : `${f.nsp},`}${toJsonText(f.auth)}` }];
    case "disconnect":
      return [{ data: `41${prefix}` }];
    case "huge": {
      const head = `42${prefix}["subscribe",{"room":"`;
      const tail = '"}]';
      return [{ data: `${head}${"x".repeat(Math.max(0, f.bytes - head.length - tail.length))}${tail}` }];
    }
  }
}
