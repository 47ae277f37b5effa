import { QueueKeys } from "bullmq";

/** The keys of a BullMQ queue Switchyard reads itself (the names are BullMQ's: QueueKeys.getKeys lists them). */
export type BullQueueKey = "wait" | "prioritized" | "delayed" | "completed" | "failed" | "repeat";

/**
 * Every Redis key and channel name Switchyard uses, in one place, shared by the server and the standalone
 * worker; BullMQ's own keys are named by BullMQ's QueueKeys, under our prefix. Everything starts with the deployment's REDIS_PREFIX,
 * so deployments sharing a Redis never meet, and a test run can delete exactly what it made.
 */
export class RedisKeys {
  /**
   * `cluster`: on a Redis Cluster, keys that are used together (in one script, transaction or pipeline) must live
   * in one hash slot, so each such group gets a hash tag: `{<prefix>:bull}` for every BullMQ key (BullMQ needs a
   * queue's keys on one slot; one tag for all queues also keeps the reconciler's pipelines and the queue-depth
   * script on one node), `{<prefix>:presence}` and `{<prefix>:limits}`. Other keys are used one at a time and
   * spread over the cluster. Names on a single Redis are unchanged, so an existing deployment keeps its keys.
   */
  private readonly bullKeys: QueueKeys;

  constructor(
    readonly prefix: string,
    private readonly options: { cluster?: boolean } = {},
  ) {
    this.bullKeys = new QueueKeys(this.bull);
  }

  /** The start of the keys of one group used together: hash-tagged on a cluster. */
  private group(name: string): string {
    return this.options.cluster ? `{${this.prefix}:${name}}` : `${this.prefix}:${name}`;
  }

  /** Socket.IO redis-adapter channels. */
  get adapter(): string {
    return `${this.prefix}:socket.io`;
  }

  /** BullMQ's own prefix: its keys are `<bull>:<queue>:…`. */
  get bull(): string {
    return this.group("bull");
  }

  /**
   * One BullMQ queue per (tenant, pool): pools never take each other's work and a worker's token decides which
   * queue it may serve. Neither tenant nor pool ids may contain '.', so names cannot collide.
   */
  static queueName(tenantId: string, poolId: string): string {
    return `pool.${tenantId}.${poolId}`;
  }

  /** One of a pool queue's own keys (`completed` and `failed` are its finished-job sets). */
  queueKey(tenantId: string, poolId: string, key: BullQueueKey): string {
    return this.bullKeys.toKey(RedisKeys.queueName(tenantId, poolId), key);
  }

  /** A task's job hash (the job id is the task id, and BullMQ names a job's hash as it names a queue's keys); BullMQ keeps the job's lock at `<job>:lock`. */
  job(tenantId: string, poolId: string, taskId: string): string {
    return this.bullKeys.toKey(RedisKeys.queueName(tenantId, poolId), taskId);
  }

  /**
   * The one BullMQ queue of every tenant's schedules: each schedule is a job scheduler on it, and each of its jobs
   * is one due time. Not a pool queue's name (those start with `pool.`).
   */
  static readonly scheduleQueueName = "schedules";

  /** BullMQ's sorted set of the schedule queue's job schedulers: member the scheduler id, score its next due time (ms). */
  get scheduleSchedulers(): string {
    return this.bullKeys.toKey(RedisKeys.scheduleQueueName, "repeat");
  }

  /** A job scheduler's hash (`every`, `pattern`, `tz`, …) as BullMQ stores it. */
  scheduleScheduler(schedulerId: string): string {
    return `${this.scheduleSchedulers}:${schedulerId}`;
  }

  /** Pub/sub channel on which cancellations reach every worker process. */
  get taskCancel(): string {
    return `${this.prefix}:task-cancel`;
  }

  /** Set of tenants whose `default` pool has had work: every node's embedded worker serves them all. */
  get defaultPoolTenants(): string {
    return `${this.prefix}:default-pool-tenants`;
  }

  /** Task types a pool's standalone workers registered. */
  taskTypes(tenantId: string, poolId: string): string {
    return `${this.prefix}:task-types:${tenantId}:${poolId}`;
  }

  /** A worker's presence: its value is the id of the connection that owns it, its TTL the heartbeat timeout. */
  presence(tenantId: string, workerId: string): string {
    return `${this.group("presence")}:${tenantId}:${workerId}`;
  }

  /**
   * Token revocations still in force, as a stream: each entry one revocation (`m`: `<jti|sub>:<tenant>:<id>`,
   * `at`: its time in ms), trimmed by age. Redis numbers entries in order, so a node follows it from the last
   * entry it read, reading only what is new, never the whole set again.
   */
  get revocations(): string {
    return `${this.prefix}:revocations`;
  }

  /**
   * Where revocations were kept before the stream (a sorted set, member as above, score the time): still read
   * once at start, so that a revocation made before an upgrade keeps refusing its token until it lapses.
   */
  get legacyRevokedTokens(): string {
    return `${this.prefix}:revoked-tokens`;
  }

  /** Pub/sub channel on which a revocation reaches every node at once. */
  get tokenRevoked(): string {
    return `${this.prefix}:token-revoked`;
  }

  /**
   * A tenant's connected sockets: a hash of node id → that node's count. Only the node itself writes its field;
   * a field counts only while the node is live in `connectionNodes`.
   */
  connections(tenantId: string): string {
    return `${this.group("limits")}:connections:${tenantId}`;
  }

  /** Sorted set of node id → the time (Redis clock, ms) until which the node's connection counts are valid. */
  get connectionNodes(): string {
    return `${this.group("limits")}:connection-nodes`;
  }

  /**
   * The tasks of a tenant that hold a running slot (TENANT_MAX_RUNNING_TASKS): a sorted set, member the task id,
   * score the time (Redis clock, ms) until which the slot holds unless its worker renews it.
   */
  runningTasks(tenantId: string): string {
    return `${this.group("limits")}:running-tasks:${tenantId}`;
  }

  /** TENANT_MAX_RUNNING_TASKS as the nodes set it, read by every worker process when it takes a slot. */
  get maxRunningTasks(): string {
    return `${this.group("limits")}:max-running-tasks`;
  }

  /** rate-limiter-flexible key prefixes of the per-tenant REST limit (the library appends `:<tenant>`). */
  get restRate(): string {
    return `${this.prefix}:rate:rest`;
  }

  get restRateBurst(): string {
    return `${this.prefix}:rate:rest-burst`;
  }

  /**
   * The nodes' readings (GET /api/v1/nodes), one hash-tagged group read together: `…:index` is the set of node ids
   * that ever published, `…:node:<id>` a node's node-wide reading (its TTL a few intervals, so a dead node's
   * disappears), `…:tenant:<tenant>` a hash of node id → that node's reading for that tenant alone.
   */
  get nodeIndex(): string {
    return `${this.group("nodes")}:index`;
  }

  nodeReading(nodeId: string): string {
    return `${this.group("nodes")}:node:${nodeId}`;
  }

  tenantNodeReadings(tenantId: string): string {
    return `${this.group("nodes")}:tenant:${tenantId}`;
  }

  get retentionLock(): string {
    return `${this.prefix}:retention-lock`;
  }

  get autoscaleLock(): string {
    return `${this.prefix}:autoscale-lock`;
  }

  get reconcileLock(): string {
    return `${this.prefix}:reconcile-lock`;
  }

  get scheduleReconcileLock(): string {
    return `${this.prefix}:schedule-reconcile-lock`;
  }
}
