import assert from "node:assert/strict";
import { RedisKeys } from "../../src/jobs/redis-keys.js";

describe("RedisKeys (pure)", () => {
  // BullMQ's keys are named by its QueueKeys: the names must stay what a running deployment already holds.
  it("names BullMQ's keys as BullMQ does, under the prefix, hash-tagged on a cluster", () => {
    const single = new RedisKeys("sy");
    assert.equal(single.bull, "sy:bull");
    assert.equal(single.queueKey("t1", "default", "wait"), "sy:bull:pool.t1.default:wait");
    assert.equal(single.queueKey("t1", "default", "completed"), "sy:bull:pool.t1.default:completed");
    assert.equal(single.job("t1", "default", "task-1"), "sy:bull:pool.t1.default:task-1");
    assert.equal(single.scheduleSchedulers, "sy:bull:schedules:repeat");
    assert.equal(single.scheduleScheduler("s1"), "sy:bull:schedules:repeat:s1");
    const cluster = new RedisKeys("sy", { cluster: true });
    assert.equal(cluster.queueKey("t1", "gpu", "delayed"), "{sy:bull}:pool.t1.gpu:delayed");
    assert.equal(cluster.job("t1", "gpu", "task-2"), "{sy:bull}:pool.t1.gpu:task-2");
    assert.equal(cluster.scheduleSchedulers, "{sy:bull}:schedules:repeat");
  });
});
