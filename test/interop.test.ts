import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { freshTenant } from "./support/env.js";
import { sleep } from "./support/clients.js";
import { sharedServer } from "./support/shared.js";
import { submitTask } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";
import type { ServerProcess } from "./support/server.js";
import { PYTHON, pythonSocketIoAvailable } from "./support/python.js";
import { skipBecause } from "./support/skip.js";

interface Line {
  ack?: { ok: boolean; room?: string; cursor?: string };
  event?: string;
  payload?: { id: string; type: string; room: string; cursor: string; ts: string; data: { task?: { status: string } } };
  connect_error?: unknown;
}

/** Runs the python-socketio client and collects its JSON lines. */
function runPython(args: string[]): { lines: Line[]; done: Promise<void>; acked: Promise<void> } {
  const child = spawn(PYTHON, ["test/support/python-client.py", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const lines: Line[] = [];
  let buffer = "";
  let stderr = "";
  let onAck: () => void = () => undefined;
  const acked = new Promise<void>((resolve) => (onAck = resolve));
  child.stdout.on("data", (chunk: Buffer) => {
    buffer += chunk.toString();
    let newline: number;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = JSON.parse(buffer.slice(0, newline)) as Line;
      buffer = buffer.slice(newline + 1);
      lines.push(line);
      if (line.ack || line.connect_error) onAck();
    }
  });
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<void>((resolve, reject) =>
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`python client exited ${code}: ${stderr}`)))),
  );
  return { lines, done, acked };
}

describe("an independent Socket.IO client (python-socketio)", function () {
  let server: ServerProcess;
  before(async function () {
    if (!pythonSocketIoAvailable()) {
      skipBecause(this, "python-socketio is missing (apt-get install -y python3-socketio python3-websocket)");
    }
    server = await sharedServer();
  });

  it("authenticates, subscribes and receives a task's lifecycle as contract envelopes", async () => {
    const token = mintToken({ tenant: freshTenant() });
    const python = runPython([server.url, "/tasks", token, "tasks", "5"]);
    await python.acked;
    assert.equal(python.lines[0]?.ack?.ok, true, JSON.stringify(python.lines));
    await submitTask(server.url, token, { type: "echo", payload: { from: "python test" } });
    await python.done;
    const events = python.lines.filter((l) => l.event);
    assert.deepEqual(
      events.map((l) => l.event),
      ["task.created", "task.queued", "task.assigned", "task.started", "task.completed"],
    );
    for (const { payload } of events) {
      assert.deepEqual(Object.keys(payload!).sort(), ["cursor", "data", "id", "room", "ts", "type"]);
      assert.equal(payload!.room, "tasks");
    }
  });

  it("gets connect_error for a bad token, and the server keeps serving", async () => {
    const python = runPython([server.url, "/tasks", "not-a-token", "tasks", "1"]);
    await python.done;
    assert.ok(
      python.lines.some((l) => l.connect_error !== undefined),
      JSON.stringify(python.lines),
    );
    await sleep(100);
    const ok = runPython([server.url, "/tasks", mintToken({ tenant: freshTenant() }), "tasks", "0"]);
    await ok.acked;
    assert.equal(ok.lines[0]?.ack?.ok, true);
    await ok.done;
  });
});
