import {
  SwitchyardClient,
  type PoolView,
  type PoolWithWorkersView,
  type ScheduleView,
  type TaskView,
  type WorkflowView,
  type WorkflowWithStepsView,
} from "../../src/client/index.js";
import type { NamespaceName } from "../../src/protocol/namespaces.js";
import { Activity, BUCKET_MS } from "./activity.js";
import { Api, ApiError, SIGN_IN_CODES } from "./api.js";
import { EventFeed } from "./feed.js";
import { ConnectionTracker, follow } from "./live.js";
import { Observable } from "./observable.js";
import { PoolStore } from "./pools-store.js";
import { ScheduleStore } from "./schedules-store.js";
import { TaskQuery } from "./task-query.js";
import { TaskStore } from "./tasks-store.js";
import { can, type Identity } from "./token.js";
import { WorkflowStore } from "./workflows-store.js";

/** Why a session ended: the sign-in screen shows it. */
export interface SessionEnd {
  code: string;
  message: string;
}

interface ConnectFailure extends Error {
  data?: { code?: string; message?: string };
}

interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** How many of each the first screen reads (newest first); later ones arrive as events. */
const SNAPSHOT = { tasks: 200, pools: 100, workflows: 30, schedules: 200 };
const HEARTBEAT_REFRESH_MS = 5000;

/** Problems worth a line on screen that do not end the session (a snapshot that failed, a connection limit). */
export class Notices extends Observable {
  message: string | undefined;

  show(message: string | undefined): void {
    if (message === this.message) return;
    this.message = message;
    this.changed();
  }
}

/**
 * One signed-in tab: a SwitchyardClient per namespace the token may read (all three share one connection to the
 * node), the stores they keep live, and the REST API for snapshots and actions.
 */
export class Session {
  readonly api: Api;
  readonly connection = new ConnectionTracker();
  readonly notices = new Notices();
  readonly tasks = new TaskStore();
  readonly pools = new PoolStore();
  readonly workflows = new WorkflowStore();
  readonly schedules = new ScheduleStore();
  /** The live charts' rolling window (task events and polled queue depth). */
  readonly activity = new Activity();
  readonly feed: EventFeed;
  /** The Tasks view's filter, page and counts: kept while the tab switches views. */
  readonly taskQuery: TaskQuery;
  private readonly clients: SwitchyardClient[] = [];
  private readonly timers: Array<ReturnType<typeof setInterval>> = [];
  private ended = false;

  constructor(
    readonly token: string,
    readonly identity: Identity,
    private readonly onEnd: (end: SessionEnd) => void,
  ) {
    this.api = new Api(token, (error) => this.end({ code: error.code, message: error.message }));
    this.taskQuery = new TaskQuery(this.api, this.tasks);
    this.feed = new EventFeed((namespace) => this.client(namespace), this.connection);
  }

  start(): void {
    const how = { onLoadError: (error: Error) => this.notices.show(`could not load: ${error.message}`), alive: () => !this.ended };
    if (can(this.identity, "tasks:read")) {
      const tasks = this.watch(this.client("tasks"));
      void follow(tasks, "tasks", {
        ...how,
        load: async () => this.tasks.reset((await this.api.get<Page<TaskView>>(`/api/v1/tasks?limit=${SNAPSHOT.tasks}`)).items),
        apply: (event) => {
          this.tasks.apply(event);
          this.activity.observe(event);
        },
      }).catch((error: unknown) => this.failed(error));
      // The same /tasks client follows the schedules too (one socket; the room needs tasks:read as well).
      void follow(tasks, "schedules", {
        ...how,
        load: async () => {
          const page = await this.api.get<Page<ScheduleView>>(`/api/v1/schedules?limit=${SNAPSHOT.schedules}`);
          this.schedules.reset(page.items, page.nextCursor !== null);
        },
        apply: (event) => this.schedules.apply(event),
      }).catch((error: unknown) => this.failed(error));
      this.timers.push(setInterval(() => void this.sampleQueueDepth(), BUCKET_MS));
    }
    if (can(this.identity, "pools:read")) {
      void follow(this.watch(this.client("pools")), "pools", {
        ...how,
        load: async () => this.pools.reset(await this.poolsWithWorkers()),
        apply: (event) => this.pools.apply(event),
      }).catch((error: unknown) => this.failed(error));
      this.timers.push(setInterval(() => void this.refreshHeartbeats(), HEARTBEAT_REFRESH_MS));
    }
    if (can(this.identity, "workflows:read")) {
      void follow(this.watch(this.client("workflows")), "workflows", {
        ...how,
        load: async () => this.workflows.reset(await this.workflowsWithSteps()),
        apply: (event) => this.workflows.apply(event),
      }).catch((error: unknown) => this.failed(error));
    }
  }

  close(): void {
    this.ended = true;
    this.taskQuery.close();
    for (const timer of this.timers) clearInterval(timer);
    this.feed.stop();
    for (const client of this.clients) client.close();
  }

  /** A SwitchyardClient of this tab for a namespace, wired to end the session on a token error (the feed opens its own too). */
  private client<N extends NamespaceName>(namespace: N): SwitchyardClient<N> {
    const client = new SwitchyardClient({ urls: location.origin, namespace, token: this.token });
    client.socket.on("connect_error", (error: ConnectFailure) => {
      const code = error.data?.code;
      if (code && SIGN_IN_CODES.has(code)) this.end({ code, message: error.data?.message ?? error.message });
      else if (code) this.notices.show(`${code}: ${error.data?.message ?? error.message}`);
    });
    client.socket.on("session.expired", () => this.end({ code: "TOKEN_EXPIRED", message: "the token expired: sign in with a new one" }));
    client.socket.on("connect", () => this.notices.show(undefined));
    return client;
  }

  /** The session's own clients: closed with it, and counted by the connection indicator. */
  private watch<N extends NamespaceName>(client: SwitchyardClient<N>): SwitchyardClient<N> {
    this.clients.push(client);
    this.connection.add(client);
    return client;
  }

  private async poolsWithWorkers(): Promise<PoolWithWorkersView[]> {
    const { items } = await this.api.get<Page<PoolView>>(`/api/v1/pools?limit=${SNAPSHOT.pools}`);
    return Promise.all(
      items.map(async (pool) => (await this.api.get<{ pool: PoolWithWorkersView }>(`/api/v1/pools/${encodeURIComponent(pool.id)}`)).pool),
    );
  }

  private async workflowsWithSteps(): Promise<WorkflowWithStepsView[]> {
    const { items } = await this.api.get<Page<WorkflowView>>(`/api/v1/workflows?limit=${SNAPSHOT.workflows}`);
    return Promise.all(
      items.map(
        async (w) => (await this.api.get<{ workflow: WorkflowWithStepsView }>(`/api/v1/workflows/${encodeURIComponent(w.id)}`)).workflow,
      ),
    );
  }

  /** Queue depth for the charts: the tenant's queued tasks, as the node counts them. */
  private async sampleQueueDepth(): Promise<void> {
    this.activity.roll();
    try {
      const { counts } = await this.api.get<{ counts: Record<string, number> }>("/api/v1/tasks/counts");
      this.activity.queueDepth(counts.queued ?? 0);
    } catch {
      // Offline: the indicator says so; the chart shows a gap.
    }
  }

  /** Only pools with a worker that is not offline: nothing else has a heartbeat to show. */
  private async refreshHeartbeats(): Promise<void> {
    const live = this.pools.list().filter((p) => [...p.workers.values()].some((w) => w.status !== "offline"));
    for (const { pool } of live) {
      try {
        this.pools.refreshHeartbeats(
          (await this.api.get<{ pool: PoolWithWorkersView }>(`/api/v1/pools/${encodeURIComponent(pool.id)}`)).pool,
        );
      } catch {
        // The indicator already says when the node is away; the next refresh tries again.
      }
    }
  }

  private failed(error: unknown): void {
    if (this.ended) return;
    const code = (error as ConnectFailure).data?.code;
    if (code !== undefined && SIGN_IN_CODES.has(code)) return; // its connect_error ends the session
    this.notices.show(error instanceof ApiError || error instanceof Error ? error.message : String(error));
  }

  private end(end: SessionEnd): void {
    if (this.ended) return;
    this.close();
    this.onEnd(end);
  }
}
