import type { ErrorBody } from "./errors.js";
import type { TaskReport, TaskReportReply } from "./tasks.js";

/** What every server → client event carries. `room` is the room as the client named it. */
export interface Envelope<T = unknown> {
  id: string;
  type: string;
  room: string;
  cursor: string;
  ts: string;
  data: T;
}

export const EVENT_TYPES = {
  pools: [
    "pool.created",
    "pool.updated",
    "pool.status_changed",
    "pool.scaling",
    "worker.status_changed",
    "task.assigned",
  ],
  tasks: [
    "task.created",
    "task.queued",
    "task.assigned",
    "task.started",
    "task.progress",
    "task.retrying",
    "task.completed",
    "task.failed",
    "task.cancelled",
  ],
  workflows: [
    "workflow.started",
    "workflow.step_completed",
    "workflow.completed",
    "workflow.failed",
    "workflow.cancelled",
  ],
} as const;

export type PoolsEventType = (typeof EVENT_TYPES.pools)[number];
export type TasksEventType = (typeof EVENT_TYPES.tasks)[number];
export type WorkflowsEventType = (typeof EVENT_TYPES.workflows)[number];
export type EventTypeOf<N extends keyof typeof EVENT_TYPES> = (typeof EVENT_TYPES)[N][number];

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

export const WORKER_STATUSES = ["idle", "busy", "error", "draining"] as const;
export type ReportedWorkerStatus = (typeof WORKER_STATUSES)[number];
export type WorkerStatus = ReportedWorkerStatus | "offline";

export interface WorkerStatusReport {
  status: ReportedWorkerStatus;
  detail?: string;
}

/** Sent before the server disconnects a socket on its own initiative. */
export interface SessionExpired {
  reason: "token_expired";
}
export interface ServerShutdown {
  node: string;
  reconnect: true;
}

type EnvelopeListeners<E extends string> = { [K in E]: (envelope: Envelope) => void };
interface SystemEvents {
  "session.expired": (info: SessionExpired) => void;
  "server.shutdown": (info: ServerShutdown) => void;
}

export type PoolsServerEvents = EnvelopeListeners<PoolsEventType> &
  SystemEvents & {
    "worker.welcome": (welcome: WorkerWelcome) => void;
    /** The worker's registration was refused (e.g. its pool does not exist); the server disconnects it. */
    "worker.rejected": (error: ErrorBody) => void;
  };
export type TasksServerEvents = EnvelopeListeners<TasksEventType> & SystemEvents;
export type WorkflowsServerEvents = EnvelopeListeners<WorkflowsEventType> & SystemEvents;

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
}

export interface PoolsClientEvents extends RoomClientEvents {
  "worker.status": (report: WorkerStatusReport, ack: (result: Ack<{ status: WorkerStatus }>) => void) => void;
  "worker.heartbeat": (info: Record<string, unknown> | undefined, ack: (result: Ack<{ ts: string }>) => void) => void;
  "task.report": (report: TaskReport, ack: (result: Ack<TaskReportReply>) => void) => void;
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
