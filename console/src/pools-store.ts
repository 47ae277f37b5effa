import {
  isEvent,
  type PoolStatusView,
  type PoolView,
  type PoolWithWorkersView,
  type RoomEvent,
  type WorkerView,
} from "../../src/client/index.js";
import { Observable } from "./observable.js";

export interface PoolEntry {
  pool: PoolView;
  workers: Map<string, WorkerView>;
  /** The last pool.status_changed: counts by status and the queue's depth (none until one arrives). */
  status: PoolStatusView | undefined;
}

/** The tenant's pools and their workers, as the `pools` room tells them, on top of `GET /api/v1/pools/:id`. */
export class PoolStore extends Observable {
  readonly byId = new Map<string, PoolEntry>();

  reset(pools: PoolWithWorkersView[]): void {
    this.byId.clear();
    for (const { workers, ...pool } of pools)
      this.byId.set(pool.id, { pool, workers: new Map(workers.map((w) => [w.id, w])), status: undefined });
    this.changed();
  }

  apply(event: RoomEvent<"pools">): void {
    if (isEvent(event, "pool.created") || isEvent(event, "pool.updated") || isEvent(event, "pool.scaling")) {
      this.entry(event.data.pool).pool = event.data.pool;
    } else if (isEvent(event, "pool.status_changed")) {
      const entry = this.byId.get(event.data.poolId);
      if (entry) entry.status = event.data;
    } else if (isEvent(event, "worker.status_changed")) {
      const entry = this.byId.get(event.data.poolId);
      if (entry) entry.workers.set(event.data.worker.id, event.data.worker);
    } else return;
    this.changed();
  }

  /**
   * Heartbeats are not events (they would flood every dashboard), so their times are read again now and then;
   * only the time is taken, the status stays what the events said.
   */
  refreshHeartbeats(pool: PoolWithWorkersView): void {
    const entry = this.byId.get(pool.id);
    if (!entry) return;
    let moved = false;
    for (const worker of pool.workers) {
      const known = entry.workers.get(worker.id);
      if (known && worker.lastHeartbeatAt > known.lastHeartbeatAt) {
        entry.workers.set(worker.id, { ...known, lastHeartbeatAt: worker.lastHeartbeatAt });
        moved = true;
      }
    }
    if (moved) this.changed();
  }

  list(): PoolEntry[] {
    return [...this.byId.values()].sort((a, b) =>
      a.pool.id === "default" ? -1 : b.pool.id === "default" ? 1 : a.pool.createdAt.localeCompare(b.pool.createdAt),
    );
  }

  private entry(pool: PoolView): PoolEntry {
    let entry = this.byId.get(pool.id);
    if (!entry) {
      entry = { pool, workers: new Map(), status: undefined };
      this.byId.set(pool.id, entry);
    }
    return entry;
  }
}
