import type { Cluster, Redis } from "ioredis";
import type pg from "pg";
import { unavailableDependency, type Dependency } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import { withDeadline } from "./deadline.js";
import { every, type Periodic } from "../every.js";

/** Where failed calls are told, so that an outage is logged once however many calls it fails. */
export interface FailureReporter {
  /**
   * Records a failure that shows a dependency to be unavailable (logged once per change of the connection's
   * state); returns that dependency, or undefined for any other error, which the caller logs as it sees fit.
   * `connection` names the connection that failed (by default: Redis commands, the PostgreSQL pool).
   */
  failed(error: unknown, connection?: string): Dependency | undefined;
  /**
   * For work nobody waits for (timers, retries, fire-and-forget calls): an unavailable dependency is recorded as by
   * `failed`, anything else is logged as a warning under `message`.
   */
  report(error: unknown, message: string, fields?: Record<string, unknown>, connection?: string): Dependency | undefined;
}

/** The connection a failure is charged to when the caller does not name one. */
const DEFAULT_CONNECTION: Record<Dependency, string> = { redis: "commands", postgresql: "pool" };

interface Connection {
  dependency: Dependency;
  name: string;
  /** Unknown (undefined) until it first connects or fails. */
  up: boolean | undefined;
  downSince: number;
  /**
   * Asks the server whether it answers again; undefined when there is nothing to ask now because the driver
   * reports the comeback itself (ioredis emits `ready` after a reconnect).
   */
  probe: () => Promise<unknown> | undefined;
  probing: Periodic | undefined;
}

/** How often a connection marked down while its driver says it is connected is asked whether it answers again. */
const PROBE_INTERVAL_MS = 1000;

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The state of every Redis and PostgreSQL connection of a process, from the drivers' events and from the calls
 * that failed. Each connection is logged once when it goes down ("redis unavailable") and once when it is back
 * ("redis available again"), never once per retry or per failed request. A connection marked down by a failed
 * call while its driver still thinks it is connected (a server that accepts but does not answer) is probed until
 * it answers again.
 */
export class DependencyStatus implements FailureReporter {
  private readonly connections = new Map<string, Connection>();
  private stopped = false;

  constructor(
    private readonly logger: Logger,
    private readonly options: { deadlineMs: number },
  ) {}

  /** Follows an ioredis client under `name`. It is also the client's `error` listener, so ioredis never prints "Unhandled error event". */
  watchRedis(client: Redis | Cluster, name: string): void {
    // A client that is not ready is reconnecting: its `ready` event will say when it is back.
    const connection = this.connection("redis", name, () => (client.status === "ready" ? client.ping() : undefined));
    client.on("error", (error: Error) => this.down(connection, error));
    client.on("close", () => this.down(connection, new Error("connection closed")));
    client.on("ready", () => this.up(connection));
  }

  /** Follows a node-postgres pool (Prisma runs on it too): idle connections that fail, new ones that succeed. */
  watchPool(pool: pg.Pool, name = DEFAULT_CONNECTION.postgresql): void {
    const connection = this.connection("postgresql", name, () => pool.query("SELECT 1"));
    pool.on("error", (error: Error) => this.down(connection, error));
    pool.on("connect", () => this.up(connection));
  }

  failed(error: unknown, connectionName?: string): Dependency | undefined {
    // A socket error (ECONNREFUSED…) names no dependency; a named connection does.
    const named = connectionName === undefined ? undefined : [...this.connections.values()].find((c) => c.name === connectionName);
    const dependency = unavailableDependency(error, named?.dependency);
    if (!dependency) return undefined;
    const name = connectionName ?? DEFAULT_CONNECTION[dependency];
    this.down(this.connections.get(`${dependency}:${name}`) ?? this.connection(dependency, name, () => undefined), error);
    return dependency;
  }

  report(error: unknown, message: string, fields: Record<string, unknown> = {}, connectionName?: string): Dependency | undefined {
    const dependency = this.failed(error, connectionName);
    if (!dependency) this.logger.warn({ ...fields, err: errorText(error) }, message);
    return dependency;
  }

  /** False while a connection of the dependency (or the named one) is known to be down. */
  isUp(dependency: Dependency, connectionName?: string): boolean {
    for (const connection of this.connections.values()) {
      if (connection.dependency !== dependency || (connectionName !== undefined && connection.name !== connectionName)) continue;
      if (connection.up === false) return false;
    }
    return true;
  }

  /** Shutting down: connections are being closed on purpose, so their state is neither logged nor probed any more. */
  stop(): void {
    this.stopped = true;
    for (const connection of this.connections.values()) this.stopProbing(connection);
  }

  private connection(dependency: Dependency, name: string, probe: Connection["probe"]): Connection {
    const connection: Connection = { dependency, name, up: undefined, downSince: 0, probe, probing: undefined };
    this.connections.set(`${dependency}:${name}`, connection);
    return connection;
  }

  private down(connection: Connection, error: unknown): void {
    if (this.stopped || connection.up === false) return;
    connection.up = false;
    connection.downSince = Date.now();
    this.logger.warn(
      { dependency: connection.dependency, connection: connection.name, err: errorText(error) },
      `${connection.dependency} unavailable`,
    );
    this.startProbing(connection);
  }

  private up(connection: Connection): void {
    this.stopProbing(connection);
    if (connection.up === false && !this.stopped) {
      this.logger.info(
        { dependency: connection.dependency, connection: connection.name, downForMs: Date.now() - connection.downSince },
        `${connection.dependency} available again`,
      );
    }
    connection.up = true;
  }

  private startProbing(connection: Connection): void {
    if (connection.probing) return;
    connection.probing = every(
      PROBE_INTERVAL_MS,
      () => {
        const answer = connection.probe();
        if (!answer) return;
        return withDeadline(answer, this.options.deadlineMs, connection.dependency).then(() => this.up(connection));
      },
      // Still down: the outage is logged already, and the next probe asks again.
      { name: `${connection.name} probe`, onError: () => undefined },
    );
  }

  private stopProbing(connection: Connection): void {
    connection.probing?.stop();
    connection.probing = undefined;
  }
}
