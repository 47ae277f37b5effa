import type { Logger } from "../../observability/logger.js";

/** What /ready says about this node's Redis beyond "it answers": "not_shared" when it is not the one other nodes use. */
export type PresenceState = "ok" | "not_shared";

/**
 * Whether this node's Redis holds the presence of the workers other nodes hear from. Every heartbeat a node
 * receives renews the worker's presence key in that node's Redis and its `lastHeartbeatAt` in the shared database.
 * A worker another node heard from lately whose key this node cannot see is normal for at most a heartbeat
 * interval (Redis restarted empty: the next heartbeat writes the key again). When, for longer than the heartbeat
 * timeout, this node sees none of the presence keys of the workers other nodes hear from, its Redis is not the
 * one they write to: a wrong REDIS_URL, or an empty Redis started in place of the cluster's. That is logged once
 * when it starts and once when it ends, and /ready reports it.
 */
export class PresenceAgreement {
  private disagreeingSince: number | undefined;
  private state: PresenceState = "ok";

  constructor(
    private readonly logger: Logger,
    private readonly toleranceMs: number,
  ) {}

  get current(): PresenceState {
    return this.state;
  }

  /** After a sweep: how many workers other nodes heard from lately, and how many of their keys this node sees. */
  observe(heardElsewhere: number, visibleHere: number, now = Date.now()): void {
    if (heardElsewhere === 0 || visibleHere > 0) {
      this.disagreeingSince = undefined;
      if (this.state === "not_shared") {
        this.state = "ok";
        this.logger.info("worker presence in this node's Redis agrees with the database again");
      }
      return;
    }
    this.disagreeingSince ??= now;
    if (this.state === "ok" && now - this.disagreeingSince >= this.toleranceMs) {
      this.state = "not_shared";
      this.logger.warn(
        { workers: heardElsewhere, forMs: now - this.disagreeingSince },
        "this node's Redis holds no presence of the workers other nodes hear from: it is probably not the cluster's Redis " +
          "(check REDIS_URL); workers other nodes hear from are not marked offline from here",
      );
    }
  }
}
