// The baseline the bench compares Switchyard with: a bare Socket.IO 4.8 server with @socket.io/redis-adapter
// (ioredis), the same transports and message limit as Switchyard, and nothing else.
//
//   - Namespaces /pools, /tasks, /workflows (and the main namespace), each behind a handshake middleware that
//     verifies an HS256 JWT with jsonwebtoken (so connection cost includes auth, as in Switchyard). Unlike
//     Switchyard: no claims schema, no token-expiry timer, no rate limit, no database.
//   - `subscribe` { room } joins `<tenant>|<room>` and acks { ok, room, cursor }; `unsubscribe` leaves.
//   - POST /publish { namespace, tenant?, room? | rooms?, type, data, count } emits an envelope of
//     Switchyard's shape to each room, `count` times (yielding to I/O every few ms): the baseline's publish path.
//   - POST /publish-batch { namespace, tenant?, events: [{ room, type, data }] } emits each event once to its room
//     and answers 202 { items: [{ id, namespace, room, cursor }] }: the equivalent of Switchyard's
//     POST /api/v1/events batch form, without auth, validation or storage.
//   - GET /mem -> process.memoryUsage(); GET /health.
//
// Env: PORT (0 = any), HOST, REDIS_URL, ADAPTER_KEY, JWT_SECRET, NODE_ID. Prints one JSON line
// {"msg":"baseline listening","port":N} when ready. SIGTERM closes everything and exits 0.

import { randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import jwt from "jsonwebtoken";
import { Server, type Socket } from "socket.io";

const port = Number(process.env.PORT ?? 0);
const host = process.env.HOST ?? "127.0.0.1";
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const adapterKey = process.env.ADAPTER_KEY ?? "bench-baseline:socket.io";
const secret = process.env.JWT_SECRET;
const nodeId = process.env.NODE_ID ?? `baseline-${process.pid}`;
if (!secret) {
  process.stderr.write("baseline: JWT_SECRET is required\n");
  process.exit(78);
}

const pubClient = new Redis(redisUrl, { connectionName: `${nodeId}:pub` });
const subClient = new Redis(redisUrl, { connectionName: `${nodeId}:sub` });
for (const client of [pubClient, subClient]) client.on("error", (error: Error) => process.stderr.write(`redis: ${error.message}\n`));

const httpServer = createServer();
httpServer.on("request", (req: IncomingMessage, res: ServerResponse) => void handleHttp(req, res));

const io = new Server(httpServer, {
  transports: ["polling", "websocket"],
  maxHttpBufferSize: 1_048_576,
  adapter: createAdapter(pubClient, subClient, { key: adapterKey }),
});

interface Principal {
  tenant: string;
}

function auth(socket: Socket, next: (error?: Error) => void): void {
  const token = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
  try {
    if (typeof token !== "string") throw new Error("no token");
    const claims = jwt.verify(token, secret!, { algorithms: ["HS256"] }) as jwt.JwtPayload;
    if (typeof claims.tenant_id !== "string") throw new Error("no tenant");
    (socket.data as Principal).tenant = claims.tenant_id;
    next();
  } catch {
    const error = new Error("unauthorized") as Error & { data: unknown };
    error.data = { code: "TOKEN_INVALID" };
    next(error);
  }
}

io.use(auth);
for (const name of ["pools", "tasks", "workflows"]) {
  const nsp = io.of(`/${name}`);
  nsp.use(auth);
  nsp.on("connection", (socket) => {
    const { tenant } = socket.data as Principal;
    socket.on("subscribe", (payload: { room?: unknown; after?: unknown }, ack?: (result: unknown) => void) => {
      const room = payload?.room;
      if (typeof room !== "string" || room.length === 0 || room.length > 160) {
        ack?.({ ok: false, error: { code: "INVALID_ROOM", message: "bad room" } });
        return;
      }
      void Promise.resolve(socket.join(`${tenant}|${room}`)).then(() => ack?.({ ok: true, room, cursor: cursorOf(room, 0) }));
    });
    socket.on("unsubscribe", (payload: { room?: unknown }, ack?: (result: unknown) => void) => {
      const room = typeof payload?.room === "string" ? payload.room : "";
      void Promise.resolve(socket.leave(`${tenant}|${room}`)).then(() => ack?.({ ok: true, room }));
    });
  });
}

// Cursors of the same shape as Switchyard's, from an in-memory counter per room.
const epoch = randomBytes(5).toString("hex");
const seqs = new Map<string, number>();
function cursorOf(room: string, seq: number): string {
  return `${epoch}-${String(seq).padStart(12, "0")}`;
}
function nextCursor(key: string): string {
  const seq = (seqs.get(key) ?? 0) + 1;
  seqs.set(key, seq);
  return cursorOf(key, seq);
}

interface PublishBody {
  namespace?: string;
  tenant?: string;
  room?: string;
  rooms?: string[];
  type?: string;
  data?: unknown;
  count?: number;
}

async function publish(body: PublishBody): Promise<number> {
  const nsp = io.of(`/${body.namespace ?? "pools"}`);
  const tenant = body.tenant ?? "bench";
  const rooms = body.rooms ?? (body.room ? [body.room] : []);
  const type = body.type ?? "bench.event";
  const count = Math.max(1, Math.min(1_000_000, Number(body.count ?? 1)));
  let emitted = 0;
  let sliceStart = performance.now();
  for (let i = 0; i < count; i++) {
    const id = randomUUID();
    const ts = new Date().toISOString();
    for (const room of rooms) {
      const key = `${tenant}|${room}`;
      nsp.to(key).emit(type, { id, type, room, cursor: nextCursor(key), ts, data: body.data });
      emitted++;
    }
    // Let the sockets' writes and the Redis publishes flow instead of buffering the whole batch.
    if (performance.now() - sliceStart > 5) {
      await new Promise((resolve) => setImmediate(resolve));
      sliceStart = performance.now();
    }
  }
  return emitted;
}

interface BatchBody {
  namespace?: string;
  tenant?: string;
  events?: Array<{ room?: string; type?: string; data?: unknown }>;
}

function publishBatch(body: BatchBody): Array<{ id: string; namespace: string; room: string; cursor: string }> {
  const namespace = body.namespace ?? "pools";
  const nsp = io.of(`/${namespace}`);
  const tenant = body.tenant ?? "bench";
  if (!Array.isArray(body.events)) throw new Error("events must be an array");
  const ts = new Date().toISOString();
  return body.events.map((event) => {
    const room = String(event.room ?? "");
    const type = event.type ?? "bench.event";
    const key = `${tenant}|${room}`;
    const id = randomUUID();
    const cursor = nextCursor(key);
    nsp.to(key).emit(type, { id, type, room, cursor, ts, data: event.data ?? null });
    return { id, namespace, room, cursor };
  });
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

async function handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    if (req.method === "POST" && req.url === "/publish") {
      const body = JSON.parse(await readBody(req)) as PublishBody;
      send(res, 200, { emitted: await publish(body) });
    } else if (req.method === "POST" && req.url === "/publish-batch") {
      const body = JSON.parse(await readBody(req)) as BatchBody;
      send(res, 202, { items: publishBatch(body) });
    } else if (req.method === "GET" && req.url === "/mem") {
      send(res, 200, process.memoryUsage());
    } else if (req.method === "GET" && req.url === "/health") {
      send(res, 200, { status: "ok", node: nodeId });
    } else {
      send(res, 404, { error: { code: "NOT_FOUND", message: "not found" } });
    }
  } catch (error) {
    send(res, 400, { error: { code: "BAD_REQUEST", message: (error as Error).message } });
  }
}

httpServer.listen(port, host, () => {
  const address = httpServer.address() as AddressInfo;
  process.stdout.write(JSON.stringify({ msg: "baseline listening", port: address.port, node: nodeId }) + "\n");
});

let stopping = false;
function shutdown(): void {
  if (stopping) return;
  stopping = true;
  // close() settles (it never rejects) once the HTTP server has closed; the timer below is the fallback.
  void io
    .close()
    .then(() => Promise.allSettled([pubClient.quit(), subClient.quit()]))
    .then(() => process.exit(0));
  setTimeout(() => process.exit(0), 3000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
