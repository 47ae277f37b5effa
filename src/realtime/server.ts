import type { Server as HttpServer } from "node:http";
import { createAdapter } from "@socket.io/redis-adapter";
import type { Redis } from "ioredis";
import { Server, type Socket } from "socket.io";
import type { TokenVerifier } from "../auth/verify.js";
import type { Broadcast } from "../events/publisher.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { NAMESPACES, type NamespaceName } from "../protocol/namespaces.js";
import { expireWithToken, handshakeAuth, type SocketData } from "./handshake.js";
import { attachSubscriptions, type SubscriptionDeps } from "./subscriptions.js";

/** Extra per-socket behaviour a domain adds to a namespace (e.g. worker reports on /pools). */
export type ConnectionHandler = (socket: Socket) => void;

export interface RealtimeOptions {
  httpServer: HttpServer;
  verifyToken: TokenVerifier;
  pubClient: Redis;
  subClient: Redis;
  redisPrefix: string;
  corsOrigins: string[] | undefined;
  maxPayloadBytes: number;
  metrics: Metrics;
  logger: Logger;
  subscriptions: Omit<SubscriptionDeps, "namespace" | "metrics" | "logger">;
}

export class Realtime {
  readonly io: Server;
  private readonly handlers = new Map<NamespaceName, ConnectionHandler[]>();

  constructor(private readonly options: RealtimeOptions) {
    const { metrics, logger } = options;
    this.io = new Server(options.httpServer, {
      // Both transports, as the contract says; the same limit as REST bodies for one message.
      transports: ["polling", "websocket"],
      maxHttpBufferSize: options.maxPayloadBytes,
      cors: options.corsOrigins
        ? { origin: options.corsOrigins.includes("*") ? true : options.corsOrigins, credentials: false }
        : undefined,
      adapter: createAdapter(options.pubClient, options.subClient, { key: `${options.redisPrefix}:socket.io` }),
    });
    const auth = handshakeAuth(options.verifyToken, metrics, logger);
    // The main namespace serves nothing; it still demands a token so it cannot be used anonymously.
    this.io.use(auth);
    for (const name of NAMESPACES) {
      const nsp = this.io.of(`/${name}`);
      nsp.use(auth);
      const connected = metrics.connectedSockets.labels({ namespace: name });
      nsp.on("connection", (socket) => {
        connected.inc();
        socket.once("disconnect", () => connected.dec());
        expireWithToken(socket, (socket.data as SocketData).principal);
        attachSubscriptions(socket, { ...options.subscriptions, namespace: name, metrics, logger });
        socket.onAny((event: string, ...args: unknown[]) => {
          // onAny sees every event; only those nobody handles on this namespace are unknown.
          if (socket.listeners(event).length > 0) return;
          const ack = args[args.length - 1];
          if (typeof ack === "function") {
            ack({ ok: false, error: { code: "BAD_REQUEST", message: `unknown event "${String(event).slice(0, 64)}"` } });
          }
        });
        for (const handler of this.handlers.get(name) ?? []) handler(socket);
      });
    }
  }

  /** Registers behaviour for every socket that connects to a namespace. */
  onConnection(namespace: NamespaceName, handler: ConnectionHandler): void {
    this.handlers.set(namespace, [...(this.handlers.get(namespace) ?? []), handler]);
  }

  readonly broadcast: Broadcast = (namespace, key, type, envelope) => {
    this.io.of(`/${namespace}`).to(key).emit(type, envelope);
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
