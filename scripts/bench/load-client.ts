// A load-generator process, forked by run.ts (`child_process.fork` with `--import tsx`). It holds up to a few
// thousand raw Socket.IO connections (one process may hold at most 20,000 files), counts or timestamps the
// events they receive, and can also act as the publisher (REST calls) or drive the tasks/replay scenarios
// (including the bare-BullMQ producer of the tasks scenario).
// It is told what to do over IPC: { id, cmd, ...args } -> { id, ok, result | error }.

import { randomUUID } from "node:crypto";
import { Queue, QueueEvents } from "bullmq";
import { Redis } from "ioredis";
import { HttpClient, now, sleep, summarize } from "./lib.js";
import { closedLoop, createPublisher, openLoop, SeqSource, type PublisherSpec } from "./publishers.js";
import { eventName, openMany, parseEvent, RawSocket } from "./raw-socket.js";

type Mode = "none" | "count" | "latency";

interface Envelope {
  room?: string;
  cursor?: string;
  data?: { poolId?: string; to?: number; task?: { result?: { k?: number; t?: number } } };
}

const sockets: RawSocket[] = [];
let mode: Mode = "none";
let received = 0;
let firstTs = 0;
let lastTs = 0;
let sampleKeys: string[] = [];
let sampleTs: number[] = [];
let nspLength = 6; // "/pools"

/** The one event handler of every bulk socket: counting is byte-level; latency mode parses the envelope. */
function onEvent(frame: Buffer): void {
  if (mode === "none") return;
  const ts = now();
  received++;
  if (firstTs === 0) firstTs = ts;
  lastTs = ts;
  if (mode === "latency") {
    const parsed = parseEvent(frame, nspLength);
    const data = (parsed?.[1] as Envelope | undefined)?.data;
    if (data?.poolId !== undefined && data.to !== undefined) {
      sampleKeys.push(`${data.poolId}:${data.to}`);
      sampleTs.push(ts);
    }
  }
}

const http = new Map<string, HttpClient>();
function httpFor(url: string, maxSockets = 256): HttpClient {
  let client = http.get(url);
  if (!client) {
    client = new HttpClient(url, maxSockets);
    http.set(url, client);
  }
  return client;
}
const seqSources = new Map<string, SeqSource>();
/** Gated closed loops: how many events may have been started in all (raised by the `allow` command). */
let allowance = Infinity;

/**
 * The closed loop of both task scenarios: `concurrency` lanes each `submit` task k and wait until its
 * completion is seen (`waiting.get(k)(ts)`, called by the caller's listener), then submit the next. Tasks
 * submitted after the warm-up and completed before the deadline are measured.
 */
async function taskLoop(
  args: { concurrency: number; durationMs: number; warmupMs: number },
  waiting: Map<number, (ts: number) => void>,
  submit: (k: number, t: number) => Promise<void>,
) {
  let nextK = 0;
  const latencies: number[] = [];
  let completed = 0;
  let failed = 0;
  const errors: string[] = [];
  const start = now();
  const measureFrom = start + args.warmupMs;
  const deadline = measureFrom + args.durationMs;
  let measuredCompleted = 0;
  const lane = async (): Promise<void> => {
    while (now() < deadline) {
      const k = nextK++;
      const t = now();
      const done = new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(k);
          reject(new Error(`task ${k}: no completion within 30 s`));
        }, 30_000);
        waiting.set(k, (ts) => {
          clearTimeout(timer);
          waiting.delete(k);
          resolve(ts);
        });
      });
      done.catch(() => undefined);
      try {
        await submit(k, t);
        const ts = await done;
        completed++;
        if (t >= measureFrom && ts <= deadline) {
          measuredCompleted++;
          latencies.push(ts - t);
        }
      } catch (error) {
        waiting.delete(k);
        failed++;
        if (errors.length < 5) errors.push((error as Error).message);
        if (failed > 100) return;
      }
    }
  };
  await Promise.all(Array.from({ length: args.concurrency }, lane));
  return {
    completed,
    failed,
    errors,
    measuredCompleted,
    measuredMs: args.durationMs,
    tasksPerSecond: (measuredCompleted * 1000) / args.durationMs,
    latency: summarize(latencies),
  };
}

// Each command declares the arguments run.ts sends it; IPC does not check them. A parameter type of `never` admits
// every command's own, and the dispatcher below passes the message on unchecked.
const commands: Record<string, (args: never) => Promise<unknown>> = {
  async connect(args: { url: string; nsp: string; token: string; rooms: string[]; count: number; offset: number; concurrency: number }) {
    nspLength = args.nsp.length;
    const result = await openMany({
      url: args.url,
      nsp: args.nsp,
      token: args.token,
      count: args.count,
      concurrency: args.concurrency,
      roomOf: (i) => (args.rooms.length > 0 ? args.rooms[(args.offset + i) % args.rooms.length] : undefined),
      onEvent,
    });
    sockets.push(...result.sockets);
    return {
      connected: result.connected,
      subscribed: result.subscribed,
      failed: result.failed,
      errors: result.errors,
      ms: result.ms,
      acks: result.acks,
      total: sockets.length,
    };
  },

  async closeAll() {
    const n = sockets.length;
    for (const socket of sockets.splice(0)) socket.terminate();
    await sleep(50);
    return { closed: n };
  },

  async alive() {
    return { open: sockets.filter((s) => !s.closed).length, total: sockets.length };
  },

  /** Sets the recording mode; any mode but "none" starts from zero ("none" keeps what was recorded). */
  async record(args: { mode: Mode }) {
    mode = args.mode;
    if (mode === "none") return {};
    received = 0;
    firstTs = 0;
    lastTs = 0;
    sampleKeys = [];
    sampleTs = [];
    return {};
  },

  async stats(args: { samples?: boolean }) {
    const out: Record<string, unknown> = { received, firstTs, lastTs };
    if (args.samples) {
      out.keys = sampleKeys;
      out.ts = sampleTs;
      sampleKeys = [];
      sampleTs = [];
    }
    return out;
  },

  /** Runs a publish loop against `url` (closed loop with `concurrency`, or open loop at `rate`). */
  async publish(args: {
    url: string;
    spec: PublisherSpec;
    pools: string[];
    concurrency?: number;
    rate?: number;
    durationMs: number;
    maxInFlight?: number;
    limit?: number;
    /** Closed loop only: start gated at this many events; `allow` raises the gate as deliveries come in. */
    gateEvents?: number;
  }) {
    const client = httpFor(args.url);
    const publish = createPublisher(args.spec, client);
    allowance = args.gateEvents ?? Infinity;
    const key = `${args.url}|${args.pools.join(",")}`;
    let seqs = seqSources.get(key);
    if (!seqs) {
      seqs = new SeqSource(args.pools);
      seqSources.set(key, seqs);
    }
    const result =
      args.rate !== undefined
        ? await openLoop(publish, seqs, args.rate, args.durationMs, args.maxInFlight ?? 512)
        : await closedLoop(
            publish,
            seqs,
            args.concurrency ?? 16,
            args.durationMs,
            args.limit,
            args.gateEvents === undefined ? undefined : () => allowance,
          );
    const callLatency = result.callLatency ? summarize(result.callLatency) : undefined;
    return { ...result, callLatency };
  },

  /** Raises the gate of a running gated publish loop: at most `events` events started in all. */
  async allow(args: { events: number }) {
    allowance = Math.max(allowance, args.events);
    return {};
  },

  /** Generic JSON HTTP call (setup work: creating pools and the like), run `count` times with `concurrency`. */
  async http(args: { url: string; method: string; path: string; bodies: unknown[]; token: string; concurrency: number }) {
    const client = httpFor(args.url);
    const results = new Array<{ status: number; body: unknown }>(args.bodies.length);
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < args.bodies.length) {
        const i = next++;
        const res = await client.request(args.method, args.path, args.bodies[i], { authorization: `Bearer ${args.token}` });
        let body: unknown = res.body;
        try {
          body = JSON.parse(res.body);
        } catch {
          // keep text
        }
        results[i] = { status: res.status, body };
      }
    };
    await Promise.all(Array.from({ length: Math.min(args.concurrency, args.bodies.length) }, lane));
    return results;
  },

  /**
   * Tasks, closed loop: `concurrency` lanes each submit an echo task (POST /api/v1/tasks) and wait until a
   * dashboard socket subscribed to `tasks` receives its task.completed, then submit the next one.
   */
  async tasks(args: { url: string; token: string; concurrency: number; durationMs: number; warmupMs: number; poolId?: string }) {
    const waiting = new Map<number, (ts: number) => void>();
    let taskEvents = 0;
    const subscriber = new RawSocket({
      url: args.url,
      nsp: "/tasks",
      token: args.token,
      onEvent: (frame) => {
        taskEvents++;
        if (eventName(frame, 6) !== "task.completed") return;
        const ts = now();
        const data = (parseEvent(frame, 6)?.[1] as Envelope | undefined)?.data;
        const k = data?.task?.result?.k;
        if (k !== undefined) waiting.get(k)?.(ts);
      },
    });
    await subscriber.connected;
    const ack = (await subscriber.emitWithAck("subscribe", { room: "tasks" })) as { ok?: boolean };
    if (!ack?.ok) throw new Error(`subscribe tasks refused: ${JSON.stringify(ack)}`);
    const client = httpFor(args.url);
    const headers = { authorization: `Bearer ${args.token}` };
    try {
      const result = await taskLoop(args, waiting, async (k, t) => {
        const body = { type: "echo", payload: { k, t }, ...(args.poolId ? { poolId: args.poolId } : {}) };
        const res = await client.request("POST", "/api/v1/tasks", body, headers);
        if (res.status !== 202) throw new Error(`submit: HTTP ${res.status} ${res.body.slice(0, 200)}`);
      });
      return { ...result, taskEventsSeen: taskEvents };
    } finally {
      subscriber.terminate();
    }
  },

  /**
   * The same closed loop through bare BullMQ: each lane adds an echo job (Queue.add, with the job options
   * Switchyard's TaskQueues.enqueue gives an echo task) and waits until QueueEvents reports it completed; the
   * Worker runs in its own process (bullmq-worker.ts).
   */
  async bullmqTasks(args: { redisUrl: string; prefix: string; queue: string; concurrency: number; durationMs: number; warmupMs: number }) {
    const connection = new Redis(args.redisUrl, { maxRetriesPerRequest: null, connectionName: `bench-bullmq-producer-${process.pid}` });
    // QueueEvents blocks on XREAD: it needs a connection of its own.
    const eventsConnection = new Redis(args.redisUrl, { maxRetriesPerRequest: null, connectionName: `bench-bullmq-events-${process.pid}` });
    for (const c of [connection, eventsConnection]) c.on("error", () => undefined);
    const queue = new Queue(args.queue, { connection, prefix: args.prefix });
    // QueueEvents reads from "$" by default: the newest entry when its first XREAD reaches Redis, which may be
    // after the first jobs completed. Start from the stream's last entry as of now instead.
    const [last] = await connection.xrevrange(`${args.prefix}:${args.queue}:events`, "+", "-", "COUNT", 1);
    const events = new QueueEvents(args.queue, { connection: eventsConnection, prefix: args.prefix, lastEventId: last?.[0] ?? "0-0" });
    queue.on("error", () => undefined);
    events.on("error", () => undefined);
    const waiting = new Map<number, (ts: number) => void>();
    let completedEvents = 0;
    events.on("completed", ({ jobId }) => {
      const ts = now();
      completedEvents++;
      const k = Number(jobId.slice(jobId.lastIndexOf("-") + 1));
      waiting.get(k)?.(ts);
    });
    try {
      await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
      const runId = randomUUID().slice(0, 8);
      const result = await taskLoop(args, waiting, async (k, t) => {
        const jobId = `${runId}-${k}`;
        // Switchyard's job for an echo task: TaskJobData, and the options of TaskQueues.enqueue with the
        // defaults of a submitted task (priority 50 -> BullMQ priority 51, maxAttempts 1).
        const data = {
          tenantId: "tasks",
          taskId: jobId,
          poolId: "default",
          type: "echo",
          payload: { k, t },
          timeoutMs: null,
          maxAttempts: 1,
        };
        await queue.add("echo", data, {
          jobId,
          attempts: 1,
          backoff: { type: "exponential", delay: 1000 },
          priority: 51,
          removeOnComplete: { age: 3600, count: 10_000 },
          removeOnFail: { age: 24 * 3600, count: 10_000 },
        });
      });
      return { ...result, completedEventsSeen: completedEvents };
    } finally {
      await Promise.allSettled([events.close(), queue.close()]);
      connection.disconnect();
      eventsConnection.disconnect();
    }
  },

  /** Subscribes one socket to `room` and returns the room's head cursor (the starting point of a replay). */
  async headCursor(args: { url: string; nsp: string; token: string; room: string }) {
    const socket = new RawSocket({ url: args.url, nsp: args.nsp, token: args.token, onEvent: () => undefined });
    await socket.connected;
    const ack = (await socket.emitWithAck("subscribe", { room: args.room })) as { ok?: boolean; cursor?: string };
    socket.terminate();
    if (!ack?.ok || !ack.cursor) throw new Error(`subscribe ${args.room} refused: ${JSON.stringify(ack)}`);
    return { cursor: ack.cursor };
  },

  /**
   * Replay: `clients` sockets connect, then all resubscribe to `room` with `after` at once; each counts the
   * events that arrive before its ack (the contract: missed events first, then the ack).
   */
  async replay(args: { url: string; nsp: string; token: string; room: string; after: string; clients: number }) {
    const counts = new Array<number>(args.clients).fill(0);
    const sockets = await Promise.all(
      Array.from({ length: args.clients }, async (_, i) => {
        const socket = new RawSocket({ url: args.url, nsp: args.nsp, token: args.token, onEvent: () => void counts[i]!++ });
        await socket.connected;
        return socket;
      }),
    );
    const start = now();
    const perClient = await Promise.all(
      sockets.map(async (socket, i) => {
        const t0 = now();
        const ack = (await socket.emitWithAck("subscribe", { room: args.room, after: args.after }, 120_000)) as {
          ok?: boolean;
          replayed?: number;
          error?: unknown;
        };
        const ms = now() - t0;
        return { ok: ack?.ok === true, replayed: ack?.replayed ?? 0, received: counts[i]!, ms, error: ack?.ok ? undefined : ack?.error };
      }),
    );
    const end = now();
    for (const socket of sockets) socket.terminate();
    return { perClient, totalMs: end - start };
  },

  async exit() {
    setTimeout(() => process.exit(0), 10);
    return {};
  },
};

process.on("message", (message: { id: number; cmd: string; [key: string]: unknown }) => {
  const handler = commands[message.cmd];
  if (!handler) {
    process.send?.({ id: message.id, ok: false, error: `unknown command ${message.cmd}` });
    return;
  }
  handler(message as never).then(
    (result) => process.send?.({ id: message.id, ok: true, result }),
    (error: unknown) => process.send?.({ id: message.id, ok: false, error: (error as Error).stack ?? String(error) }),
  );
});
// The parent going away (even by SIGKILL) closes the IPC channel: never outlive it.
process.on("disconnect", () => process.exit(0));
process.send?.({ ready: true });
