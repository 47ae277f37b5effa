import { MAX_PROGRESS_DETAIL } from "../protocol/tasks.js";
import { toStorableText } from "../protocol/json-safety.js";

export interface ProgressValue {
  progress: number;
  detail?: string;
}

export interface ProgressThrottle {
  /** What a handler calls (`context.progress`): any number and any detail, cleaned here. */
  push: (percent: number, detail?: string) => void;
  /** Sends the last value still waiting, and waits for every send: called before a run's outcome goes out. */
  flush: () => Promise<void>;
}

/**
 * A run's progress, at most one message per `intervalMs`: a handler may call progress() in a tight loop, and only
 * the latest value matters. Sends go out one after the other, so they arrive in order. `deliver` answers "retry"
 * when a value did not get through and is worth sending again (unless a newer one is waiting, or the run is over).
 */
export function progressThrottle(intervalMs: number, deliver: (value: ProgressValue) => Promise<"sent" | "retry">): ProgressThrottle {
  let last = 0;
  let pending: ProgressValue | undefined;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<unknown> = Promise.resolve();
  let flushed = false;
  const schedule = (): void => {
    const wait = intervalMs - (Date.now() - last);
    if (wait <= 0) send();
    else timer ??= setTimeout(send, wait);
  };
  const send = (): void => {
    timer = undefined;
    if (!pending) return;
    const value = pending;
    pending = undefined;
    last = Date.now();
    inFlight = inFlight.then(async () => {
      if ((await deliver(value)) === "sent" || flushed || pending) return;
      pending = value;
      schedule();
    });
  };
  return {
    push: (percent, detail) => {
      // NaN is not a percentage (the server would refuse the report): 0 says "started" at least.
      const value = Number(percent);
      const progress = Number.isNaN(value) ? 0 : Math.max(0, Math.min(100, value));
      pending = { progress, ...(detail === undefined ? {} : { detail: toStorableText(String(detail), MAX_PROGRESS_DETAIL) }) };
      schedule();
    },
    flush: async () => {
      flushed = true;
      clearTimeout(timer);
      send();
      await inFlight;
    },
  };
}
