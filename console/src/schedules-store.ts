import { isEvent, type RoomEvent, type ScheduleView } from "../../src/client/index.js";
import type { Api } from "./api.js";
import { Observable } from "./observable.js";

/** A cron schedule whose due time has passed is read again at most this often (its next time is not announced). */
const REREAD_MS = 5000;

/**
 * The tenant's schedules, as the /tasks room `schedules` tells them (`schedule.created`, `.updated`, `.deleted`),
 * on top of `GET /api/v1/schedules`. Due times are not events: a schedule's `nextRunAt` moves on without one, so
 * `nextRun` projects it for `every` schedules and `refreshDue` reads a cron schedule again once its time passed.
 */
export class ScheduleStore extends Observable {
  readonly byId = new Map<string, ScheduleView>();
  /** Whether the first snapshot is in (before it, the view says it is loading rather than empty). */
  loaded = false;
  /** The snapshot was one page of more: older schedules than it holds exist (the view says so). */
  more = false;
  /** When each cron schedule was last read again because its due time had passed. */
  private readonly reread = new Map<string, number>();

  /** The snapshot replaces everything (first load, or after the room's history was lost). */
  reset(schedules: ScheduleView[], more = false): void {
    this.byId.clear();
    for (const schedule of schedules) this.byId.set(schedule.id, schedule);
    this.loaded = true;
    this.more = more;
    this.changed();
  }

  apply(event: RoomEvent<"tasks">): void {
    if (isEvent(event, "schedule.created") || isEvent(event, "schedule.updated")) {
      this.byId.set(event.data.schedule.id, event.data.schedule);
    } else if (isEvent(event, "schedule.deleted")) {
      this.byId.delete(event.data.schedule.id);
      this.reread.delete(event.data.schedule.id);
    } else return;
    this.changed();
  }

  /** Newest first, as the node lists them. */
  list(): ScheduleView[] {
    return [...this.byId.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
  }

  /**
   * The next due time as of `now`: an `every` schedule's due times are `nextRunAt` plus whole intervals, so a
   * passed one is carried forward here; a cron schedule's is what the node last said (see refreshDue).
   */
  nextRun(schedule: ScheduleView, now: number): number | undefined {
    if (schedule.paused || schedule.nextRunAt === null) return undefined;
    const next = Date.parse(schedule.nextRunAt);
    if (schedule.every === null || next > now) return next;
    return next + Math.ceil((now - next) / schedule.every) * schedule.every;
  }

  /**
   * Reads again (`GET /api/v1/schedules/:id`) the active cron schedules whose due time has passed, each at most
   * every REREAD_MS. Only `nextRunAt` is taken, and only from an answer about the version the store holds: an
   * event is never overtaken by an older read.
   */
  refreshDue(api: Api, now: number): void {
    for (const schedule of this.byId.values()) {
      if (schedule.paused || schedule.cron === null || schedule.nextRunAt === null || Date.parse(schedule.nextRunAt) > now) continue;
      if (now - (this.reread.get(schedule.id) ?? 0) < REREAD_MS) continue;
      this.reread.set(schedule.id, now);
      api.get<{ schedule: ScheduleView }>(`/api/v1/schedules/${encodeURIComponent(schedule.id)}`).then(
        ({ schedule: read }) => {
          const known = this.byId.get(read.id);
          if (!known || known.updatedAt !== read.updatedAt || known.nextRunAt === read.nextRunAt) return;
          this.byId.set(read.id, { ...known, nextRunAt: read.nextRunAt });
          this.changed();
        },
        () => undefined, // gone (its schedule.deleted is on its way) or offline (the indicator says so): tried again later
      );
    }
  }
}
