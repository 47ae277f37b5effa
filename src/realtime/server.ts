import type { Server as HttpServer } from "node:http";
import { createAdapter } from "@socket.io/redis-adapter";
import type { Redis } from "ioredis";
import { Server } from "socket.io";
import type { TokenVerifier } from "../auth/verify.js";
import type { Broadcast } from "../events/publisher.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { NAMESPACES, type NamespaceName } from "../protocol/namespaces.js";
import { expireWithToken, handshakeAuth } from "./handshake.js";
import { emitStored, type ClientToServerEvents, type InterServerEvents, type ServerToClientEvents, type SocketData, type SwitchyardServer, type SwitchyardSocket } from "./types.js";
import { OutboundGuard } from "./outbound.js";
import { Semaphore } from "./replay.js";
import { RoomSubscriptions, type SubscriptionDeps } from "./subscriptions.js";
import type { RedisKeys } from "../jobs/redis-keys.js";

/** Extra per-socket behaviour a domain adds to a namespace (e.g. worker reports on /pools). */
export type ConnectionHandler = (socket: SwitchyardSocket) => void;

export interface RealtimeOptions {
  httpServer: HttpServer;
  verifyToken: TokenVerifier;
  pubClient: Redis;
  subClient: Redis;
  keys: RedisKeys;
  corsOrigins: string[] | undefined;
  maxPayloadBytes: number;
  /** Unsent bytes a connection may hold before it is closed as a slow consumer. */
  maxSocketBufferBytes: number;
  metrics: Metrics;
  logger: Logger;
  subscriptions: Omit<SubscriptionDeps, "namespace" | "metrics" | "logger" | "outbound" | "replayPages">;
}

/** Replay pages (read from the database, not yet handed to a socket) held at once by this node, over all sockets. */
const REPLAY_PAGES_IN_FLIGHT = 4;

/** Events only pool worker processes may send; other sockets are told so rather than "unknown event". */
const WORKER_EVENTS = new Set(["worker.status", "worker.heartbeat", "task.report"]);

/**
 * Shared by every socket (the socket is `this`): answers an acknowledged event that no handler on this socket
 * takes, so a client never waits on a silent server.
 */
function answerUnhandled(this: SwitchyardSocket, event: string, ...args: unknown[]): void {
  if (this.listeners(event as keyof ClientToServerEvents).length > 0) return;
  const ack = args[args.length - 1];
  if (typeof ack !== "function") return;
  const name = String(event).slice(0, 64);
  ack(
    WORKER_EVENTS.has(event) && this.nsp.name === "/pools"
      ? { ok: false, error: { code: "FORBIDDEN", message: `${name} needs a pools:work token` } }
      : { ok: false, error: { code: "BAD_REQUEST", message: `unknown event "${name}"` } },
  );
}

export class Realtime {
  readonly io: SwitchyardServer;
  private readonly handlers = new Map<NamespaceName, ConnectionHandler[]>();

  constructor(private readonly options: RealtimeOptions) {
    const { metrics, logger } = options;
    this.io = new Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>(options.httpServer, {
      // Both transports, as the contract says; the same limit as REST bodies for one message.
      transports: ["polling", "websocket"],
      maxHttpBufferSize: options.maxPayloadBytes,
      cors: options.corsOrigins
        ? { origin: options.corsOrigins.includes("*") ? true : options.corsOrigins, credentials: false }
        : undefined,
      adapter: createAdapter(options.pubClient, options.subClient, { key: options.keys.adapter }),
    });
    // Every connection's outbound buffer is bounded, whatever writes to it (broadcasts, replays, acks, pings).
    // Engine.IO connections, not namespace sockets: the namespaces of one client share its connection.
    const outbound = new OutboundGuard(options.maxSocketBufferBytes, metrics, logger);
    outbound.install(this.io.engine);
    const replayPages = new Semaphore(REPLAY_PAGES_IN_FLIGHT);
    const auth = handshakeAuth(options.verifyToken, metrics, logger);
    // The main namespace serves nothing; it still demands a token so it cannot be used anonymously.
    this.io.use(auth);
    for (const name of NAMESPACES) {
      const nsp = this.io.of(`/${name}`);
      nsp.use(auth);
      const connected = metrics.connectedSockets.labels({ namespace: name });
      const rooms = new RoomSubscriptions({ ...options.subscriptions, outbound, replayPages, namespace: name, metrics, logger });
      const onDisconnect = (): void => {
        connected.dec();
      };
      nsp.on("connection", (socket) => {
        connected.inc();
        socket.once("disconnect", onDisconnect);
        expireWithToken(socket, socket.data.principal);
        rooms.attach(socket);
        socket.onAny(answerUnhandled);
        for (const handler of this.handlers.get(name) ?? []) handler(socket);
      });
    }
  }

  /** Registers behaviour for every socket that connects to a namespace. */
  onConnection(namespace: NamespaceName, handler: ConnectionHandler): void {
    this.handlers.set(namespace, [...(this.handlers.get(namespace) ?? []), handler]);
  }

  readonly broadcast: Broadcast = (namespace, key, envelope) => {
    emitStored(this.io.of(`/${namespace}`).to(key), envelope);
  };

  /** Tells every client to reconnect elsewhere and closes their connections (clients reconnect by themselves). */
  async close(nodeId: string): Promise<void> {
    for (const name of NAMESPACES) {
      this.io.of(`/${name}`).local.emit("server.shutdown", { node: nodeId, reconnect: true });
    }
    await new Promise<void>((resolve) => {
      // io.close() closes the engine's transports: clients see "transport close" and reconnect by themselves.
      this.io.close(() => resolve());
    });
  }
}
