/**
 * Custom task handlers for a standalone pool worker:
 *   WORKER_TOKEN=... npm run worker -- --handlers examples/handlers.ts      (the token names the pool)
 * Each export of `handlers` is a task type; the worker registers the types with the server, so
 * `POST /api/v1/tasks { "type": "resize-image", "poolId": "<poolId>" }` is accepted for that pool.
 */
import type { TaskHandler } from "../src/worker/handlers.js";
import { NonRetryableError } from "../src/worker/handlers.js";

export const handlers: Record<string, TaskHandler> = {
  /** Pretends to resize an image: reports progress and honours cancellation/timeouts through the signal. */
  "resize-image": async (payload, context) => {
    const { width, height } = (payload ?? {}) as { width?: unknown; height?: unknown };
    if (typeof width !== "number" || typeof height !== "number") throw new NonRetryableError("payload needs numeric width and height");
    for (let step = 1; step <= 4; step++) {
      context.signal.throwIfAborted();
      await new Promise((resolve) => setTimeout(resolve, 50));
      context.progress(step * 25, `pass ${step} of 4`);
    }
    return { width, height, bytes: width * height * 3 };
  },
  /** Upper-cases a string: the smallest possible custom handler. */
  shout: async (payload) => {
    const text = (payload as { text?: unknown } | null)?.text;
    return (typeof text === "string" ? text : "").toUpperCase();
  },
};
