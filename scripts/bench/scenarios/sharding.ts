import { startPrivateRedisCluster } from "../../../test/support/private-services.js";
import { human, sleep } from "../lib.js";
import { cpuUs, ratio } from "../format.js";
import { SIZES } from "../options.js";
import type { ServerHandle } from "../procs.js";
import type { PublisherSpec } from "../publishers.js";
import { capacityRun, type CapacityRun } from "../runs.js";
import type { Suite } from "../suite.js";

/**
 * Classic vs sharded pub/sub, two Switchyard nodes each: node B publishes (publish API, batches) into the rooms,
 * and node A holds no subscriber. With classic pub/sub (`REDIS_URL`) every node receives every broadcast and
 * throws away what it has no socket for; with sharded pub/sub on a Redis Cluster (`REDIS_CLUSTER_NODES`, three
 * masters started here) a node subscribes only to the rooms it has sockets in, so node A receives nothing. The
 * figure is node A's CPU per published event: what each node pays for the whole cluster's traffic.
 */
export async function shardingScenario(s: Suite): Promise<void> {
  const pools = await s.ensureBenchPools(SIZES.publishRooms);
  const B = SIZES.publishBatch;
  const C = SIZES.publishConcurrencyBatches;
  s.log("sharding: starting a 3-master Redis Cluster and two nodes on it, and a second classic node");
  const cluster = await startPrivateRedisCluster(3, 0);
  // The bench database is shared with the classic nodes: the cluster nodes must not reconcile its tasks against
  // their (empty) queues.
  const clusterEnv = {
    ...s.switchyardEnv(),
    REDIS_CLUSTER_NODES: cluster.spec,
    RECONCILE_INTERVAL_MS: "3600000",
    EMBEDDED_WORKER: "false",
  };
  const started: ServerHandle[] = [];
  try {
    const [classicB, shardedA, shardedB] = await Promise.all([
      s.run.startSwitchyard(s.switchyardEnv(), "b"),
      s.run.startSwitchyard(clusterEnv, "cluster-a"),
      s.run.startSwitchyard(clusterEnv, "cluster-b"),
    ]);
    started.push(classicB, shardedA, shardedB);
    const spec: PublisherSpec = { kind: "switchyard-events", token: s.tokens.bench, batch: B };
    const sides = [
      { kind: "classic" as const, a: s.nodeA!, b: classicB },
      { kind: "sharded" as const, a: shardedA, b: shardedB },
    ];
    const results: Record<string, CapacityRun> = {};
    for (const side of sides) {
      const warm = await s.publisher!.call<{ failed: number; errors: string[] }>("publish", {
        url: side.b.url,
        spec,
        pools,
        concurrency: 1,
        durationMs: 30_000,
        limit: Math.ceil((2 * pools.length) / B),
      });
      if (warm.failed > 0) throw new Error(`sharding warm-up failed: ${warm.errors.join("; ")}`);
      await sleep(300);
      results[side.kind] = await capacityRun(s, `${side.kind} pub/sub`, side.b, side.a, spec, pools, C);
    }
    const classic = results.classic!;
    const sharded = results.sharded!;
    const perEvent = (run: CapacityRun): number => (((run.cpuPercent.subNode ?? 0) / 100) * run.cpuWallMs * 1000) / Math.max(1, run.events);
    s.rows.push({
      scenario: "classic vs sharded pub/sub, 2 nodes",
      metric: "node A CPU per event",
      switchyard: `${perEvent(sharded).toFixed(1)} µs`,
      baseline: `${perEvent(classic).toFixed(1)} µs`,
      ratio: ratio(perEvent(sharded), perEvent(classic), 3),
      notes:
        `switchyard = sharded (3-master cluster), baseline = classic (one Redis); node A has no subscriber; ${C} batches of ${B} posted to node B; ` +
        `published/s sharded ${human(sharded.publishPerSecond)} vs classic ${human(classic.publishPerSecond)}; node B CPU/event ${cpuUs(sharded, "pubNode", sharded.events)} vs ${cpuUs(classic, "pubNode", classic.events)} µs`,
    });
    s.writeResult("sharding", { classic, sharded, nodeACpuPerEventUs: { classic: perEvent(classic), sharded: perEvent(sharded) } });
  } finally {
    await Promise.all(started.map((server) => server.stop()));
    await cluster.destroy();
  }
}
