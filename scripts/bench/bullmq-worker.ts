// The bare-BullMQ side of the tasks scenario: one BullMQ Worker with a trivial processor that returns the
// job's payload (Switchyard's built-in `echo` handler does the same), in its own process, as Switchyard's
// embedded worker runs in the server process. The producer (Queue.add) and the completion listener
// (QueueEvents) run in the bench's publisher process (load-client.ts, command `bullmqTasks`).
//
// Worker settings are Switchyard's embedded worker's (src/app.ts, src/worker/pool-worker.ts): concurrency
// WORKER_CONCURRENCY (Switchyard's default 32), lockDuration 30 s, stalledInterval 15 s, maxStalledCount 2, one
// ioredis connection (maxRetriesPerRequest: null) that BullMQ duplicates for its blocking reads.
//
// Env: REDIS_URL, BULL_PREFIX, QUEUE, WORKER_CONCURRENCY. Prints {"msg":"bullmq worker ready"} once the worker
// is connected; SIGTERM closes it and exits 0.

import { Worker } from "bullmq";
import { Redis } from "ioredis";

const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const prefix = process.env.BULL_PREFIX;
const queue = process.env.QUEUE;
const concurrency = Number(process.env.WORKER_CONCURRENCY ?? 32);
if (!prefix || !queue) {
  process.stderr.write("bullmq-worker: BULL_PREFIX and QUEUE are required\n");
  process.exit(78);
}

const connection = new Redis(redisUrl, { maxRetriesPerRequest: null, connectionName: `bench-bullmq-worker-${process.pid}` });
connection.on("error", (error: Error) => process.stderr.write(`redis: ${error.message}\n`));

interface EchoJob {
  payload?: unknown;
}

const worker = new Worker<EchoJob>(queue, async (job) => job.data.payload ?? null, {
  connection,
  prefix,
  concurrency,
  lockDuration: 30_000,
  stalledInterval: 15_000,
  maxStalledCount: 2,
});
worker.on("error", (error) => process.stderr.write(`worker: ${error.message}\n`));
await worker.waitUntilReady();
process.stdout.write(JSON.stringify({ msg: "bullmq worker ready", queue, concurrency }) + "\n");

let stopping = false;
function shutdown(): void {
  if (stopping) return;
  stopping = true;
  void worker
    .close()
    .then(() => connection.quit())
    .finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 3000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
