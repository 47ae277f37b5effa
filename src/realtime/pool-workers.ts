import { z } from "zod";
import type { Principal } from "../auth/principal.js";
import type { FailureReporter } from "../dependencies/status.js";
import type { TenantFairShare } from "../limits/tenant-fair-share.js";
import type { WorkerService } from "../domains/pools/workers.js";
import type { TaskService } from "../domains/tasks/service.js";
import { jsonProblemError } from "../domains/validation.js";
import { BadRequestError, ForbiddenError, SocketDisconnectedError, toAppError, type AppError } from "../errors.js";
import { findJsonProblem } from "../protocol/json-safety.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { WorkerHello } from "../protocol/events.js";
import { WORKER_STATUSES } from "../protocol/workers.js";
import { ID_PATTERN } from "../protocol/rooms.js";
import { storableText, TaskReportSchema } from "../protocol/schemas.js";
import type { SwitchyardSocket } from "./types.js";
import type { HubPools } from "../worker/hub-pools.js";
import type { TaskRun, TaskRunCancel } from "../protocol/tasks.js";
import { acknowledge } from "./ack.js";

const HelloSchema = z.object({
  id: z.string().regex(ID_PATTERN, "must be 1-128 letters, digits, '_' or '-'"),
  version: z.string().max(64).optional(),
  types: z
    .array(z.string().regex(/^[A-Za-z0-9_.:-]{1,100}$/))
    .max(200)
    .optional(),
});
const CreditSchema = z.object({ credit: z.number().int().min(1).max(1000) });
const RunProgressSchema = z.object({
  taskId: z.string().max(200),
  progress: z.number().min(0).max(100),
  detail: storableText(1000).optional(),
});
// A hub-mode worker's outcome. Its texts are cut and cleaned by the node before they are stored (reportFailure),
// and a result it cannot send is refused there (RESULT_INVALID): nothing a worker says here is refused for its size.
const RunOutcomeSchema = z.union([
  z.object({ taskId: z.string().max(200), result: z.unknown() }).refine((o) => "result" in o, "result is required"),
  z.object({
    taskId: z.string().max(200),
    error: z.object({
      message: z.string(),
      code: z.string().max(64).optional(),
      retryable: z.boolean().optional(),
      stack: z.string().optional(),
    }),
  }),
]);
const StatusSchema = z.object({
  status: z.enum(WORKER_STATUSES),
  detail: storableText(1000).optional(),
  poolId: z.string().max(200).optional(),
});

export interface PoolWorkerDeps {
  workers: WorkerService;
  tasks: TaskService;
  /** Reports take their place in the tenant's share of the node, like its requests. */
  fairShare: TenantFairShare;
  logger: Logger;
  metrics: Metrics;
  failures: FailureReporter;
  /** Jobs through the hub: the node takes BullMQ jobs for workers that grant it credit (hub mode). */
  hub: HubPools;
}

/**
 * Whether a `/pools` socket with this token is a pool worker process. Explicitly `pools:work`: an admin token that
 * happens to carry pool_id is a dashboard, not a worker.
 */
export function isPoolWorker(principal: Principal): boolean {
  return principal.permissions.has("pools:work") && principal.poolId !== undefined;
}

/**
 * The `/pools` side of pool worker processes: registration on connect, `worker.status`, `worker.heartbeat`
 * and `task.report`. Only `pools:work` tokens may speak, and only for the pool and tenant their token names.
 */
export function attachPoolWorker(socket: SwitchyardSocket, deps: PoolWorkerDeps): void {
  const { principal } = socket.data;
  // Dashboards get no worker listeners at all (their worker events are refused by the namespace's catch-all).
  if (!isPoolWorker(principal)) return;
  let hello: WorkerHello | undefined;
  let ready: Promise<void> = Promise.resolve();
  {
    const auth = socket.handshake.auth as { worker?: unknown };
    // The hello is stored (version) like any other payload, so it meets the same input rules first.
    const unsafe = findJsonProblem(auth.worker);
    if (unsafe) {
      reject(socket, jsonProblemError(unsafe, "auth.worker"));
      return;
    }
    const parsed = HelloSchema.safeParse(auth.worker ?? { id: principal.subject.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 128) });
    if (!parsed.success) {
      reject(socket, new BadRequestError("auth.worker must be { id, version?, types? }"));
      return;
    }
    const workerHello = parsed.data;
    hello = workerHello;
    ready = deps.workers.connect(principal, workerHello, socket.id).then(
      (welcome) => void socket.emit("worker.welcome", welcome),
      (error: unknown) => {
        if (!deps.failures.failed(error))
          deps.logger.warn({ tenantId: principal.tenantId, pool: principal.poolId, err: (error as Error).message }, "worker refused");
        reject(socket, toAppError(error));
        throw error;
      },
    );
    ready.catch(() => undefined); // refusal is handled above; requests awaiting `ready` report it themselves
    socket.once("disconnect", () => {
      void deps.workers
        .disconnected(principal.tenantId, workerHello.id, socket.id)
        .catch((error: unknown) => deps.failures.report(error, "could not release worker presence"));
    });
  }

  /** Runs a worker request: waits for the registration, acks the result. */
  const workerOnly = (
    event: "worker.status" | "worker.heartbeat" | "task.report" | "worker.credit" | "task.progress" | "task.done",
    run: (payload: unknown, worker: WorkerHello) => Promise<object>,
  ) => {
    socket.on(event, (...args: unknown[]) =>
      acknowledge(
        args,
        async (payload) => {
          if (!hello) throw new ForbiddenError(`${event} needs a registered worker`);
          await ready;
          return run(payload, hello);
        },
        { logger: deps.logger, metrics: deps.metrics, failures: deps.failures, context: { event } },
      ),
    );
  };

  attachHubJobs(socket, principal, deps, workerOnly);

  workerOnly("worker.status", async (payload, worker) => {
    const input = StatusSchema.safeParse(payload);
    if (!input.success) throw new BadRequestError("worker.status expects { status: idle|busy|error|draining, detail? }");
    if (input.data.poolId !== undefined && input.data.poolId !== principal.poolId) {
      deps.logger.warn(
        { tenantId: principal.tenantId, worker: worker.id, claimed: input.data.poolId.slice(0, 128) },
        "worker tried to report for another pool",
      );
      throw new ForbiddenError("this token may only report for its own pool");
    }
    return { status: await deps.workers.reportStatus(principal, worker.id, socket.id, input.data.status, input.data.detail) };
  });

  workerOnly("worker.heartbeat", async (_payload, worker) => {
    await deps.workers.heartbeat(principal, worker.id, socket.id);
    return { ts: new Date().toISOString() };
  });

  workerOnly("task.report", async (payload, worker) => {
    const report = TaskReportSchema.safeParse(payload);
    if (!report.success) throw new BadRequestError("task.report expects a task report", report.error.issues.slice(0, 5));
    await deps.workers.touch(principal, worker.id, socket.id);
    try {
      return await deps.fairShare.run(
        principal.tenantId,
        () => deps.tasks.applyReport(principal.tenantId, principal.poolId!, report.data),
        false,
      );
    } catch (error) {
      if (error instanceof ForbiddenError) {
        deps.logger.warn(
          { tenantId: principal.tenantId, worker: worker.id, taskId: report.data.taskId },
          "worker reported a task of another pool",
        );
      }
      throw error;
    }
  });
}

/**
 * Hub mode (jobs through the hub): a worker grants credit (`worker.credit`), is sent runs (`task.run`), tells their
 * progress (`task.progress`) and outcome (`task.done`), and is told to stop one (`task.cancel`). The node claims,
 * reports and retries (HubPools); the worker only runs handlers. Its runs go back to the queue if it goes away.
 */
function attachHubJobs(socket: SwitchyardSocket, principal: Principal, deps: PoolWorkerDeps, on: WorkerRequest): void {
  const poolId = principal.poolId!;
  let granted = false;
  on("worker.credit", async (payload, worker) => {
    const input = CreditSchema.safeParse(payload);
    if (!input.success) throw new BadRequestError("worker.credit expects { credit: integer 1-1000 }");
    if (socket.disconnected) throw new SocketDisconnectedError();
    granted = true;
    const channel = {
      workerId: worker.id,
      send: (run: TaskRun) => void socket.emit("task.run", run),
      cancel: (cancel: TaskRunCancel) => void socket.emit("task.cancel", cancel),
    };
    return { credit: deps.hub.grant(principal.tenantId, poolId, socket.id, channel, input.data.credit) };
  });
  on("task.progress", async (payload) => {
    const input = RunProgressSchema.safeParse(payload);
    if (!input.success) throw new BadRequestError("task.progress expects { taskId, progress: 0-100, detail? }");
    const { taskId, progress, detail } = input.data;
    return { accepted: deps.hub.remotes(principal.tenantId, poolId)?.progress(socket.id, taskId, progress, detail) ?? false };
  });
  on("task.done", async (payload) => {
    const input = RunOutcomeSchema.safeParse(payload);
    if (!input.success)
      throw new BadRequestError("task.done expects { taskId, result } or { taskId, error: { message, code?, retryable?, stack? } }");
    return { accepted: deps.hub.remotes(principal.tenantId, poolId)?.done(socket.id, input.data) ?? false };
  });
  socket.once("disconnect", () => {
    if (granted) deps.hub.disconnected(principal.tenantId, poolId, socket.id);
  });
}

type WorkerRequest = (
  event: "worker.status" | "worker.heartbeat" | "task.report" | "worker.credit" | "task.progress" | "task.done",
  run: (payload: unknown, worker: WorkerHello) => Promise<object>,
) => void;

function reject(socket: SwitchyardSocket, error: AppError): void {
  socket.emit("worker.rejected", error.toBody());
  socket.disconnect(true);
}
