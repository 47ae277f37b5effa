/**
 * Publish throughput with the event log on and off, through a real Socket.IO server with the Redis adapter and
 * real socket.io-client subscribers, in one run:
 *   npx tsx scripts/bench/event-log.ts [--events 5000] [--rooms 100] [--concurrency 64] [--subscribers 20]
 * "off" assigns cursors from an in-memory counter and stores nothing: the broadcast path alone.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import { Server } from "socket.io";
import { io as connectClient, type Socket } from "socket.io-client";
import { dropDatabase, setupDatabase } from "../../src/db/setup.js";
import { createPrisma } from "../../src/db/client.js";
import { EventLogReader } from "../../src/events/event-log-reader.js";
import { EventLogWriter } from "../../src/events/event-log-writer.js";
import { EventPublisher } from "../../src/events/publisher.js";
import { roomKey } from "../../src/events/room-key.js";
import type { Envelope } from "../../src/protocol/events.js";
import { createLogger } from "../../src/observability/logger.js";
import { DependencyStatus } from "../../src/dependencies/status.js";
import { createMetrics } from "../../src/observability/metrics.js";
import { prismaSql } from "../../src/db/sql.js";
import { benchDatabaseUrl } from "./bench-run.js";

const { values } = parseArgs({
  options: {
    events: { type: "string", default: "5000" },
    rooms: { type: "string", default: "100" },
    concurrency: { type: "string", default: "64" },
    subscribers: { type: "string", default: "20" },
  },
});
const EVENTS = Number(values.events);
const ROOMS = Number(values.rooms);
const CONCURRENCY = Number(values.concurrency);
const SUBSCRIBERS = Number(values.subscribers);
const tenant = "bench";
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const databaseUrl = benchDatabaseUrl(`bench_log_${process.pid}`);

await setupDatabase(databaseUrl, { generate: false });
const prisma = createPrisma(databaseUrl);
const pub = new Redis(redisUrl);
const sub = new Redis(redisUrl);
const http = createServer();
const io = new Server(http, { transports: ["websocket"], adapter: createAdapter(pub, sub, { key: `bench-log-${process.pid}` }) });
// Every subscriber joins every room, as a dashboard watching a whole tenant would.
io.of("/tasks").on("connection", (socket) => {
  for (let r = 0; r < ROOMS; r++) void socket.join(roomKey(tenant, `task:r${r}`));
});
await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
const port = (http.address() as AddressInfo).port;

let delivered = 0;
const clients: Socket[] = [];
for (let i = 0; i < SUBSCRIBERS; i++) {
  const client = connectClient(`http://127.0.0.1:${port}/tasks`, { transports: ["websocket"], forceNew: true });
  client.onAny(() => delivered++);
  await new Promise<void>((resolve) => client.once("connect", () => resolve()));
  clients.push(client);
}
await new Promise((resolve) => setTimeout(resolve, 300));

const metrics = createMetrics("bench");
const broadcast = (namespace: string, key: string, envelope: Envelope) => io.of(`/${namespace}`).to(key).emit(envelope.type, envelope);
const benchLogger = createLogger({ level: "warn", nodeId: "bench", format: "json" });
const failures = new DependencyStatus(benchLogger, { deadlineMs: 2000 });
const logged = new EventPublisher(
  prisma,
  new EventLogWriter(prismaSql(prisma)),
  new EventLogReader(prisma, prismaSql(prisma)),
  broadcast,
  metrics,
  benchLogger,
  { relayAfterMs: 5000, failures },
);
/** The same envelope and broadcast, with sequence numbers from memory and nothing stored. */
const memorySeq = new Map<string, number>();
const unlogged = {
  publish: async (input: { rooms: readonly string[]; type: string; data: unknown }) => {
    for (const room of input.rooms) {
      const seq = (memorySeq.get(room) ?? 0) + 1;
      memorySeq.set(room, seq);
      broadcast("tasks", roomKey(tenant, room), {
        id: crypto.randomUUID(),
        type: input.type,
        room,
        cursor: `mem-${seq}`,
        ts: new Date().toISOString(),
        data: input.data,
      });
    }
  },
};

async function run(
  label: string,
  publish: (i: number) => Promise<unknown>,
): Promise<{ label: string; publishedPerSec: number; deliveredPerSec: number }> {
  delivered = 0;
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < EVENTS) await publish(next++);
    }),
  );
  const publishedMs = performance.now() - started;
  const expected = EVENTS * SUBSCRIBERS;
  while (delivered < expected && performance.now() - started < publishedMs + 30_000) await new Promise((r) => setTimeout(r, 5));
  const deliveredMs = performance.now() - started;
  return {
    label,
    publishedPerSec: Math.round((EVENTS / publishedMs) * 1000),
    deliveredPerSec: Math.round((delivered / deliveredMs) * 1000),
  };
}

const input = (i: number) => ({
  tenantId: tenant,
  namespace: "tasks" as const,
  room: `task:r${i % ROOMS}`,
  type: "bench.progress",
  data: { i, progress: i % 100 },
});
await run("warm-up", (i) => logged.publishBatch([input(i)]));
const off = await run("log off", (i) => unlogged.publish({ ...input(i), rooms: [input(i).room] }));
const on = await run("log on", (i) => logged.publishBatch([input(i)]));
const rows = [off, on];
console.log(
  `event log bench: ${EVENTS} events over ${ROOMS} rooms, ${CONCURRENCY} concurrent publishers, ${SUBSCRIBERS} subscribers each in every room`,
);
console.table(rows);
console.log(
  `log on / log off: published ${(on.publishedPerSec / off.publishedPerSec).toFixed(2)}x, delivered ${(on.deliveredPerSec / off.deliveredPerSec).toFixed(2)}x`,
);

for (const client of clients) client.close();
await io.close();
await prisma.$disconnect();
pub.disconnect();
sub.disconnect();
await dropDatabase(databaseUrl);
process.exit(0);
