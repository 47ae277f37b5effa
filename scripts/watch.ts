/**
 * The terminal watcher: every event of one room, one line each, in order and once (SwitchyardClient), across
 * reconnects, with what was missed meanwhile caught up.
 *   npm run watch -- <namespace> <room> [--after <cursor>]
 * Events go to stdout; connection changes and problems to stderr, so `> events.log` keeps only events.
 * Exit codes: 0 on Ctrl-C, 1 when no server answers, the token or the room is refused, or the session ends;
 * 2 on a usage error.
 */
import { parseArgs } from "node:util";
import { SwitchyardClient, type Envelope } from "../src/client/index.js";
import { decodeCursor } from "../src/protocol/cursor.js";
import { isNamespaceName, NAMESPACES } from "../src/protocol/namespaces.js";
import { formatEvent, palette } from "./watch-lines.js";

const DEFAULT_URL = "http://127.0.0.1:3000";
/** How long one connection attempt may take before it counts as failed (a host that never answers). */
const CONNECT_TIMEOUT_MS = 10_000;

const usage = `usage: npm run watch -- <namespace> <room> [--after <cursor>]
  namespace     ${NAMESPACES.join(" | ")}
  room          e.g. tasks, task:<id>, pools, pool:<id>, workflows, workflow:<id>
  --after <c>   first replay the room's events after cursor <c> ("0": from its first event), then go on live
environment:
  SWITCHYARD_URL  the server (default ${DEFAULT_URL}), or a comma-separated list of nodes to move through
  TOKEN           a JWT allowed to read the namespace, e.g. TOKEN=$(npm run -s token -- --tenant acme)
output: one line per event (local time, type, room, cursor, summary) on stdout; colours on a terminal
unless NO_COLOR is set; connection changes on stderr. npm run -s watch keeps npm's own "> switchyard watch"
lines off stdout (e.g. for > events.log)`;

/** socket.io-client's connect_error: `data` is the server's refusal (a token code), `description` a transport's cause. */
interface ConnectError extends Error {
  data?: { code?: string; message?: string };
  description?: unknown;
}

const stderrColours = palette(process.stderr.isTTY === true, process.env);

function note(message: string): void {
  process.stderr.write(`${stderrColours.dim("watch:")} ${message}\n`);
}

function usageError(message: string): never {
  process.stderr.write(`${message}\n${usage}\n`);
  process.exit(2);
}

function readArgs() {
  try {
    return parseArgs({ allowPositionals: true, options: { after: { type: "string" }, help: { type: "boolean", short: "h" } } });
  } catch (error) {
    usageError((error as Error).message); // an unknown option or a missing value
  }
}
const { values, positionals } = readArgs();
if (values.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
const [namespace, room, ...extra] = positionals;
if (namespace === undefined || room === undefined || extra.length > 0) usageError("expected <namespace> <room>");
if (!isNamespaceName(namespace)) usageError(`unknown namespace "${namespace}": one of ${NAMESPACES.join(", ")}`);
const token = process.env.TOKEN;
if (!token) usageError("TOKEN is not set");
const urls = (process.env.SWITCHYARD_URL ?? DEFAULT_URL)
  .split(",")
  .map((url) => url.trim().replace(/\/+$/, ""))
  .filter(Boolean);
for (const url of urls) if (!/^https?:\/\/[^/]+/.test(url)) usageError(`SWITCHYARD_URL: "${url}" is not an http(s) URL`);
if (urls.length === 0) usageError("SWITCHYARD_URL is empty");
const after = values.after;
if (after !== undefined && after !== "0" && !decodeCursor(after))
  usageError(`--after: "${after}" is not a cursor (like 5c3a67c0f4-000000000007) nor 0`);

const colours = palette(process.stdout.isTTY === true, process.env);
const client = new SwitchyardClient({ urls, namespace, token, socketOptions: { timeout: CONNECT_TIMEOUT_MS } });

function exit(code: number, message?: string): never {
  if (message) note(message);
  client.close();
  process.exit(code);
}

/** Why a connection attempt failed, as precisely as the transport says (e.g. "connect ECONNREFUSED 127.0.0.1:3000"). */
function cause(error: ConnectError): string {
  const description = error.description;
  const detail = description instanceof Error ? description.message : (description as { message?: unknown } | undefined)?.message;
  return typeof detail === "string" && detail.length > 0 ? `${error.message}: ${detail}` : error.message;
}

let connectedOnce = false;
let failedAttempts = 0;
let expired = false;
/** The room's first subscribe was acknowledged: every later acknowledgement is a resubscribe after a reconnect. */
let subscribed = false;

client.socket.on("connect", () => {
  connectedOnce = true;
  failedAttempts = 0;
  note(`connected to ${client.url}/${namespace}`);
});
client.socket.on("connect_error", (error: ConnectError) => {
  const code = error.data?.code;
  // A refusal by the server is final: retrying with the same token gets the same answer.
  if (code)
    exit(1, `${client.url} refused the token: ${code} (${error.data?.message ?? error.message}); mint a new one with npm run token`);
  // Before the first connection, an unreachable server is most likely a wrong URL or a server not started:
  // say so once every node was tried instead of retrying in silence.
  if (!connectedOnce && ++failedAttempts >= urls.length) {
    exit(1, `cannot connect to ${urls.join(", ")} (${cause(error)}); is the server running? (SWITCHYARD_URL)`);
  }
});
client.socket.on("session.expired", () => {
  expired = true;
});
client.socket.on("server.shutdown", (info) => note(`node ${info.node} is shutting down`));
client.socket.on("disconnect", (reason) => {
  if (expired) exit(1, `the token expired and ${client.url} ended the session; mint a new one with npm run token`);
  if (reason === "io client disconnect") return;
  // The server closed this session on purpose; a plain token string cannot come back with anything better.
  if (reason === "io server disconnect") exit(1, `${client.url} ended the session`);
  note(`disconnected (${reason}); reconnecting…`);
});
client.onSubscribed((_room, { replayed, cursor }) => {
  if (subscribed || after !== undefined) note(`caught up ${replayed} event${replayed === 1 ? "" : "s"} (at ${cursor})`);
});
client.onReset((name, reason) => note(`${name}: its history could not be continued (${reason}); the events in between are not shown`));
// The client reports failed connection attempts here too; while disconnected the handlers above speak for them.
// Until the first subscribe is answered, its refusal is reported (and exited on) where it is awaited below.
client.onError((error) => {
  if (client.socket.connected && subscribed) note(error.message);
});

process.stdout.on("error", () => exit(0)); // the reader went away (e.g. `| head`)
process.once("SIGINT", () => exit(0));
process.once("SIGTERM", () => exit(0));

const print = (event: Envelope): void => {
  process.stdout.write(`${formatEvent(event, colours)}\n`);
};
try {
  const { cursor } = await client.subscribe(room, print, after === undefined ? {} : { after });
  subscribed = true;
  note(`watching ${namespace} ${room} from ${cursor}; Ctrl-C to stop`);
} catch (error) {
  // The server's refusal, e.g. "subscribe task:x: NOT_FOUND task not found", or FORBIDDEN without the permission.
  exit(1, `${client.url}: ${(error as Error).message}`);
}
