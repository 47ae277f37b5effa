/** Worker states, shared by the server, the pool workers and clients (a worker view's `status`, a status report). */
export const WORKER_STATUSES = ["idle", "busy", "error", "draining"] as const;
/** What a worker may report of itself; `offline` is only ever the server's verdict. */
export type ReportedWorkerStatus = (typeof WORKER_STATUSES)[number];
export type WorkerStatus = ReportedWorkerStatus | "offline";
