import assert from "node:assert/strict";
import { Worker, type Job } from "bullmq";
import { Redis } from "ioredis";
import { RedisKeys } from "../../src/jobs/redis-keys.js";
import { formatLease } from "../../src/protocol/tasks.js";
import { TEST_REDIS_PREFIX, TEST_REDIS_URL } from "./env.js";
import { api } from "./http.js";
import { sleep } from "./clients.js";
import type { TaskView } from "../../src/protocol/views.js";

export type { TaskView };

export async function submitTask(
  url: string,
  token: string,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<TaskView> {
  const response = await api(url, "POST", "/api/v1/tasks", { token, body, headers });
  assert.equal(response.status, 202, JSON.stringify(response.body));
  return response.body.task as TaskView;
}

/**
 * Submits a task of a type that a standalone worker registers when it connects. The registration lands just after
 * the worker logs "connected": until then the node answers 400 unknown task type, so that answer is retried;
 * any other answer is final.
 */
export async function submitOnceTypeKnown(
  url: string,
  token: string,
  body: Record<string, unknown>,
  timeoutMs = 10_000,
): Promise<TaskView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await api(url, "POST", "/api/v1/tasks", { token, body });
    const unknownType = response.status === 400 && JSON.stringify(response.body).includes("unknown task type");
    if (!unknownType || Date.now() > deadline) {
      assert.equal(response.status, 202, JSON.stringify(response.body));
      return response.body.task as TaskView;
    }
    await sleep(50);
  }
}

/** Polls the REST API until the task reaches one of `statuses`. */
export async function waitForTask(url: string, token: string, taskId: string, statuses: string[], timeoutMs = 15_000): Promise<TaskView> {
  const deadline = Date.now() + timeoutMs;
  let last: TaskView | undefined;
  while (Date.now() < deadline) {
    last = (await api(url, "GET", `/api/v1/tasks/${taskId}`, { token })).body.task as TaskView;
    if (statuses.includes(last.status)) return last;
    await sleep(100);
  }
  throw new Error(`task ${taskId} did not reach ${statuses.join("/")}; last: ${JSON.stringify(last)}`);
}

export interface TakenJob {
  job: Job;
  /** The lease a worker holding this job reports with. */
  lease: string;
  lockToken: string;
  /** Closes the BullMQ worker and its connection (the job keeps its lock until it expires or is moved). */
  close(): Promise<void>;
}

/** Takes a pool's next job from BullMQ the way a worker does, under a lock token of our own, so reports carry a real lease. */
export async function takeJob(tenantId: string, poolId: string, lockToken: string): Promise<TakenJob> {
  const connection = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  const bull = new Worker(RedisKeys.queueName(tenantId, poolId), null, {
    connection,
    prefix: new RedisKeys(TEST_REDIS_PREFIX).bull,
    autorun: false,
    lockDuration: 30_000,
  });
  const close = async (): Promise<void> => {
    await bull.close();
    connection.disconnect();
  };
  try {
    const job = await bull.getNextJob(lockToken);
    if (!job) throw new Error(`no job waiting in pool ${poolId}`);
    return { job, lease: formatLease(lockToken, job.attemptsStarted), lockToken, close };
  } catch (error) {
    await close();
    throw error;
  }
}
