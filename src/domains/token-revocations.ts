import type { RedisClient } from "../jobs/redis-connection.js";
import { z } from "zod";
import type { Principal } from "../auth/principal.js";
import { parseRevocationMember, revocationMember, RevocationList, type Revocation } from "../auth/revocation-list.js";
import { QuotaExceededError, UnavailableError } from "../errors.js";
import type { RedisKeys } from "../jobs/redis-keys.js";
import type { Logger } from "../observability/logger.js";
import { RevokeRequestSchema } from "../protocol/revocations.js";
import { parseInput } from "./validation.js";
import { every, type Periodic } from "../every.js";

export interface TokenRevocationOptions {
  /**
   * How long a revocation is kept: JWT_MAX_LIFETIME_S + JWT_CLOCK_TOLERANCE_S. By then every token it can refuse
   * has expired, because no token is accepted for longer than that after its `iat` (or after any moment, without one).
   */
  retentionMs: number;
  /** MAX_REVOCATIONS_PER_TENANT: a new revocation beyond it is refused (429 QUOTA_EXCEEDED). */
  maxPerTenant: number;
}

/** Every node reads the revocations stored since its last read this often, in case it missed a message (its subscription was down). */
const FOLLOW_INTERVAL_MS = 5000;
/** How long start() waits for the channel subscription before it carries on (Redis may be down at start). */
const SUBSCRIBE_TIMEOUT_MS = 3000;

/** What a node publishes on the revocation channel: the revocation itself. */
const MessageSchema = z.object({
  kind: z.enum(["jti", "sub"]),
  tenantId: z.string().min(1),
  id: z.string().min(1),
  at: z.number().finite(),
});

/** Stream entries read per request when a node follows the revocations. */
const FOLLOW_PAGE = 1000;

/**
 * Token revocations across the cluster. Redis holds them (a stream, see RedisKeys.revocations) and announces each
 * new one on a channel; every node keeps all of them in `list`, loaded at start, kept current by the channel and
 * by following the stream from the last entry it read (every FOLLOW_INTERVAL_MS and after each reconnection), so
 * that verifying a token never waits on Redis, and a node's periodic read costs what is new, not what is held.
 * Listeners hear of every revocation this node learns, whichever way, once.
 */
export class TokenRevocations {
  readonly list = new RevocationList();
  private readonly listeners: Array<(revocation: Revocation) => void> = [];
  private timer: Periodic | undefined;
  /** The id of the last stream entry this node read; undefined before the first read. */
  private lastId: string | undefined;
  private following: Promise<void> | undefined;
  private followFailing = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly subscriber: RedisClient,
    private readonly keys: RedisKeys,
    private readonly logger: Logger,
    private readonly options: TokenRevocationOptions,
  ) {}

  onRevoked(listener: (revocation: Revocation) => void): void {
    this.listeners.push(listener);
  }

  /**
   * Revokes `{ jti }` or `{ sub }` in the principal's tenant. Stored, trimmed and announced in one transaction, so
   * a revocation is never announced without being stored; once this resolves, this node refuses the token too.
   */
  async revoke(principal: Principal, body: unknown): Promise<Revocation> {
    const request = parseInput(RevokeRequestSchema, body);
    const revocation: Revocation =
      request.jti !== undefined
        ? { kind: "jti", tenantId: principal.tenantId, id: request.jti, at: Date.now() }
        : { kind: "sub", tenantId: principal.tenantId, id: request.sub!, at: Date.now() };
    // Every node holds every revocation in memory and checks each token against them: a tenant's share is
    // capped. Counted from this node's copy (current through the channel and the stream), so requests racing on
    // several nodes may pass the cap by the few they hold in flight, never by more. Revoking again what is
    // already revoked (a subject, to move its time on) takes no new place.
    const max = this.options.maxPerTenant;
    if (!this.list.has(revocation) && this.list.countFor(revocation.tenantId) >= max) {
      throw new QuotaExceededError(
        `this tenant holds ${max} revocations (MAX_REVOCATIONS_PER_TENANT); each lapses when the tokens it can refuse have expired`,
        [{ field: request.jti !== undefined ? "jti" : "sub", message: `at most ${max} revocations per tenant` }],
      );
    }
    let results: Array<[Error | null, unknown]> | null;
    try {
      results = await this.redis
        .multi()
        // Entries older than retention go (MINID, approximately: whole stream nodes at a time, which is cheap);
        // a node skips any that remain. Revoking a subject again adds an entry with the later time.
        .xadd(
          this.keys.revocations,
          "MINID",
          "~",
          String(revocation.at - this.options.retentionMs),
          "*",
          "m",
          revocationMember(revocation),
          "at",
          String(revocation.at),
        )
        .pexpire(this.keys.revocations, this.options.retentionMs)
        .publish(this.keys.tokenRevoked, JSON.stringify(revocation))
        .exec();
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, "cannot store a token revocation");
      throw new UnavailableError("the revocation cannot be stored now (Redis is unavailable); try again");
    }
    const failed = results?.find(([error]) => error !== null)?.[0];
    if (!results || failed) {
      this.logger.warn({ err: failed?.message }, "cannot store a token revocation");
      throw new UnavailableError("the revocation cannot be stored now; try again");
    }
    this.apply(revocation);
    return revocation;
  }

  /** Subscribes to the channel, then loads every stored revocation (in this order, so that none falls between). */
  async start(): Promise<void> {
    const channel = this.keys.tokenRevoked;
    this.subscriber.on("message", (from: string, message: string) => {
      if (from === channel) this.receive(message);
    });
    // After a reconnection the subscription comes back, but what was announced meanwhile did not arrive: read it.
    this.subscriber.on("ready", () => void this.follow());
    let waiting: NodeJS.Timeout | undefined;
    await Promise.race([
      this.subscribe(channel).catch((error: unknown) => this.logger.warn({ err: error }, "cannot subscribe to token revocations")),
      new Promise<void>((resolve) => (waiting = setTimeout(resolve, SUBSCRIBE_TIMEOUT_MS))),
    ]);
    clearTimeout(waiting);
    await this.loadLegacy();
    await this.follow();
    this.timer = every(FOLLOW_INTERVAL_MS, () => this.follow(), { name: "revocation follow", logger: this.logger });
  }

  /**
   * ioredis writes SUBSCRIBE on a connection that is still running its ready check (SUBSCRIBE is allowed while
   * Redis loads), and the check's INFO then fails in subscriber mode, leaving the connection deaf. So it waits
   * for `ready`; ioredis itself subscribes again after every reconnection.
   */
  private async subscribe(channel: string): Promise<void> {
    // Not events.once(): it rejects on the first "error", and a Redis that is down at start emits those until it is up.
    if (this.subscriber.status !== "ready") await new Promise((resolve) => this.subscriber.once("ready", resolve));
    await this.subscriber.subscribe(channel);
  }

  async stop(): Promise<void> {
    this.timer?.stop();
    await this.subscriber.quit().catch(() => undefined);
  }

  private receive(message: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(message);
    } catch {
      parsed = undefined;
    }
    const revocation = MessageSchema.safeParse(parsed);
    if (revocation.success) this.apply(revocation.data);
    else this.logger.warn({ message: message.slice(0, 200) }, "malformed token revocation message");
  }

  private apply(revocation: Revocation): void {
    if (!this.list.add(revocation)) return;
    for (const listener of this.listeners) {
      try {
        listener(revocation);
      } catch (error) {
        this.logger.error({ err: error }, "token revocation listener failed");
      }
    }
  }

  /**
   * Reads the stream's entries after the last one this node read (all of them, the first time), and forgets the
   * revocations past retention. One read at a time; never throws.
   */
  private follow(): Promise<void> {
    this.following ??= this.readNew().finally(() => (this.following = undefined));
    return this.following;
  }

  private async readNew(): Promise<void> {
    const cutoff = Date.now() - this.options.retentionMs;
    try {
      for (;;) {
        // "(" + id: strictly after it. Redis numbers entries increasingly, so nothing stored later is behind lastId.
        const start = this.lastId === undefined ? "-" : `(${this.lastId}`;
        const entries = await this.redis.xrange(this.keys.revocations, start, "+", "COUNT", FOLLOW_PAGE);
        for (const [id, fields] of entries) {
          const revocation = parseEntry(fields);
          if (revocation && revocation.at >= cutoff) this.apply(revocation);
          this.lastId = id;
        }
        if (entries.length < FOLLOW_PAGE) break;
      }
      this.followFailing = false;
    } catch (error) {
      // Once per outage: this runs every few seconds, and Redis being down is reported elsewhere too.
      if (!this.followFailing) this.logger.warn({ err: (error as Error).message }, "cannot read token revocations; retrying");
      this.followFailing = true;
    }
    this.list.forgetBefore(cutoff);
  }

  /** Revocations stored before the stream existed (see RedisKeys.legacyRevokedTokens), read once at start. */
  private async loadLegacy(): Promise<void> {
    const cutoff = Date.now() - this.options.retentionMs;
    try {
      const flat = await this.redis.zrangebyscore(this.keys.legacyRevokedTokens, cutoff, "+inf", "WITHSCORES");
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const revocation = parseRevocationMember(flat[i]!, Number(flat[i + 1]));
        if (revocation) this.apply(revocation);
      }
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, "cannot read revocations stored before the stream");
    }
  }
}

/** A stream entry's fields (`m`, `at`) as a revocation; undefined for anything else. */
function parseEntry(fields: string[]): Revocation | undefined {
  let member: string | undefined;
  let at = Number.NaN;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === "m") member = fields[i + 1];
    else if (fields[i] === "at") at = Number(fields[i + 1]);
  }
  return member === undefined ? undefined : parseRevocationMember(member, at);
}
