import type { Server as HttpServer } from "node:http";
import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import type { RedisClient } from "../jobs/redis-connection.js";
import { Server } from "socket.io";
import type { TokenVerifier } from "../auth/verify.js";
import type { Broadcast } from "../events/publisher.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { NAMESPACES, type NamespaceName } from "../protocol/namespaces.js";
import { handshakeAuth, handshakeNotRevoked } from "./handshake.js";
import type { Principal } from "../auth/principal.js";
import { TokenExpiries } from "./token-expiry.js";
import { TickBroadcast } from "./tick-broadcast.js";
import { originCheck } from "./origin-check.js";
import { revokes, type Revocation } from "../auth/revocation-list.js";
import {
  emitStored,
  type ClientToServerEvents,
  type InterServerEvents,
  type ServerToClientEvents,
  type SocketData,
  type SwitchyardServer,
  type SwitchyardSocket,
} from "./types.js";
import type { TenantConnections } from "../limits/tenant-connections.js";
import { connectionQuota } from "./connection-quota.js";
import { gateInboundEvents } from "./event-gate.js";
import { OutboundGuard } from "./outbound.js";
import { Semaphore } from "./replay.js";
import { BehindConnections, RoomFeeds } from "./room-feeds.js";
import { MAX_REPLAY, replaySizing, RoomSubscriptions, type SubscriptionDeps } from "./subscriptions.js";
import type { RedisKeys } from "../jobs/redis-keys.js";
import type { TenantDeliveries } from "../observability/tenant-deliveries.js";
import { every, type Periodic } from "../every.js";

/** Extra per-socket behaviour a domain adds to a namespace (e.g. worker reports on /pools). */
export type ConnectionHandler = (socket: SwitchyardSocket) => void;

export interface RealtimeOptions {
  httpServer: HttpServer;
  verifyToken: TokenVerifier;
  /** Whether a token admitted earlier in the handshake has been revoked since (see handshakeNotRevoked). */
  isRevoked: (principal: Principal) => boolean;
  pubClient: RedisClient;
  subClient: RedisClient;
  /**
   * On a Redis Cluster: the sharded adapter (SPUBLISH/SSUBSCRIBE, one channel per room), so a node receives only
   * the broadcasts of rooms it has sockets in, and each room's traffic stays on the shard that owns its channel.
   * On a single Redis, classic pub/sub, where every node receives every broadcast.
   */
  sharded: boolean;
  keys: RedisKeys;
  corsOrigins: string[] | undefined;
  /** JWT_CLOCK_TOLERANCE_S: a connected socket's token expires this long after its `exp`, as the verifier sees it. */
  clockToleranceS: number;
  maxPayloadBytes: number;
  /** Cluster-wide connection counts per tenant (MAX_CONNECTIONS_PER_TENANT). */
  connections: TenantConnections;
  /** Client → server events per second of one socket: dashboards, and pool workers' /pools sockets. */
  socketEventsPerSecond: number;
  workerEventsPerSecond: number;
  /** An Engine.IO session that has joined no namespace by then is closed (CONNECT_TIMEOUT_MS). */
  connectTimeoutMs: number;
  /** permessage-deflate for WebSocket messages of at least `thresholdBytes` (WS_COMPRESSION). */
  compression: { enabled: boolean; thresholdBytes: number };
  /** Unsent bytes past which a connection gets no live events until it has drained (then it catches up from the log). */
  maxSocketBufferBytes: number;
  /** A connection with data waiting that reads nothing for this long is closed (SLOW_CONSUMER_TIMEOUT_MS). */
  slowConsumerTimeoutMs: number;
  metrics: Metrics;
  logger: Logger;
  /** Counts the event copies this node delivers, per tenant (single Redis only: see TickBroadcast). */
  deliveries?: TenantDeliveries;
  /**
   * How often the node reads the heads of the rooms it has subscribers in, to find events that never reached it
   * (ROOM_CHECK_INTERVAL_MS); it also does after its pub/sub connection reconnects.
   */
  roomCheckIntervalMs: number;
  subscriptions: Omit<SubscriptionDeps, "namespace" | "metrics" | "logger" | "outbound" | "replayPages" | "feeds">;
}

/** Replay pages (read from the database, not yet handed to a socket) held at once by this node, over all sockets. */
const REPLAY_PAGES_IN_FLIGHT = 4;

export class Realtime {
  readonly io: SwitchyardServer;
  private readonly handlers = new Map<NamespaceName, ConnectionHandler[]>();
  /** Token expiries of every namespace's sockets, on one timer. */
  private expiries: TokenExpiries | undefined;
  /** Broadcasts over a single Redis: one message per tick (undefined on a Redis Cluster: the sharded adapter's channels). */
  private readonly ticks: TickBroadcast | undefined;
  private readonly feeds: RoomFeeds[] = [];
  private readonly checkTimer: Periodic;
  private checking = false;

  constructor(options: RealtimeOptions) {
    const { metrics, logger } = options;
    this.io = new Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>(options.httpServer, {
      // Both transports, as the contract says; the same limit as REST bodies for one message.
      transports: ["polling", "websocket"],
      maxHttpBufferSize: options.maxPayloadBytes,
      // Off by default, as in Socket.IO: a compressing connection keeps a zlib context (memory per socket) and
      // spends CPU per message. Below the threshold a message is sent as it is (compressing it would not pay).
      perMessageDeflate: options.compression.enabled ? { threshold: options.compression.thresholdBytes } : false,
      // Socket.IO closes a connection that has not joined a namespace by then; a refused handshake joins none, so
      // unauthenticated sessions cannot sit on a node's memory and file descriptors.
      connectTimeout: options.connectTimeoutMs,
      cors: options.corsOrigins
        ? { origin: options.corsOrigins.includes("*") ? true : options.corsOrigins, credentials: false }
        : undefined,
      // CORS headers only tell browsers what they may read; this refuses other origins' handshakes outright (403).
      allowRequest: originCheck(options.corsOrigins, (origin) => {
        metrics.handshakeFailures.inc({ code: "FORBIDDEN" });
        logger.debug({ origin: origin.slice(0, 200) }, "handshake refused: origin not allowed");
      }),
      adapter: options.sharded
        ? createShardedAdapter(options.pubClient, options.subClient, { channelPrefix: options.keys.adapter, subscriptionMode: "dynamic" })
        : createAdapter(options.pubClient, options.subClient, { key: options.keys.adapter }),
    });
    if (!options.sharded)
      this.ticks = new TickBroadcast(
        this.io,
        options.pubClient,
        options.subClient,
        `${options.keys.adapter}-ticks`,
        logger,
        options.deliveries,
      );
    // Every connection's outbound buffer is bounded, whatever writes to it (broadcasts, replays, acks, pings).
    // Engine.IO connections, not namespace sockets: the namespaces of one client share its connection.
    const outbound = new OutboundGuard(options.maxSocketBufferBytes, options.slowConsumerTimeoutMs, metrics, logger);
    outbound.install(this.io.engine);
    // A connection over its buffer gets no live events until it drains; then each of its sockets is sent, from the
    // log, what it missed in each room, and goes live again. Readers fall behind; they are never dropped for it.
    const behind = new BehindConnections();
    outbound.onCaughtUp = (conn) => behind.resume(conn);
    const replayPages = new Semaphore(REPLAY_PAGES_IN_FLIGHT);
    const auth = handshakeAuth(options.verifyToken, metrics, logger);
    const quota = connectionQuota(options.connections, metrics);
    const notRevoked = handshakeNotRevoked(options.isRevoked, metrics, logger);
    const gate = {
      socketEventsPerSecond: options.socketEventsPerSecond,
      workerEventsPerSecond: options.workerEventsPerSecond,
      metrics,
      logger,
    };
    // The main namespace serves nothing; it still demands a token so it cannot be used anonymously, and its sockets
    // count against the tenant's connections like any other.
    this.io.use(auth).use(quota).use(notRevoked);
    this.io.on("connection", (socket) => gateInboundEvents(socket, gate));
    const expiries = (this.expiries = new TokenExpiries(options.clockToleranceS, logger));
    for (const name of NAMESPACES) {
      const nsp = this.io.of(`/${name}`);
      nsp.use(auth).use(quota).use(notRevoked);
      const connected = metrics.connectedSockets.labels({ namespace: name });
      const connections = metrics.connections.labels({ namespace: name });
      // Every live event of a room with sockets here passes its feed: once each, in cursor order (room-feed.ts).
      const { pageRows, pageBytes } = replaySizing(options.maxSocketBufferBytes);
      const feeds = new RoomFeeds(nsp, {
        namespace: name,
        eventLog: options.subscriptions.eventLog,
        fairShare: options.subscriptions.fairShare,
        failures: options.subscriptions.failures,
        outbound,
        behind,
        metrics,
        logger,
        maxGap: MAX_REPLAY,
        pageRows,
        pageBytes,
        maxPendingBytes: options.maxSocketBufferBytes,
      });
      this.feeds.push(feeds);
      const rooms = new RoomSubscriptions({ ...options.subscriptions, outbound, replayPages, feeds, namespace: name, metrics, logger });
      const onDisconnect = (): void => {
        connected.dec();
      };
      nsp.on("connection", (socket) => {
        connected.inc();
        connections.inc();
        // `on`, not `once` (a disconnect comes once): `once` wraps the shared listener in new objects per socket.
        socket.on("disconnect", onDisconnect);
        // Debug: one line per socket is too many at info on a node with 10K of them, but is what answers
        // "why did this dashboard drop?" when turned on.
        if (logger.isLevelEnabled("debug")) {
          const who = {
            tenant: socket.data.principal.tenantId,
            sub: socket.data.principal.subject,
            nsp: name,
            sid: socket.id,
            transport: socket.conn.transport.name,
          };
          logger.debug(who, "socket connected");
          socket.once("disconnect", (reason) => logger.debug({ ...who, reason }, "socket disconnected"));
        }
        expiries.watch(socket);
        gateInboundEvents(socket, gate);
        rooms.attach(socket);
        for (const handler of this.handlers.get(name) ?? []) handler(socket);
      });
    }
    // A broadcast this node never received (its pub/sub connection dropped, or a message was lost) shows as a gap
    // at the room's next event; a room that went quiet meanwhile is found here. After a reconnect, at once.
    this.checkTimer = every(options.roomCheckIntervalMs, () => this.checkRooms(options.subscriptions.failures), {
      name: "room head check",
      logger,
    });
    options.subClient.on("ready", () => void this.checkRooms(options.subscriptions.failures));
  }

  /** Reads the heads of the rooms this node has subscribers in; each feed behind its head fills the gap. */
  async checkRooms(failures: SubscriptionDeps["failures"]): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      for (const feeds of this.feeds) await feeds.checkHeads();
    } catch (error) {
      failures.report(error, "could not read the heads of this node's rooms; trying again");
    } finally {
      this.checking = false;
    }
  }

  /** Registers behaviour for every socket that connects to a namespace. */
  onConnection(namespace: NamespaceName, handler: ConnectionHandler): void {
    this.handlers.set(namespace, [...(this.handlers.get(namespace) ?? []), handler]);
  }

  readonly broadcast: Broadcast = (namespace, key, envelope) => {
    if (this.ticks) this.ticks.send(namespace, key, envelope);
    else emitStored(this.io.of(`/${namespace}`).to(key), envelope);
  };

  /**
   * Ends this node's sessions whose token the revocation refuses: each socket, in every namespace, is told
   * `session.revoked` and disconnected (`"io server disconnect"`: socket.io-client does not come back by itself).
   * All are told before any is disconnected, because disconnecting one socket closes its connection, and with it
   * that client's sockets in the other namespaces.
   */
  endRevokedSessions(revocation: Revocation): number {
    const ended: SwitchyardSocket[] = [];
    for (const name of ["", ...NAMESPACES]) {
      for (const socket of this.io.of(`/${name}`).sockets.values()) {
        if (revokes(revocation, socket.data.principal)) ended.push(socket);
      }
    }
    for (const socket of ended) socket.emit("session.revoked", { reason: "token_revoked" });
    for (const socket of ended) socket.disconnect(true);
    return ended.length;
  }

  /** Tells every client to reconnect elsewhere and closes their connections (clients reconnect by themselves). */
  async close(nodeId: string): Promise<void> {
    this.expiries?.stop();
    this.checkTimer.stop();
    for (const name of NAMESPACES) {
      this.io.of(`/${name}`).local.emit("server.shutdown", { node: nodeId, reconnect: true });
    }
    await new Promise<void>((resolve, reject) => {
      // io.close() closes the engine's transports: clients see "transport close" and reconnect by themselves.
      this.io.close(() => resolve()).catch(reject);
    });
  }
}
