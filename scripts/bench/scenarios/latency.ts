// Publish -> receive latency at a fixed offered rate over R rooms x 2 subscribers: one node, then two nodes
// (published on A, received on B through Redis); the baseline driven the same way.

import { human } from "../lib.js";
import { lat, ratio } from "../format.js";
import { SIZES } from "../options.js";
import type { ServerHandle } from "../procs.js";
import type { PublisherSpec } from "../publishers.js";
import { latencyMeasure, type LatencyRun } from "../runs.js";
import type { Suite } from "../suite.js";

async function latencyRun(
  s: Suite,
  topology: string,
  rate: number,
  publishTo: ServerHandle,
  subscribeTo: ServerHandle,
  spec: PublisherSpec,
  pools: string[],
): Promise<LatencyRun> {
  const rooms = pools.map((id) => `pool:${id}`);
  await s.connectSockets(subscribeTo, "/pools", s.tokens.bench, rooms, rooms.length * SIZES.latencyPerRoom);
  const run = await latencyMeasure(s, topology, rate, publishTo, subscribeTo, spec, pools, SIZES.latencyPerRoom, SIZES.latencyMs, {
    serverA: publishTo,
    serverB: subscribeTo,
  });
  await s.closeSockets();
  return run;
}

export async function latencyScenario(s: Suite): Promise<void> {
  const pools = await s.ensureBenchPools(SIZES.latencyRooms);
  const swSpec: PublisherSpec = { kind: "switchyard-scale", token: s.tokens.bench };
  const baseSpec: PublisherSpec = { kind: "baseline-http", tenant: "bench", rooms: "both" };
  const runs: Array<{ topology: string; rate: number; switchyard: LatencyRun; baseline: LatencyRun }> = [];
  s.log(
    `latency: ${SIZES.latencyRates.join(" and ")} events/s over ${pools.length} rooms x ${SIZES.latencyPerRoom} subscribers, ${SIZES.latencyMs / 1000} s each`,
  );
  for (const rate of SIZES.latencyRates) {
    runs.push({
      topology: "1 node",
      rate,
      switchyard: await latencyRun(s, "1 node", rate, s.nodeA!, s.nodeA!, swSpec, pools),
      baseline: await latencyRun(s, "1 node", rate, s.baseA!, s.baseA!, baseSpec, pools),
    });
  }
  s.log("latency: starting second nodes");
  const { nodeB, baseB } = await s.startSecondNodes();
  for (const rate of SIZES.latencyRates) {
    runs.push({
      topology: "2 nodes (Redis)",
      rate,
      switchyard: await latencyRun(s, "2 nodes", rate, s.nodeA!, nodeB, swSpec, pools),
      baseline: await latencyRun(s, "2 nodes", rate, s.baseA!, baseB, baseSpec, pools),
    });
  }
  await s.stopSecondNodes();
  for (const { topology, rate, switchyard: sw, baseline: base } of runs) {
    const loss = sw.matched < sw.expected || base.matched < base.expected;
    const behind = sw.skipped > 0 || base.skipped > 0;
    s.rows.push({
      scenario: `latency ${topology} @${rate}/s`,
      metric: "p50/p99/max ms",
      switchyard: lat(sw.latencyMs),
      baseline: lat(base.latencyMs),
      ratio: `p99 ${ratio(sw.latencyMs.p99, base.latencyMs.p99, 1)}`,
      notes:
        `achieved ${human(sw.achievedRate)}/${human(base.achievedRate)} events/s` +
        (behind ? " (overloaded: publishes skipped)" : "") +
        (loss ? `; receipts ${sw.matched}/${sw.expected}, ${base.matched}/${base.expected}` : ""),
    });
  }
  s.notes.push(
    "latency: publish -> receive, from the publish call's scheduled start (open loop, so a publisher that falls behind shows " +
      "up as latency) to the subscriber's receipt, on one shared clock. Switchyard: REST scale call; baseline: one HTTP " +
      "/publish per event to the same rooms. '2 nodes': published on node A, received by sockets on node B through Redis.",
  );
  s.writeResult("latency", { rooms: pools.length, subscribersPerRoom: SIZES.latencyPerRoom, durationMs: SIZES.latencyMs, runs });
}
