import type { TaskRun, TaskRunCancel, TaskRunOutcome } from "../protocol/tasks.js";
import type { TaskContext } from "./handlers.js";

/** The node's side of one hub-mode worker connection: how to hand it a run, and how to take one back. */
export interface RemoteChannel {
  readonly workerId: string;
  send(run: TaskRun): void;
  cancel(cancel: TaskRunCancel): void;
}

/** A worker that can run one task now (it granted the credit): PoolWorker claims the task in its name, then runs it. */
export interface Executor {
  readonly workerId: string;
  run(job: TaskRun, context: TaskContext): Promise<unknown>;
  /** The job was not run after all (cancelled meanwhile, or claimed elsewhere): the worker's credit comes back. */
  release(): void;
}

/** Where PoolWorker finds an executor for each job it takes (hub mode); null when none came in time. */
export interface Executors {
  take(signal: AbortSignal): Promise<Executor | null>;
}

/** The worker running a task went away mid-run: the job goes back to its queue for another worker (no attempt failed). */
export class WorkerLostError extends Error {
  constructor(workerId: string) {
    super(`worker ${workerId} went away while running the task`);
  }
}

/** A run's error as the worker described it: PoolWorker reports it (retried unless `retryable` is false). */
export class RemoteTaskError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly code: string | undefined,
    stack: string | undefined,
  ) {
    super(message);
    // The worker's own stack, or none: this node's would point at the hub, not at the failing line.
    this.stack = stack;
  }
}

interface Run {
  resolve(result: unknown): void;
  reject(error: Error): void;
  progress(percent: number, detail?: string): void;
}

interface Remote {
  channel: RemoteChannel;
  credit: number;
  runs: Map<string, Run>;
}

/** How long a job taken from the queue waits for a worker's credit before it goes back (a worker just left). */
const TAKE_WAIT_MS = 5_000;
/**
 * Credit one worker connection holds at most, however often it grants more: what it may have the node take from
 * the queue for it at once (each such job is held in the node's memory and BullMQ's concurrency follows it).
 */
export const MAX_CREDIT = 1_000;

/**
 * The hub-mode workers of one pool connected to this node, with the credit each granted (credit-based flow control:
 * a worker is sent at most as many runs as it said it can take). `capacity` (credit plus runs under way) is what
 * the node's BullMQ worker for the pool may hold at once, so no job is taken from the queue that no worker asked
 * for. A worker that goes away fails its runs with WorkerLostError: their jobs go back to the queue.
 */
export class RemoteWorkers implements Executors {
  private readonly remotes = new Map<string, Remote>();
  private waiters: Array<() => void> = [];
  /** Told whenever the capacity changes. */
  onCapacity: (capacity: number) => void = () => undefined;

  get size(): number {
    return this.remotes.size;
  }

  get capacity(): number {
    let total = 0;
    for (const remote of this.remotes.values()) total += remote.credit + remote.runs.size;
    return total;
  }

  add(connectionId: string, channel: RemoteChannel): void {
    if (!this.remotes.has(connectionId)) this.remotes.set(connectionId, { channel, credit: 0, runs: new Map() });
  }

  /** The worker is ready for `credit` more runs; returns the credit it has now. */
  grant(connectionId: string, credit: number): number {
    const remote = this.remotes.get(connectionId);
    if (!remote) return 0;
    remote.credit = Math.min(MAX_CREDIT, remote.credit + credit);
    this.onCapacity(this.capacity);
    for (const wake of this.waiters.splice(0)) wake();
    return remote.credit;
  }

  /** The connection closed: its runs fail with WorkerLostError (their jobs go back to the queue). */
  remove(connectionId: string): void {
    const remote = this.remotes.get(connectionId);
    if (!remote) return;
    this.remotes.delete(connectionId);
    for (const run of remote.runs.values()) run.reject(new WorkerLostError(remote.channel.workerId));
    remote.runs.clear();
    this.onCapacity(this.capacity);
  }

  async take(signal: AbortSignal, waitMs = TAKE_WAIT_MS): Promise<Executor | null> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const picked = this.pick();
      if (picked) return picked;
      const left = deadline - Date.now();
      if (left <= 0 || signal.aborted) return null;
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          signal.removeEventListener("abort", wake);
          resolve();
        };
        const timer = setTimeout(wake, left);
        signal.addEventListener("abort", wake, { once: true });
        this.waiters.push(wake);
      });
    }
  }

  /** The worker's outcome of a run it holds; false when it holds none by that id (given up, or another node's). */
  done(connectionId: string, outcome: TaskRunOutcome): boolean {
    const run = this.remotes.get(connectionId)?.runs.get(outcome.taskId);
    if (!run) return false;
    if ("result" in outcome) run.resolve(outcome.result);
    else run.reject(new RemoteTaskError(outcome.error.message, outcome.error.retryable !== false, outcome.error.code, outcome.error.stack));
    return true;
  }

  progress(connectionId: string, taskId: string, percent: number, detail?: string): boolean {
    const run = this.remotes.get(connectionId)?.runs.get(taskId);
    run?.progress(percent, detail);
    return run !== undefined;
  }

  /** One credit of the worker with the most: runs spread over the pool's workers. */
  private pick(): Executor | null {
    let best: [string, Remote] | undefined;
    for (const entry of this.remotes) if (entry[1].credit > 0 && (!best || entry[1].credit > best[1].credit)) best = entry;
    if (!best) return null;
    const [connectionId, remote] = best;
    remote.credit--;
    let used = false;
    return {
      workerId: remote.channel.workerId,
      run: (job, context) => {
        used = true;
        return this.run(connectionId, remote, job, context);
      },
      release: () => {
        if (used || this.remotes.get(connectionId) !== remote) return;
        used = true;
        this.grant(connectionId, 1);
      },
    };
  }

  private run(connectionId: string, remote: Remote, job: TaskRun, context: TaskContext): Promise<unknown> {
    if (this.remotes.get(connectionId) !== remote) return Promise.reject(new WorkerLostError(remote.channel.workerId));
    return new Promise<unknown>((resolve, reject) => {
      const finish = (): void => {
        remote.runs.delete(job.taskId);
        context.signal.removeEventListener("abort", onAbort);
        this.onCapacity(this.capacity);
      };
      // Cancelled or timed out: the worker is told to stop, and the run is over here (PoolWorker reports it); an
      // outcome the worker still sends is answered `accepted: false`.
      const onAbort = (): void => {
        const reason = (context.signal.reason as { runCancelReason?: TaskRunCancel["reason"] } | undefined)?.runCancelReason ?? "cancelled";
        remote.channel.cancel({ taskId: job.taskId, reason });
        remote.runs.get(job.taskId)?.reject(context.signal.reason instanceof Error ? context.signal.reason : new Error(reason));
      };
      remote.runs.set(job.taskId, {
        resolve: (result) => {
          finish();
          resolve(result);
        },
        reject: (error) => {
          finish();
          reject(error);
        },
        progress: (percent, detail) => context.progress(percent, detail),
      });
      context.signal.addEventListener("abort", onAbort, { once: true });
      remote.channel.send(job);
    });
  }
}
