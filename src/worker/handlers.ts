import { z } from "zod";

/** What a task handler gets besides its payload. */
export interface TaskContext {
  taskId: string;
  attempt: number;
  /** Aborted on timeout or cancellation: long-running handlers should stop when it fires. */
  signal: AbortSignal;
  /** Reports progress (0-100); reports are throttled, the last one always goes out. */
  progress(percent: number, detail?: string): void;
}

export type TaskHandler = (payload: unknown, context: TaskContext) => Promise<unknown>;

/** Throw this from a handler for a failure that retrying cannot fix. */
export class NonRetryableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NonRetryableError";
  }
}

/** A payload the handler cannot work with is not worth retrying. */
function payloadOf<S extends z.ZodType>(schema: S, payload: unknown, type: string): z.infer<S> {
  const parsed = schema.safeParse(payload ?? {});
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => i.path.join(".") || "payload").join(", ");
    throw new NonRetryableError(`invalid ${type} payload: ${fields}`);
  }
  return parsed.data;
}

function sleepFor(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

const SleepPayload = z.object({
  ms: z
    .number()
    .int()
    .min(0)
    .max(24 * 3600 * 1000),
});
const FailPayload = z.object({ message: z.string().max(2000).default("task failed"), retryable: z.boolean().default(true) });

/** The built-in handlers every pool worker has. */
export const builtinHandlers: Record<string, TaskHandler> = {
  echo: async (payload) => payload ?? null,
  sleep: async (payload, context) => {
    const { ms } = payloadOf(SleepPayload, payload, "sleep");
    // Progress in up to ten steps, so dashboards see a long sleep move.
    const steps = ms >= 1000 ? 10 : 1;
    for (let step = 1; step <= steps; step++) {
      await sleepFor(ms / steps, context.signal);
      if (steps > 1) context.progress(step * 10);
    }
    return { slept: ms };
  },
  fail: async (payload) => {
    const { message, retryable } = payloadOf(FailPayload, payload, "fail");
    throw retryable ? new Error(message) : new NonRetryableError(message);
  },
};
