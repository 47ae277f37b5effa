import assert from "node:assert/strict";
import { freePort } from "./support/private-services.js";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { stripVTControlCharacters } from "node:util";
import { decodeCursor } from "../src/protocol/cursor.js";
import type { Envelope } from "../src/protocol/events.js";
import type { PoolView } from "../src/protocol/views.js";
import { formatEvent, palette, summarize } from "../scripts/watch-lines.js";
import { runCli, type CliProcess } from "./support/cli.js";
import { freshTenant } from "./support/env.js";
import { api } from "./support/http.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { sharedServer } from "./support/shared.js";
import { submitTask, waitForTask } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";

/*
 * The terminal watcher (`npm run watch -- <namespace> <room> [--after <cursor>]`, scripts/watch.ts) as a user
 * runs it: a real process against real nodes, read through its stdout (events) and stderr (connection changes).
 */

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function watch(args: string[], env: Record<string, string>): CliProcess {
  // PATH only (no NO_COLOR): the absence of colours below comes from stdout being a pipe.
  return runCli(process.execPath, ["--import", "tsx", "scripts/watch.ts", ...args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? "", ...env },
  });
}

interface Line {
  time: string;
  type: string;
  room: string;
  cursor: string;
  summary: string;
}

const LINE = /^(\d\d:\d\d:\d\d\.\d{3}) (\S+) +(\S+) (\S+) {2}(.*)$/;

function eventLines(stdout: string): Line[] {
  return stdout
    .split("\n")
    .filter(Boolean)
    .map((text) => {
      const match = LINE.exec(text);
      assert.ok(match, `not an event line: ${JSON.stringify(text)}`);
      return { time: match[1]!, type: match[2]!, room: match[3]!, cursor: match[4]!, summary: match[5]! };
    });
}

/** Each line's cursor is the one after the previous line's: every event once, in order, none skipped. */
function assertConsecutive(lines: Line[]): void {
  const seqs = lines.map((line) => decodeCursor(line.cursor)?.seq);
  for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1]! + 1, `cursors ${lines.map((l) => l.cursor).join(" ")}`);
}

async function history(url: string, token: string, room: string): Promise<Envelope[]> {
  const response = await api<{ items: Envelope[] }>(url, "GET", `/api/v1/events?namespace=tasks&room=${room}&limit=100`, { token });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body.items;
}

describe("terminal watcher: npm run watch", function () {
  this.timeout(90_000);

  it("prints each event of a room on one line (time, type, room, cursor, summary), without colours on a pipe", async () => {
    const server = await sharedServer();
    const token = mintToken({ tenant: freshTenant() });
    const tasks = watch(["tasks", "tasks"], { SWITCHYARD_URL: server.url, TOKEN: token });
    const pools = watch(["pools", "pools"], { SWITCHYARD_URL: server.url, TOKEN: token });
    await tasks.waitFor("stderr", /watching tasks tasks from \S+/);
    await tasks.waitFor("stderr", new RegExp(`connected to ${server.url}/tasks`));
    await pools.waitFor("stderr", /watching pools pools from/);

    const task = await submitTask(server.url, token, { type: "echo", payload: { hello: "world" } });
    const pool = (
      await api<{ pool: PoolView }>(server.url, "POST", "/api/v1/pools", { token, body: { name: "images", desiredWorkers: 2 } })
    ).body.pool;
    await tasks.waitFor("stdout", /task\.completed/);
    await pools.waitFor("stdout", /pool\.created/);

    const lines = eventLines(tasks.stdout());
    assert.deepEqual(
      lines.map((line) => line.type),
      ["task.created", "task.queued", "task.assigned", "task.started", "task.completed"],
    );
    assertConsecutive(lines);
    const shortId = `${task.id.slice(0, 8)}…`;
    for (const line of lines) assert.equal(line.room, "tasks");
    assert.match(lines[0]!.summary, new RegExp(`^task ${shortId} echo created attempts=0$`));
    assert.match(lines.at(-1)!.summary, new RegExp(`^task ${shortId} echo completed attempts=1 worker=\\S+ result=\\{"hello":"world"\\}$`));
    const [poolLine] = eventLines(pools.stdout());
    assert.equal(poolLine!.summary, `pool images (${pool.id.slice(0, 8)}…) active desired=2`);
    const output = tasks.stdout() + pools.stdout();
    assert.equal(stripVTControlCharacters(output), output, "no colour codes when stdout is not a terminal");
  });

  it("reconnects to the next node when its node goes away, and catches up the events it missed", async () => {
    let nodeA: ServerProcess | undefined;
    let nodeB: ServerProcess | undefined;
    try {
      [nodeA, nodeB] = await Promise.all([startServer({ NODE_ID: "watch-a" }), startServer({ NODE_ID: "watch-b" })]);
      const token = mintToken({ tenant: freshTenant() });
      const watcher = watch(["tasks", "tasks"], { SWITCHYARD_URL: `${nodeA.url},${nodeB.url}`, TOKEN: token });
      await watcher.waitFor("stderr", /watching tasks tasks/);
      assert.match(watcher.stderr(), new RegExp(`connected to ${nodeA.url}/tasks`));

      const first = await submitTask(nodeB.url, token, { type: "echo", payload: { n: 1 } });
      await watcher.waitFor("stdout", /task\.completed/);

      // Frozen, the watcher cannot reconnect before the events below are stored: they can only reach it by
      // the catch-up (a replay from its last cursor) once it runs again and finds its node gone.
      watcher.process.kill("SIGSTOP");
      let second;
      try {
        await nodeA.stop();
        second = await submitTask(nodeB.url, token, { type: "echo", payload: { n: 2 } });
        await waitForTask(nodeB.url, token, second.id, ["completed"]);
      } finally {
        watcher.process.kill("SIGCONT");
      }
      await watcher.waitFor("stderr", new RegExp(`connected to ${nodeB.url}/tasks`));
      const stderr = await watcher.waitFor("stderr", /caught up (\d+) events/);
      const caughtUp = Number(/caught up (\d+) events/.exec(stderr)![1]);
      assert.ok(caughtUp >= 5, `replayed ${caughtUp}, expected the second task's 5 events`);
      assert.match(stderr, /disconnected \(.+\); reconnecting…/);
      await watcher.waitFor("stdout", /task\.completed[^\n]*\n(?:.*\n)*.*task\.completed/);

      const lines = eventLines(watcher.stdout());
      assertConsecutive(lines);
      const stored = await history(nodeB.url, token, "tasks");
      assert.deepEqual(
        lines.map((line) => line.cursor),
        stored.map((event) => event.cursor),
        "every stored event of the room once, in order",
      );
      assert.deepEqual(
        lines.filter((line) => line.type === "task.completed").map((line) => line.summary.split(" ")[1]),
        [first.id, second.id].map((id) => `${id.slice(0, 8)}…`),
      );
    } finally {
      await Promise.all([nodeA?.stop(), nodeB?.stop()]);
    }
  });

  it("--after <cursor> replays the events after it, then goes on live", async () => {
    const server = await sharedServer();
    const token = mintToken({ tenant: freshTenant() });
    const task = await submitTask(server.url, token, { type: "echo", payload: {} });
    await waitForTask(server.url, token, task.id, ["completed"]);
    const stored = await history(server.url, token, `task:${task.id}`);
    assert.equal(stored.length, 5);

    const watcher = watch(["tasks", `task:${task.id}`, "--after", stored[1]!.cursor], { SWITCHYARD_URL: server.url, TOKEN: token });
    await watcher.waitFor("stderr", /watching tasks task:\S+ from/);
    assert.match(watcher.stderr(), /caught up 3 events/);
    // stdout and stderr are separate pipes, read independently: the replayed lines are written before the note,
    // but may be read after it.
    await watcher.waitFor("stdout", new RegExp(stored.at(-1)!.cursor));
    assert.deepEqual(
      eventLines(watcher.stdout()).map((line) => [line.type, line.cursor]),
      stored.slice(2).map((event) => [event.type, event.cursor]),
    );

    // Live from there on: a backend's own event published into the room, shown as its data.
    const published = await api(server.url, "POST", "/api/v1/events", {
      token,
      body: { namespace: "tasks", room: `task:${task.id}`, type: "audit.noted", data: { by: "ops" } },
    });
    assert.equal(published.status, 202, JSON.stringify(published.body));
    await watcher.waitFor("stdout", /audit\.noted/);
    const lines = eventLines(watcher.stdout());
    assertConsecutive(lines);
    assert.deepEqual(lines.at(-1), { ...lines.at(-1)!, type: "audit.noted", room: `task:${task.id}`, summary: '{"by":"ops"}' });
  });

  it("exits 1 naming the URL and the code when the token is refused", async () => {
    const server = await sharedServer();
    const tenant = freshTenant();
    for (const [token, code] of [
      [mintToken({ tenant, ttl: -60 }), "TOKEN_EXPIRED"],
      [mintToken({ tenant, secret: "another-secret-0123456789abcdef" }), "TOKEN_INVALID"],
    ] as const) {
      const watcher = watch(["tasks", "tasks"], { SWITCHYARD_URL: server.url, TOKEN: token });
      assert.equal(await watcher.exited, 1);
      assert.match(watcher.stderr(), new RegExp(`${server.url} refused the token: ${code}`));
      assert.equal(watcher.stdout(), "");
    }
  });

  it("exits 1 with the server's code, said once, when the room is refused or unknown", async () => {
    const server = await sharedServer();
    const tenant = freshTenant();
    for (const [args, permissions, refusal] of [
      [["tasks", "tasks"], ["pools:read"], /subscribe tasks: FORBIDDEN/g],
      [["tasks", "task:no-such-task"], ["tasks:read"], /subscribe task:no-such-task: NOT_FOUND/g],
    ] as const) {
      const watcher = watch([...args], { SWITCHYARD_URL: server.url, TOKEN: mintToken({ tenant, permissions: [...permissions] }) });
      assert.equal(await watcher.exited, 1);
      assert.equal(watcher.stderr().match(refusal)?.length, 1, watcher.stderr());
      assert.equal(watcher.stdout(), "");
    }
  });

  it("exits 1 naming the URL when nothing listens there", async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const watcher = watch(["tasks", "tasks"], { SWITCHYARD_URL: url, TOKEN: mintToken({ tenant: freshTenant() }) });
    assert.equal(await watcher.exited, 1);
    assert.match(watcher.stderr(), new RegExp(`cannot connect to ${url} \\(.*ECONNREFUSED.*\\); is the server running\\?`));
  });

  it("usage: --help through npm run watch, and exit 2 on a bad namespace, cursor or missing TOKEN", async () => {
    const help = runCli("npm", ["run", "-s", "watch", "--", "--help"], { cwd: repoRoot, env: { PATH: process.env.PATH ?? "" } });
    assert.equal(await help.exited, 0);
    assert.match(help.stdout(), /^usage: npm run watch -- <namespace> <room> \[--after <cursor>\]/);
    const token = mintToken({ tenant: freshTenant() });
    for (const [args, env, message] of [
      [["queues", "tasks"], { TOKEN: token }, /unknown namespace "queues"/],
      [["tasks"], { TOKEN: token }, /expected <namespace> <room>/],
      [["tasks", "tasks", "--after", "yesterday"], { TOKEN: token }, /--after: "yesterday" is not a cursor/],
      [["tasks", "tasks", "--since", "x"], { TOKEN: token }, /Unknown option '--since'/],
      [["tasks", "tasks"], {}, /TOKEN is not set/],
    ] as const) {
      const watcher = watch([...args], env);
      assert.equal(await watcher.exited, 2, String(args));
      assert.match(watcher.stderr(), message);
      assert.match(watcher.stderr(), /usage: npm run watch/);
    }
  });
});

describe("terminal watcher: lines", () => {
  const envelope = (type: string, data: unknown): Envelope => ({
    id: "e1",
    type,
    room: "r",
    cursor: "abc-000000000001",
    ts: new Date().toISOString(),
    data,
  });

  it("summarizes worker, progress and a backend's own events, and never fails on an unexpected payload", () => {
    const worker = { id: "w1", status: "busy", detail: null, node: "n1", version: null, lastHeartbeatAt: "" };
    assert.equal(summarize(envelope("worker.status_changed", { poolId: "p", worker, previous: "idle" })), "worker w1 busy (was idle)");
    assert.equal(
      summarize(envelope("task.progress", { taskId: "3f2a1b2c-0000", status: "started", progress: 40, detail: "resizing" })),
      "task 3f2a1b2c… 40% resizing",
    );
    assert.equal(summarize(envelope("billing.invoice_paid", { invoice: "in_42" })), '{"invoice":"in_42"}');
    assert.equal(summarize(envelope("task.completed", { unexpected: true })), '{"unexpected":true}');
    const long = summarize(envelope("import.progress", { text: "x".repeat(500) }));
    assert.equal(long.length, 120);
    assert.ok(long.endsWith("…"));
  });

  it("colours on a terminal only, and not with NO_COLOR", () => {
    const event = envelope("task.failed", { unexpected: true });
    const coloured = formatEvent(event, palette(true, {}));
    assert.ok(coloured.includes("\u001b[31mtask.failed"), `the type in red: ${JSON.stringify(coloured)}`);
    for (const plain of [formatEvent(event, palette(true, { NO_COLOR: "1" })), formatEvent(event, palette(false, {}))]) {
      assert.equal(stripVTControlCharacters(plain), plain, "no colour codes");
    }
  });
});
