/**
 * Type tests: `npm run typecheck` (tsc over src/ and test/) checks this file; nothing runs it. Each
 * `@ts-expect-error` line must fail to compile, or tsc reports the directive as unused: so a misspelt event
 * name, a payload of the wrong shape or a wrong namespace is proven to be a compile error.
 */
import type { EventDraft, Outbox } from "../../src/events/publisher.js";
import type { SwitchyardSocket } from "../../src/realtime/types.js";
import type { WorkerSocket } from "../../src/worker/socket-reporter.js";
import { isEvent, type SwitchyardClient } from "../../src/client/index.js";
import type { PoolView, TaskView } from "../../src/protocol/views.js";

declare const outbox: Outbox;
declare const socket: SwitchyardSocket;
declare const worker: WorkerSocket;
declare const client: SwitchyardClient<"tasks">;
declare const pool: PoolView;
declare const task: TaskView;

export function publishing(): void {
  outbox.add({ tenantId: "t", type: "pool.created", rooms: { pools: ["pools"] }, data: { pool } });
  outbox.add({ tenantId: "t", type: "task.assigned", rooms: { tasks: ["tasks"], pools: ["pool:p"] }, data: { task } });

  // @ts-expect-error a misspelt event name does not compile
  outbox.add({ tenantId: "t", type: "pool.craeted", rooms: { pools: ["pools"] }, data: { pool } });
  // @ts-expect-error nor does data of another event's shape
  outbox.add({ tenantId: "t", type: "pool.created", rooms: { pools: ["pools"] }, data: { task } });
  // @ts-expect-error task.assigned is delivered in /tasks and /pools: rooms of both are required
  outbox.add({ tenantId: "t", type: "task.assigned", rooms: { tasks: ["tasks"] }, data: { task } });
  // @ts-expect-error pool.created is not delivered in /tasks
  outbox.add({ tenantId: "t", type: "pool.created", rooms: { pools: ["pools"], tasks: ["tasks"] }, data: { pool } });

  const draft: EventDraft<"task.progress"> = {
    tenantId: "t",
    type: "task.progress",
    rooms: { tasks: ["tasks"] },
    data: { taskId: "x", status: "started", progress: 50, detail: null },
  };
  void draft;
}

export function sockets(): void {
  socket.emit("session.expired", { reason: "token_expired" });
  socket.emit("session.revoked", { reason: "token_revoked" });
  // @ts-expect-error a revoked session is not an expired one
  socket.emit("session.revoked", { reason: "token_expired" });
  // @ts-expect-error a misspelt server → client event
  socket.emit("session.expird", { reason: "token_expired" });
  // @ts-expect-error a payload of the wrong shape
  socket.emit("server.shutdown", { node: "n" });

  void worker.timeout(1000).emitWithAck("worker.status", { status: "busy" });
  // @ts-expect-error a worker status outside the protocol
  void worker.timeout(1000).emitWithAck("worker.status", { status: "sleeping" });
  // @ts-expect-error every task report carries its attempt's lease
  void worker.timeout(1000).emitWithAck("task.report", { taskId: "x", kind: "cancelled" });
}

export function clientHandlers(): void {
  void client.subscribe("tasks", (event) => {
    if (isEvent(event, "task.completed")) {
      const result: unknown = event.data.task.result;
      void result;
      // @ts-expect-error task.completed carries a task, not a pool
      void event.data.pool;
    }
    // @ts-expect-error a misspelt event name
    if (isEvent(event, "task.complete")) return;
  });
}

export function clientListeners(): void {
  client.on("task.completed", (event) => {
    const result: unknown = event.data.task.result;
    void result;
    // @ts-expect-error task.completed carries a task, not a pool
    void event.data.pool;
  });
  client.on("task.progress", (event) => void (event.data.progress satisfies number));
  // A backend's own event type: any name outside the built-in prefixes, its data unknown.
  client.on("billing.invoice_paid", (event) => {
    // @ts-expect-error the data of a backend's event is unknown until checked
    void event.data.invoice;
  });
  // @ts-expect-error a misspelt event name does not compile
  client.on("task.complete", () => undefined);
  // @ts-expect-error pool.created is not delivered in /tasks
  client.on("pool.created", () => undefined);
  void client.subscribe("tasks", { after: "abc-000000000001" }).then(({ cursor, replayed }) => void [cursor, replayed]);
}
