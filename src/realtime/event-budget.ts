/** Seconds' worth of refused events a socket may pile up before it counts as flooding. */
export const FLOOD_SECONDS = 10;

export type EventVerdict = "accepted" | "refused" | "flooding";

/**
 * One socket's budget of client → server events: a token bucket of `perSecond` events, refilled at `perSecond`
 * (a burst of one second's worth). Refused events fill a second bucket, which empties at `perSecond` too; once it
 * holds more than FLOOD_SECONDS' worth the socket is flooding. So a client that bursts now and then, or sends a
 * little over its rate, is only refused; one that keeps sending at more than twice its rate, or sends one burst of
 * over ten seconds' worth, is flooding.
 *
 * In the process's memory, not Redis: a socket lives on one node, so its budget needs no sharing, and a check costs
 * no round trip. Created with the socket's first event and gone with the socket.
 */
export class EventBudget {
  private tokens: number;
  private refused = 0;
  private updatedAt = performance.now();

  constructor(private readonly perSecond: number) {
    this.tokens = perSecond;
  }

  take(): EventVerdict {
    const now = performance.now();
    const refill = ((now - this.updatedAt) / 1000) * this.perSecond;
    this.updatedAt = now;
    this.tokens = Math.min(this.perSecond, this.tokens + refill);
    this.refused = Math.max(0, this.refused - refill);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return "accepted";
    }
    this.refused += 1;
    return this.refused > this.perSecond * FLOOD_SECONDS ? "flooding" : "refused";
  }
}
