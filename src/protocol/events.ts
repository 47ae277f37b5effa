import type { ErrorBody } from "./errors.js";
import type { NamespaceName } from "./namespaces.js";
import type {
  TaskError,
  TaskReport,
  TaskReportReply,
  TaskRun,
  TaskRunCancel,
  TaskRunOutcome,
  TaskRunProgress,
  TaskRunReply,
  TaskStatus,
  WorkerCredit,
} from "./tasks.js";
import type {
  PoolStatusView,
  PoolView,
  ScheduleView,
  TaskEventView,
  TaskView,
  WorkerView,
  WorkflowStepView,
  WorkflowView,
} from "./views.js";
import type { ReportedWorkerStatus, WorkerStatus } from "./workers.js";

/** What every server → client event carries. `room` is the room as the client named it. */
export interface Envelope<T = unknown> {
  id: string;
  type: string;
  room: string;
  cursor: string;
  ts: string;
  data: T;
}

/**
 * The event catalogue: every event type the server sends, the namespaces it is delivered in, and the shape of
 * its `data`. Declared once, here. The publisher is generic over these names (a misspelt name or a wrongly
 * shaped payload does not compile), and the Socket.IO maps below, the server, the worker and the client helper
 * are typed from it. Backends may publish their own types besides these (`POST /api/v1/events`), outside the
 * built-in prefixes.
 */
export interface EventCatalogue {
  "pool.created": { namespaces: "pools"; data: { pool: PoolView } };
  /** `PATCH /api/v1/pools/:id`: the pool after the change, and which fields changed. */
  "pool.updated": {
    namespaces: "pools";
    data: {
      pool: PoolView;
      changed: Array<
        "name" | "description" | "desiredWorkers" | "paused" | "maxConcurrency" | "minWorkers" | "maxWorkers" | "targetQueuedPerWorker"
      >;
    };
  };
  "pool.scaling": { namespaces: "pools"; data: { poolId: string; from: number; to: number; pool: PoolView } };
  "pool.status_changed": { namespaces: "pools"; data: PoolStatusView };
  "worker.status_changed": { namespaces: "pools"; data: { poolId: string; worker: WorkerView; previous: WorkerStatus | null } };
  /** Task events carry the task without `payload` and `result` (TaskEventView), except the event about each. */
  "task.created": { namespaces: "tasks"; data: { task: TaskEventView & Pick<TaskView, "payload"> } };
  /** `requeued` when the reconciler put the task back on its queue because its job was lost. */
  "task.queued": { namespaces: "tasks"; data: { task: TaskEventView; requeued?: true; reason?: string } };
  /** Also delivered to `pool:<poolId>` in /pools, with the same id: who took what. */
  "task.assigned": { namespaces: "tasks" | "pools"; data: { task: TaskEventView } };
  "task.started": { namespaces: "tasks"; data: { task: TaskEventView } };
  /** An operator retried a failed or cancelled task (`POST /api/v1/tasks/:id/retry`); task.queued follows. */
  "task.retried": { namespaces: "tasks"; data: { task: TaskEventView } };
  "task.progress": { namespaces: "tasks"; data: { taskId: string; status: TaskStatus; progress: number; detail: string | null } };
  "task.retrying": { namespaces: "tasks"; data: { task: TaskEventView; nextAttemptInMs: number } };
  "task.completed": { namespaces: "tasks"; data: { task: TaskEventView & Pick<TaskView, "result"> } };
  "task.failed": { namespaces: "tasks"; data: { task: TaskEventView } };
  "task.cancelled": { namespaces: "tasks"; data: { task: TaskEventView } };
  /** Schedules (`/api/v1/schedules`), in the /tasks room `schedules`. */
  "schedule.created": { namespaces: "tasks"; data: { schedule: ScheduleView } };
  /** The schedule after the change, and which fields changed (`paused` covers pausing and resuming). */
  "schedule.updated": {
    namespaces: "tasks";
    data: { schedule: ScheduleView; changed: Array<"paused" | "every" | "cron" | "timezone" | "task"> };
  };
  /** The schedule as it was when it was deleted (`nextRunAt` null: it never runs again). */
  "schedule.deleted": { namespaces: "tasks"; data: { schedule: ScheduleView } };
  "workflow.started": { namespaces: "workflows"; data: { workflow: WorkflowView; steps: WorkflowStepView[] } };
  "workflow.step_completed": { namespaces: "workflows"; data: { workflow: WorkflowView; step: string; taskId: string; result: unknown } };
  "workflow.completed": { namespaces: "workflows"; data: { workflow: WorkflowView } };
  "workflow.failed": { namespaces: "workflows"; data: { workflow: WorkflowView; step: string; taskId: string; error: TaskError | null } };
  "workflow.cancelled": { namespaces: "workflows"; data: { workflow: WorkflowView } };
}

export type EventName = keyof EventCatalogue;
export type EventData<K extends EventName> = EventCatalogue[K]["data"];
export type EventNamespaces<K extends EventName> = EventCatalogue[K]["namespaces"];
/** The built-in events delivered in one namespace. */
export type EventsOf<N extends NamespaceName> = { [K in EventName]: N extends EventNamespaces<K> ? K : never }[EventName];
/** A built-in event's envelope, `type` narrowed to its name. */
export type EventEnvelope<K extends EventName> = Envelope<EventData<K>> & { type: K };

/** An envelope of a room of namespace N: one of its built-in events, or an event a backend published. */
export type RoomEvent<N extends NamespaceName = NamespaceName> = { [K in EventsOf<N>]: EventEnvelope<K> }[EventsOf<N>] | Envelope;

/** Narrows an envelope to a built-in event: `if (isEvent(e, "task.completed")) e.data.task.result`. */
export function isEvent<K extends EventName>(envelope: Envelope, type: K): envelope is EventEnvelope<K> {
  return envelope.type === type;
}

export interface SubscribeRequest {
  room: string;
  after?: string;
}
export interface UnsubscribeRequest {
  room: string;
}
export type Ack<T extends object> = (T & { ok: true }) | { ok: false; error: ErrorBody };
export type SubscribeAck = Ack<{ room: string; cursor: string; replayed?: number }>;
export type UnsubscribeAck = Ack<{ room: string }>;

export interface WorkerStatusReport {
  status: ReportedWorkerStatus;
  detail?: string;
}

/** Sent before the server disconnects a socket on its own initiative. */
export interface SessionExpired {
  reason: "token_expired";
}
/** Sent before the server disconnects a socket whose token was revoked (`POST /api/v1/tokens/revoke`). */
export interface SessionRevoked {
  reason: "token_revoked";
}
export interface ServerShutdown {
  node: string;
  reconnect: true;
}

/** One listener per built-in event of a namespace, each receiving its typed envelope. */
type EnvelopeListeners<N extends NamespaceName> = { [K in EventsOf<N>]: (envelope: EventEnvelope<K>) => void };
interface SystemEvents {
  "session.expired": (info: SessionExpired) => void;
  "session.revoked": (info: SessionRevoked) => void;
  "server.shutdown": (info: ServerShutdown) => void;
}

export type PoolsServerEvents = EnvelopeListeners<"pools"> &
  SystemEvents & {
    "worker.welcome": (welcome: WorkerWelcome) => void;
    /** The worker's registration was refused (e.g. its pool does not exist); the server disconnects it. */
    "worker.rejected": (error: ErrorBody) => void;
    /** Hub mode: a job to run (the worker granted credit for it). */
    "task.run": (run: TaskRun) => void;
    /** Hub mode: stop running this task (its result is no longer wanted). */
    "task.cancel": (cancel: TaskRunCancel) => void;
  };
export type TasksServerEvents = EnvelopeListeners<"tasks"> & SystemEvents;
export type WorkflowsServerEvents = EnvelopeListeners<"workflows"> & SystemEvents;

export interface RoomClientEvents {
  subscribe: (request: SubscribeRequest, ack: (result: SubscribeAck) => void) => void;
  unsubscribe: (request: UnsubscribeRequest, ack: (result: UnsubscribeAck) => void) => void;
}

/** What a pool worker process sends in its handshake, next to its token: `auth: { token, worker }`. */
export interface WorkerHello {
  /** Stable for the life of the worker process, and across its reconnections. */
  id: string;
  version?: string;
  /** Task types this worker can run besides the built-ins. */
  types?: string[];
}

/** Sent to a pool worker when it connects: how often the server expects to hear from it. */
export interface WorkerWelcome {
  workerId: string;
  poolId: string;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  /** The largest message the node takes (MAX_PAYLOAD_BYTES): a bigger report would cut the connection. */
  maxPayloadBytes: number;
}

export interface PoolsClientEvents extends RoomClientEvents {
  "worker.status": (report: WorkerStatusReport, ack: (result: Ack<{ status: WorkerStatus }>) => void) => void;
  "worker.heartbeat": (info: Record<string, unknown> | undefined, ack: (result: Ack<{ ts: string }>) => void) => void;
  "task.report": (report: TaskReport, ack: (result: Ack<TaskReportReply>) => void) => void;
  /** Hub mode: the worker is ready for `credit` more jobs. */
  "worker.credit": (credit: WorkerCredit, ack: (result: Ack<{ credit: number }>) => void) => void;
  "task.progress": (progress: TaskRunProgress, ack: (result: Ack<TaskRunReply>) => void) => void;
  "task.done": (outcome: TaskRunOutcome, ack: (result: Ack<TaskRunReply>) => void) => void;
}

/** Server → client event maps by namespace (Socket.IO's typed-events generics). */
export interface ServerEventsByNamespace {
  pools: PoolsServerEvents;
  tasks: TasksServerEvents;
  workflows: WorkflowsServerEvents;
}
export interface ClientEventsByNamespace {
  pools: PoolsClientEvents;
  tasks: RoomClientEvents;
  workflows: RoomClientEvents;
}
