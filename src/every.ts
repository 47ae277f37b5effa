/** What a failed run is logged with: a pino Logger is one. */
export interface WarnLogger {
  warn(fields: Record<string, unknown>, message: string): void;
}

export type EveryOptions = {
  /** Names the task in the line a failed run logs. */
  name: string;
  /** False for a timer that must keep the process alive (a hub-mode worker's heartbeat); by default none holds up an exit. */
  unref?: boolean;
} & (
  | { logger: WarnLogger }
  /** Told of a failed run instead of a log line: for work whose failures are reported elsewhere, or lapse on their own. */
  | { onError: (error: unknown) => void }
);

export interface Periodic {
  /** No run starts after this; one under way finishes on its own. */
  stop(): void;
}

/**
 * Runs `run` every `intervalMs`, never two at once: a tick that comes while the previous run (its promise) has not
 * settled is skipped, so a slow dependency slows the work down rather than piling runs up. A run that throws or
 * rejects is logged (or told to `onError`) and the next tick runs as usual.
 */
export function every(intervalMs: number, run: () => unknown, options: EveryOptions): Periodic {
  const failed =
    "onError" in options
      ? options.onError
      : (error: unknown) => options.logger.warn({ err: error, task: options.name }, `${options.name} failed`);
  let running = false;
  let stopped = false;
  const tick = (): void => {
    if (running || stopped) return;
    running = true;
    let result: unknown;
    try {
      result = run();
    } catch (error) {
      running = false;
      failed(error);
      return;
    }
    Promise.resolve(result)
      .catch(failed)
      .finally(() => {
        running = false;
      });
  };
  const timer = setInterval(tick, intervalMs);
  if (options.unref !== false) timer.unref();
  return {
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}
