import assert from "node:assert/strict";
import { attemptsLeft, jobData } from "../../src/domains/tasks/jobs.js";
import type { TaskRow } from "../../src/domains/tasks/view.js";
import { canTransition, TRANSITIONS } from "../../src/domains/tasks/state-machine.js";
import { TaskReportSchema } from "../../src/protocol/schemas.js";
import { formatLease, leaseLockToken } from "../../src/protocol/tasks.js";

// Pure rules, no server: fast feedback for leases, attempts after a lost job, and the state machine.
describe("task rules (pure)", () => {
  it("a lease names BullMQ's lock token and the attempt, and parses back", () => {
    const token = "3f2a9c1e-58b4-4a0f-9d0e-9b1f1c2d3e4f:17";
    assert.equal(leaseLockToken(formatLease(token, 3)), token);
    for (const bad of ["", "#1", "token", "token#", "token#x", "token#1234567890"]) assert.equal(leaseLockToken(bad), null, bad);
    assert.equal(TaskReportSchema.safeParse({ taskId: "t1", kind: "cancelled", lease: "nope" }).success, false);
    assert.equal(TaskReportSchema.safeParse({ taskId: "t1", kind: "cancelled", lease: formatLease(token, 1) }).success, true);
  });

  it("a job re-added after Redis lost it keeps the runs already made and never counts a cut-short run as failed", () => {
    const task = (status: string, attempts: number, maxAttempts: number) => ({ status, attempts, maxAttempts }) as TaskRow;
    assert.equal(attemptsLeft(task("queued", 0, 3)), 3);
    assert.equal(attemptsLeft(task("started", 1, 1)), 1, "the interrupted run does not use up the only attempt");
    assert.equal(attemptsLeft(task("started", 2, 3)), 2, "run 2 was cut short: runs 2 and 3 remain");
    assert.equal(attemptsLeft(task("retrying", 1, 3)), 2, "run 1 failed: two left");
    assert.equal(attemptsLeft(task("retrying", 3, 3)), 1, "at least one");
    assert.equal(
      jobData({ ...task("started", 2, 3), id: "t", tenantId: "a", poolId: "p", type: "echo", payload: {}, timeoutMs: null }).attemptOffset,
      2,
    );
  });

  it("the reconciler's transitions only start from open states, and final states are final but for an operator's retry", () => {
    for (const change of Object.keys(TRANSITIONS) as Array<keyof typeof TRANSITIONS>) {
      if (change === "retried") continue;
      for (const final of ["completed", "failed", "cancelled"] as const)
        assert.equal(canTransition(final, change), false, `${change} from ${final}`);
    }
    // POST /api/v1/tasks/:id/retry: a failed or cancelled task goes back to queued; a completed one never does,
    // and an open one cannot be "retried".
    assert.deepEqual(
      (["created", "queued", "assigned", "started", "retrying", "completed", "failed", "cancelled"] as const).filter((s) =>
        canTransition(s, "retried"),
      ),
      ["failed", "cancelled"],
    );
    assert.equal(canTransition("started", "requeued"), true);
    assert.equal(canTransition("queued", "settled"), true);
    assert.equal(TRANSITIONS.settled.event, "task.completed");
    assert.equal(TRANSITIONS.requeued.event, "task.queued");
  });
});
