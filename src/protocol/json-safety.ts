/**
 * The input rules every JSON value a client sends must meet (REST bodies, Socket.IO payloads), whatever it means:
 *
 * - at most MAX_JSON_DEPTH levels of nested arrays and objects (the value itself is level 1): the serializers on
 *   the way to storage and to clients (zod, JSON.stringify, PostgreSQL's jsonb, the Redis adapter's msgpack)
 *   recurse, and fail on the deepest values a 1 MiB body can hold;
 * - no NUL character (U+0000) in any string or key: PostgreSQL's text and jsonb cannot hold it;
 * - no lone UTF-16 surrogate (such as "\ud800", which JSON.parse accepts) in any string or key: jsonb refuses its
 *   escape, and text columns would silently store U+FFFD instead;
 * - no key `__proto__`: JSON.parse makes it an ordinary property, but any code that copies the object by
 *   assignment (zod's z.json() does) sets the copy's prototype instead, so the value was silently dropped.
 *
 * Pure (no I/O, no imports): the depth is checked on the raw text before it is parsed, so a body of 100,000
 * levels is refused after reading MAX_JSON_DEPTH + 1 brackets, and on parsed values (Socket.IO payloads, which
 * its parser hands over already parsed) with a walk that does not recurse.
 */

export const MAX_JSON_DEPTH = 64;

// String.prototype.isWellFormed is ES2024 and in every Node version the project supports (>= 20); the project's
// `lib` (ES2023) does not declare it yet.
declare global {
  interface String {
    isWellFormed(): boolean;
  }
}

export type JsonProblemKind = "depth" | "nul" | "lone_surrogate" | "proto_key";

/** The first value breaking a rule, in document order. */
export interface JsonProblem {
  kind: JsonProblemKind;
  /** Where, as `a.0.b` (keys that are not plain words are quoted, and shortened); "" for the value itself. */
  path: string;
  /** What is wrong there, e.g. "must not contain NUL characters" or "key must not contain …". */
  message: string;
}

const TEXT_MESSAGES = {
  nul: "must not contain NUL (\\u0000) characters",
  lone_surrogate: "must not contain lone UTF-16 surrogates",
} as const;

const PROTO_KEY_MESSAGE = 'key "__proto__" is not allowed';

/** Why text cannot be stored (NUL, lone surrogate), or undefined when it can. */
export function textProblem(text: string): "nul" | "lone_surrogate" | undefined {
  if (text.includes("\u0000")) return "nul";
  if (!text.isWellFormed()) return "lone_surrogate";
  return undefined;
}

export function isStorableText(text: string): boolean {
  return textProblem(text) === undefined;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * `text` made storable and at most `max` UTF-16 units long: NUL and lone surrogates become U+FFFD, and a cut
 * ends in "…" without splitting a surrogate pair. For text a program produced (an exception's message) that must
 * reach the server whatever it holds; text a person sent is refused instead (findJsonProblem).
 */
export function toStorableText(text: string, max: number): string {
  const clean = text.replaceAll("\u0000", "\uFFFD").replace(LONE_SURROGATE, "\uFFFD");
  if (clean.length <= max) return clean;
  let cut = clean.slice(0, Math.max(0, max - 1));
  if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1);
  return `${cut}…`;
}

function depthMessage(maxDepth: number): string {
  return `must not nest arrays and objects more than ${maxDepth} levels deep`;
}

/** A key as a path segment: plain words as they are, anything else JSON-quoted and cut, so a path is always short well-formed text. */
const PLAIN_KEY = /^[A-Za-z0-9_$-]{1,64}$/;
const MAX_QUOTED_KEY = 32;
function segment(key: string | number): string {
  if (typeof key === "number" || PLAIN_KEY.test(key)) return String(key);
  // Cutting may split a surrogate pair; JSON.stringify escapes the half, so the result stays well formed.
  return JSON.stringify(key.length > MAX_QUOTED_KEY ? `${key.slice(0, MAX_QUOTED_KEY)}…` : key);
}

/** A path as a linked list from the leaf up: built only when a problem is reported. */
interface PathNode {
  parent: PathNode | undefined;
  key: string | number;
}
function render(node: PathNode | undefined): string {
  const parts: string[] = [];
  for (let n = node; n; n = n.parent) parts.push(segment(n.key));
  return parts.reverse().join(".");
}

function isBinary(value: object): boolean {
  // Socket.IO hands binary attachments over as Buffers: bytes, not text, and not to be walked key by key.
  return ArrayBuffer.isView(value) || value instanceof ArrayBuffer;
}

/**
 * The first problem in a parsed value, in document order, or undefined. Iterative, and stops at the first
 * container deeper than `maxDepth`, so its cost is bounded by the size of the value, never by its depth.
 */
export function findJsonProblem(value: unknown, maxDepth = MAX_JSON_DEPTH): JsonProblem | undefined {
  const stack: Array<{ value: unknown; depth: number; at: PathNode | undefined }> = [{ value, depth: 1, at: undefined }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    const current = item.value;
    if (typeof current === "string") {
      const kind = textProblem(current);
      if (kind) return { kind, path: render(item.at), message: TEXT_MESSAGES[kind] };
      continue;
    }
    if (typeof current !== "object" || current === null || isBinary(current)) continue;
    if (item.depth > maxDepth) return { kind: "depth", path: render(item.at), message: depthMessage(maxDepth) };
    // Children are pushed last-first so that they are visited in document order.
    if (Array.isArray(current)) {
      for (let i = current.length - 1; i >= 0; i--)
        stack.push({ value: current[i], depth: item.depth + 1, at: { parent: item.at, key: i } });
      continue;
    }
    const keys = Object.keys(current);
    for (const key of keys) {
      const kind = textProblem(key);
      if (kind) return { kind, path: render({ parent: item.at, key }), message: `key ${TEXT_MESSAGES[kind]}` };
      if (key === "__proto__") return { kind: "proto_key", path: render({ parent: item.at, key }), message: PROTO_KEY_MESSAGE };
    }
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!;
      stack.push({ value: (current as Record<string, unknown>)[key], depth: item.depth + 1, at: { parent: item.at, key } });
    }
  }
  return undefined;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;

const utf8 = new TextDecoder();

/** One open array or object while scanning text: where its current child is. */
interface Frame {
  array: boolean;
  index: number;
  /** The current key's raw text (between its quotes), as offsets into the text. */
  keyStart: number;
  keyEnd: number;
  expectKey: boolean;
}

/**
 * Refuses JSON text nested deeper than `maxDepth` before anything parses it: counts brackets outside strings,
 * and stops at the first one too deep. `text` is UTF-8 bytes (brackets, quotes and backslashes are single bytes
 * there and never part of a multi-byte character) or a decoded string. It does not validate the rest of the
 * syntax: malformed text is left to the parser. The path it reports is the one `findJsonProblem` reports for the
 * parsed value.
 */
export function findJsonTextDepthProblem(text: Uint8Array | string, maxDepth = MAX_JSON_DEPTH): JsonProblem | undefined {
  const bytes = typeof text === "string" ? undefined : text;
  const codeAt = bytes ? (i: number): number => bytes[i]! : (i: number): number => (text as string).charCodeAt(i);
  const rawKey = bytes
    ? (start: number, end: number): string => utf8.decode(bytes.subarray(start, end))
    : (start: number, end: number): string => (text as string).slice(start, end);
  const frames: Frame[] = [];
  const length = text.length;
  for (let i = 0; i < length; i++) {
    const code = codeAt(i);
    if (code === QUOTE) {
      const start = i + 1;
      for (i = start; i < length; i++) {
        const c = codeAt(i);
        if (c === BACKSLASH) i++;
        else if (c === QUOTE) break;
      }
      const top = frames[frames.length - 1];
      if (top && !top.array && top.expectKey) {
        top.keyStart = start;
        top.keyEnd = Math.min(i, length);
        top.expectKey = false;
      }
    } else if (code === OPEN_OBJECT || code === OPEN_ARRAY) {
      if (frames.length >= maxDepth) return { kind: "depth", path: framePath(frames, rawKey), message: depthMessage(maxDepth) };
      frames.push({ array: code === OPEN_ARRAY, index: 0, keyStart: 0, keyEnd: 0, expectKey: true });
    } else if (code === CLOSE_OBJECT || code === CLOSE_ARRAY) {
      frames.pop();
    } else if (code === COMMA) {
      const top = frames[frames.length - 1];
      if (top?.array) top.index++;
      else if (top) top.expectKey = true;
    }
  }
  return undefined;
}

function framePath(frames: Frame[], rawKey: (start: number, end: number) => string): string {
  let node: PathNode | undefined;
  for (const frame of frames) node = { parent: node, key: frame.array ? frame.index : decodeKey(rawKey(frame.keyStart, frame.keyEnd)) };
  return render(node);
}

/** A key's text as the parser would decode it (escapes included); its raw text if it does not decode. */
function decodeKey(raw: string): string {
  if (!raw.includes("\\")) return raw;
  try {
    return JSON.parse(`"${raw}"`) as string;
  } catch {
    return raw;
  }
}
