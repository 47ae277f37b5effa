import type { TaskView } from "../../src/client/index.js";
import type { TaskStatus } from "../../src/protocol/tasks.js";
import type { Api } from "./api.js";
import { Observable } from "./observable.js";
import type { TaskEntry, TaskStore } from "./tasks-store.js";

/** What the Tasks view filters on: each is a parameter of `GET /api/v1/tasks`, answered by the node. */
/** Every filter value is a string (TypeScript types `Object.entries` of an interface as `any`). */
const filterEntries = (filter: TaskFilter): [keyof TaskFilter, string | undefined][] =>
  Object.entries(filter) as [keyof TaskFilter, string | undefined][];

export interface TaskFilter {
  status?: TaskStatus;
  type?: string;
  poolId?: string;
  /** ISO-8601 times. */
  createdAfter?: string;
  createdBefore?: string;
  /** The beginning of a task id. */
  q?: string;
  /** The tasks one schedule made (the Schedules view links here). */
  scheduleId?: string;
}

export interface TaskCounts {
  counts: Partial<Record<TaskStatus, number>>;
  total: number;
}

interface Page {
  items: TaskView[];
  nextCursor: string | null;
}

export const PAGE_SIZE = 50;
/**
 * After a task event, while the view is shown, the counts (and the first page, whose membership a status change
 * may alter) are read again this much later: a burst of events costs one read per interval.
 */
const REFRESH_AFTER_EVENTS_MS = 1000;

/**
 * One page of the node's tasks for a filter, and the exact counts per status for its pool and type: the server
 * filters, counts and pages (keyset cursors), so 100,000 tasks cost the tab one page. The page's rows then follow
 * the live store: a task on the page shows its latest state, and on the first page new tasks that match appear
 * on top as they are created.
 */
export class TaskQuery extends Observable {
  filter: TaskFilter = {};
  /** Cursors of the pages before this one (empty on the first page), and this page's own. */
  private readonly previous: Array<string | undefined> = [];
  private cursor: string | undefined;
  page: TaskView[] = [];
  nextCursor: string | null = null;
  counts: TaskCounts | undefined;
  loading = false;
  loaded = false;
  error: string | undefined;
  private request = 0;
  private countsTimer: ReturnType<typeof setTimeout> | undefined;
  /** Views showing this query: while none is, events cost no reads. */
  private watchers = 0;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly api: Api,
    private readonly store: TaskStore,
  ) {
    super();
    // Counts follow the events: any change of a task may move a count.
    this.unsubscribe = store.subscribe(() => this.refreshSoon());
  }

  /** A view shows the query: the first time it reads the page, later it reads it again (it may be stale). */
  watch(): () => void {
    this.watchers++;
    if (!this.loading) void this.load();
    return () => {
      this.watchers--;
    };
  }

  get pageNumber(): number {
    return this.previous.length + 1;
  }

  setFilter(filter: TaskFilter): Promise<void> {
    // Counts are per status under every other filter: a change of the status alone reads the page alone.
    const { status: _before, ...rest } = this.filter;
    const { status: _after, ...next } = filter;
    const recount = JSON.stringify(rest) !== JSON.stringify(next) || this.counts === undefined;
    this.filter = filter;
    return this.load(recount, [], undefined);
  }

  next(): Promise<void> {
    if (this.nextCursor === null) return Promise.resolve();
    return this.load(false, [...this.previous, this.cursor], this.nextCursor);
  }

  back(): Promise<void> {
    if (this.previous.length === 0) return Promise.resolve();
    return this.load(false, this.previous.slice(0, -1), this.previous.at(-1));
  }

  /**
   * Reads a page (this one again, or the one at `previous`/`cursor`) and, with `withCounts`, the counts. The
   * page number and rows change together once the answer is in, so what is shown is always one page.
   */
  async load(
    withCounts = true,
    previous: Array<string | undefined> = [...this.previous],
    cursor: string | undefined = this.cursor,
    quiet = false,
  ): Promise<void> {
    const request = ++this.request;
    // A refresh in the background does not say "loading" (nor disable the pager) every time events arrive.
    if (!quiet) {
      this.loading = true;
      this.changed();
    }
    try {
      const [page, counts] = await Promise.all([
        this.api.get<Page>(`/api/v1/tasks?${this.query(cursor)}`),
        withCounts ? this.readCounts() : Promise.resolve(this.counts),
      ]);
      if (request !== this.request) return;
      this.previous.splice(0, this.previous.length, ...previous);
      this.cursor = cursor;
      this.page = page.items;
      this.nextCursor = page.nextCursor;
      this.counts = counts;
      this.error = undefined;
      this.loaded = true;
      // Rows read now are as new as anything the store knows: events after this update them.
      this.store.merge(page.items);
    } catch (error) {
      if (request !== this.request) return;
      this.error = (error as Error).message;
    } finally {
      if (request === this.request) {
        this.loading = false;
        this.changed();
      }
    }
  }

  /** What the view shows: the page's tasks at their latest state, plus (on the first page) newer ones that match. */
  rows(): TaskEntry[] {
    const seen = new Set<string>();
    const rows: TaskEntry[] = [];
    for (const task of this.page) {
      seen.add(task.id);
      const live = this.store.byId.get(task.id);
      rows.push(
        live && live.task.updatedAt >= task.updatedAt
          ? live
          : { task, progress: task.status === "completed" ? 100 : null, progressDetail: null },
      );
    }
    if (this.previous.length === 0) {
      // A full page is the newest tasks as the node read them: only tasks created since join it on top (older
      // ones the store knows belong to later pages). A page that is not full holds every match there was.
      const full = this.nextCursor !== null;
      const newest = this.page[0]?.createdAt;
      for (const entry of this.store.list({})) {
        if (seen.has(entry.task.id) || !this.matches(entry.task)) continue;
        if (full && newest !== undefined && entry.task.createdAt <= newest) continue;
        rows.push(entry);
      }
    }
    return rows.sort((a, b) => b.task.createdAt.localeCompare(a.task.createdAt) || b.task.id.localeCompare(a.task.id));
  }

  close(): void {
    this.unsubscribe();
    clearTimeout(this.countsTimer);
  }

  matches(task: TaskView): boolean {
    const f = this.filter;
    return (
      (f.status === undefined || task.status === f.status) &&
      (f.type === undefined || task.type === f.type) &&
      (f.poolId === undefined || task.poolId === f.poolId) &&
      (f.createdAfter === undefined || Date.parse(task.createdAt) > Date.parse(f.createdAfter)) &&
      (f.createdBefore === undefined || Date.parse(task.createdAt) < Date.parse(f.createdBefore)) &&
      (f.q === undefined || task.id.toLowerCase().startsWith(f.q.toLowerCase())) &&
      (f.scheduleId === undefined || task.scheduleId === f.scheduleId)
    );
  }

  private query(cursor: string | undefined): URLSearchParams {
    const query = new URLSearchParams();
    for (const [name, value] of filterEntries(this.filter)) if (value !== undefined && value !== "") query.set(name, value);
    query.set("limit", String(PAGE_SIZE));
    if (cursor !== undefined) query.set("cursor", cursor);
    return query;
  }

  private readCounts(): Promise<TaskCounts> {
    // Every filter but the status: the counts are per status.
    const query = new URLSearchParams();
    for (const [name, value] of filterEntries(this.filter))
      if (name !== "status" && value !== undefined && value !== "") query.set(name, value);
    return this.api.get<TaskCounts>(`/api/v1/tasks/counts?${query}`);
  }

  private refreshSoon(): void {
    if (this.countsTimer !== undefined || this.watchers === 0 || !this.loaded) return;
    this.countsTimer = setTimeout(() => {
      this.countsTimer = undefined;
      if (this.watchers === 0) return;
      // The first page again with the counts (a task may have entered or left the filter); a later page keeps its
      // rows (they follow the store) and only the counts are read.
      if (this.previous.length === 0 && !this.loading) return void this.load(true, [], undefined, true);
      const request = this.request;
      this.readCounts().then(
        (counts) => {
          if (request !== this.request) return;
          this.counts = counts;
          this.changed();
        },
        () => undefined,
      );
    }, REFRESH_AFTER_EVENTS_MS);
  }
}
