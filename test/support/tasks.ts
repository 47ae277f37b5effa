import assert from "node:assert/strict";
import { api } from "./http.js";
import { sleep } from "./clients.js";
import type { TaskView } from "../../src/protocol/views.js";

export type { TaskView };

export async function submitTask(url: string, token: string, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<TaskView> {
  const response = await api(url, "POST", "/api/v1/tasks", { token, body, headers });
  assert.equal(response.status, 202, JSON.stringify(response.body));
  return response.body.task as TaskView;
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
