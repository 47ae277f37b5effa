import assert from "node:assert/strict";
import type { Socket } from "socket.io-client";
import { connect, EventRecorder, subscribe } from "./support/clients.js";
import { countingRelay } from "./support/counting-relay.js";
import { freshTenant } from "./support/env.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { sharedServer } from "./support/shared.js";
import { submitTask, waitForTask } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";

/** The engine's WebSocket (the `ws` package in Node): its negotiated extensions. */
function negotiatedExtensions(socket: Socket): string {
  const transport = socket.io.engine.transport as unknown as { ws?: { extensions?: string } };
  return transport.ws?.extensions ?? "";
}

describe("wire: permessage-deflate (WS_COMPRESSION)", function () {
  let compressing: ServerProcess | undefined;

  after(async () => {
    await compressing?.stop();
  });

  it("a deflate WebSocket client receives a task's events, compressed, and reads far fewer bytes than without", async () => {
    compressing = await startServer({ WS_COMPRESSION: "true" });
    const plain = await sharedServer();
    const toCompressing = await countingRelay(compressing.port);
    const toPlain = await countingRelay(plain.port);
    try {
      const tenant = freshTenant("wire");
      const token = mintToken({ tenant });
      const deflated = await connect(toCompressing.url, "tasks", { token });
      const uncompressed = await connect(toPlain.url, "tasks", { token });
      assert.equal(negotiatedExtensions(deflated), "permessage-deflate", "the node with WS_COMPRESSION=true negotiates deflate");
      assert.equal(negotiatedExtensions(uncompressed), "", "a node without it does not (the default)");
      const recorders = [new EventRecorder(deflated), new EventRecorder(uncompressed)];
      assert.equal((await subscribe(deflated, "tasks")).ok, true);
      assert.equal((await subscribe(uncompressed, "tasks")).ok, true);
      const before = [toCompressing.received(), toPlain.received()];

      // A typical dashboard's diet: task views with a repetitive payload, over the message threshold.
      const task = await submitTask(plain.url, token, {
        type: "echo",
        payload: { rows: Array.from({ length: 200 }, (_, i) => ({ i, status: "ok" })) },
      });
      await waitForTask(plain.url, token, task.id, ["completed"]);
      const [viaDeflate, viaPlain] = await Promise.all(
        recorders.map((recorder) => recorder.until((events) => events.some((e) => e.type === "task.completed"), 15_000, "task.completed")),
      );
      assert.deepEqual(
        viaDeflate!.map((e) => [e.type, e.cursor, e.data]),
        viaPlain!.map((e) => [e.type, e.cursor, e.data]),
        "the same events, whole",
      );
      const bytes = [toCompressing.received() - before[0]!, toPlain.received() - before[1]!];
      console.log(`      bytes read for one echo task's events: ${bytes[0]} with deflate, ${bytes[1]} without`);
      assert.ok(bytes[0]! * 3 <= bytes[1]!, `deflate read ${bytes[0]} bytes, without ${bytes[1]}: expected at most a third`);
      deflated.close();
      uncompressed.close();
    } finally {
      await Promise.all([toCompressing.close(), toPlain.close()]);
    }
  });

  it("refuses a WS_COMPRESSION that is not a boolean at start, naming the variable", async () => {
    await assert.rejects(startServer({ WS_COMPRESSION: "maybe" }), /WS_COMPRESSION: must be true or false/);
  });
});
