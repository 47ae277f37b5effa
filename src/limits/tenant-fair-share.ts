import { RateLimitedError } from "../errors.js";

/** Requests of one tenant waiting for its turn on one node at most; beyond, 429 (they would only wait longer). */
export const MAX_WAITING_REQUESTS_PER_TENANT = 1000;

/** One piece of work waiting for its tenant's turn: starts it. */
type Waiter = () => void;

/**
 * A node's database-bound work (REST requests, task reports, replay reads), shared fairly among tenants. At most
 * `capacity` pieces run at once, at most `perTenant` of one tenant while others wait; a tenant alone may use all
 * places but the last `perTenant`, kept free for another tenant's share (see mayStart). The rest wait in their
 * tenant's own queue, and when a piece ends the next one to
 * start is taken from the tenants in turn (round robin), those under their share first, not first come. So a
 * tenant that floods the node waits on its own work, while another tenant's request starts at the next free
 * place: the database pool behind these (10 connections) is never filled by one tenant's backlog.
 *
 * It counts pieces, not their cost: a request that waits on something slow holds its place meanwhile. That is
 * what bounds a tenant's share of connections and memory as well as of the database.
 */
export class TenantFairShare {
  private running = 0;
  private waiting = 0;
  private readonly runningFor = new Map<string, number>();
  /** Tenants with waiting work, in turn order: the next to be served is the first with room under perTenant. */
  private readonly queues = new Map<string, Waiter[]>();

  constructor(
    readonly capacity: number,
    readonly perTenant: number,
    /** A tenant with this many pieces waiting is refused more (429), rather than queueing without bound. */
    readonly maxWaitingPerTenant: number,
    private readonly onChange: (running: number, waiting: number) => void = () => undefined,
  ) {}

  /**
   * Runs `work` once the tenant's turn comes. With `bounded` (requests), RATE_LIMITED when the tenant already has
   * maxWaitingPerTenant pieces waiting; task reports are never refused (they are bounded by the jobs running).
   */
  async run<T>(tenantId: string, work: () => Promise<T>, bounded = true): Promise<T> {
    await this.admit(tenantId, bounded);
    try {
      return await work();
    } finally {
      this.done(tenantId);
    }
  }

  /** Resolves when the piece may start; the caller must call `done` exactly once after. */
  admit(tenantId: string, bounded = true): Promise<void> | void {
    if (!this.queues.has(tenantId) && this.mayStart(tenantId, this.queues.size > 0)) {
      this.begin(tenantId);
      return;
    }
    const queue = this.queues.get(tenantId) ?? [];
    if (bounded && queue.length >= this.maxWaitingPerTenant) {
      throw new RateLimitedError(`this tenant has ${this.maxWaitingPerTenant} requests waiting on this node already; retry shortly`);
    }
    return new Promise<void>((resolve) => {
      queue.push(resolve);
      if (!this.queues.has(tenantId)) this.queues.set(tenantId, queue);
      this.waiting++;
      this.onChange(this.running, this.waiting);
    });
  }

  done(tenantId: string): void {
    this.running--;
    const left = (this.runningFor.get(tenantId) ?? 1) - 1;
    if (left > 0) this.runningFor.set(tenantId, left);
    else this.runningFor.delete(tenantId);
    this.dispatch();
    this.onChange(this.running, this.waiting);
  }

  /**
   * Whether a piece of this tenant may start now. Within its share, while there is a place. Over it, only when no
   * tenant within its share waits (`othersWaiting` false), and only into the places beyond the last `perTenant`:
   * those stay free for another tenant's share, so a tenant alone on the node may use most of it, and another
   * tenant's first requests still start at once.
   */
  private mayStart(tenantId: string, othersWaiting: boolean): boolean {
    if (this.running >= this.capacity) return false;
    if ((this.runningFor.get(tenantId) ?? 0) < this.perTenant) return true;
    return !othersWaiting && this.running < this.capacity - this.perTenant;
  }

  private begin(tenantId: string): void {
    this.running++;
    this.runningFor.set(tenantId, (this.runningFor.get(tenantId) ?? 0) + 1);
  }

  /**
   * Starts waiting pieces while there is room, one per tenant per turn: first the tenants under their share; a
   * tenant over it only when every tenant waiting is over it too, and only into the places not kept for a share.
   */
  private dispatch(): void {
    let progress = true;
    while (this.running < this.capacity && this.queues.size > 0 && progress) {
      progress = false;
      const anyWithinShare = [...this.queues.keys()].some((tenantId) => (this.runningFor.get(tenantId) ?? 0) < this.perTenant);
      for (const [tenantId, queue] of this.queues) {
        if (this.running >= this.capacity) break;
        if (!this.mayStart(tenantId, anyWithinShare)) continue;
        const next = queue.shift()!;
        this.waiting--;
        // To the back of the turn order: the others go first next time.
        this.queues.delete(tenantId);
        if (queue.length > 0) this.queues.set(tenantId, queue);
        this.begin(tenantId);
        next();
        progress = true;
      }
    }
  }

  get stats(): { running: number; waiting: number; tenantsWaiting: number } {
    return { running: this.running, waiting: this.waiting, tenantsWaiting: this.queues.size };
  }
}
