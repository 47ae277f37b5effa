import type { SwitchyardSocket } from "./types.js";
import { every, type Periodic } from "../every.js";
import type { Logger } from "../observability/logger.js";

/**
 * Ends sockets whose token has expired, for a whole node with one timer: sockets are kept in one bucket per
 * second of expiry, and a tick every second ends the buckets that are due. One `setTimeout` (with its closures and
 * a disconnect listener of its own) per socket cost about 0.5 KiB of heap per idle socket; here a socket costs one
 * entry in a Set, and every socket shares the same disconnect listener. A socket is ended at most a second after
 * its expiry, which the clock tolerance already allows for.
 *
 * The token counts as expired where the verifier would refuse it: `toleranceS` (JWT_CLOCK_TOLERANCE_S) after
 * `exp`, or a token admitted within the tolerance would be dropped at once.
 */
export class TokenExpiries {
  private readonly buckets = new Map<number, Set<SwitchyardSocket>>();
  private timer: Periodic | undefined;
  private readonly forget: (this: SwitchyardSocket) => void;

  constructor(
    private readonly toleranceS: number,
    private readonly logger: Logger,
  ) {
    const self = this;
    // One listener for every socket: Socket.IO calls it with the socket as `this`.
    this.forget = function (this: SwitchyardSocket) {
      self.remove(this);
    };
  }

  /** The second (since the epoch) in which the socket's token stops being accepted. */
  private secondOf(socket: SwitchyardSocket): number {
    return Math.ceil(socket.data.principal.expiresAt + this.toleranceS);
  }

  watch(socket: SwitchyardSocket): void {
    // A bucket already past (a token admitted at the very end of its tolerance) is ended on the next tick.
    this.bucket(this.secondOf(socket)).add(socket);
    // `on`, not `once` (a disconnect comes once): `once` would wrap the shared listener in new objects per socket.
    socket.on("disconnect", this.forget);
    this.timer ??= every(1000, () => this.sweep(Math.floor(Date.now() / 1000)), { name: "token expiry sweep", logger: this.logger });
  }

  private bucket(second: number): Set<SwitchyardSocket> {
    let sockets = this.buckets.get(second);
    if (!sockets) this.buckets.set(second, (sockets = new Set()));
    return sockets;
  }

  private remove(socket: SwitchyardSocket): void {
    const second = this.secondOf(socket);
    const sockets = this.buckets.get(second);
    if (!sockets) return;
    sockets.delete(socket);
    if (sockets.size === 0) this.buckets.delete(second);
  }

  /** Ends every socket whose bucket is at or before `now` (seconds). */
  sweep(now: number): void {
    const due: SwitchyardSocket[] = [];
    for (const [second, sockets] of this.buckets) {
      if (second > now) continue;
      due.push(...sockets);
      this.buckets.delete(second);
    }
    for (const socket of due) {
      socket.off("disconnect", this.forget);
      socket.emit("session.expired", { reason: "token_expired" });
      socket.disconnect(true);
    }
  }

  stop(): void {
    this.timer?.stop();
    this.timer = undefined;
  }
}
