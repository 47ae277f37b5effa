// Deliveries/s with one room of N subscribers and with R rooms x 10: Switchyard through its real publish path
// (REST scale calls) next to the baseline's bare emit loop and its one-HTTP-call-per-event publish path.

import { human } from "../lib.js";
import { ratio } from "../format.js";
import { SIZES } from "../options.js";
import { deliveryRun } from "../runs.js";
import type { Suite } from "../suite.js";

export async function fanoutScenario(s: Suite): Promise<void> {
  const pools = await s.ensureBenchPools(Math.max(SIZES.fanoutRooms, 16));
  const C = SIZES.publishConcurrency;
  const layouts = [
    {
      key: "oneRoom",
      label: `1 room x ${human(SIZES.fanoutOneRoom, 0)}`,
      rooms: ["pools"],
      sockets: SIZES.fanoutOneRoom,
      perEvent: SIZES.fanoutOneRoom,
      roomsMode: "pools" as const,
    },
    {
      key: "manyRooms",
      label: `${human(SIZES.fanoutRooms, 0)} rooms x ${SIZES.fanoutPerRoom}`,
      rooms: pools.slice(0, SIZES.fanoutRooms).map((id) => `pool:${id}`),
      sockets: SIZES.fanoutRooms * SIZES.fanoutPerRoom,
      perEvent: SIZES.fanoutPerRoom,
      roomsMode: "pool" as const,
    },
  ];
  const results: Record<string, unknown> = {};
  for (const layout of layouts) {
    s.log(`fan-out ${layout.label}`);
    const publishPools = layout.key === "oneRoom" ? pools : pools.slice(0, SIZES.fanoutRooms);
    await s.connectSockets(s.nodeA!, "/pools", s.tokens.bench, layout.rooms, layout.sockets);
    const sw = await deliveryRun(
      s,
      "switchyard REST scale",
      s.nodeA!,
      { kind: "switchyard-scale", token: s.tokens.bench },
      publishPools,
      layout.perEvent,
      C,
    );
    await s.closeSockets();
    await s.connectSockets(s.baseA!, "/pools", s.tokens.bench, layout.rooms, layout.sockets);
    // Batches of ~100k deliveries per call (at most loopBatch events), so one call never runs for long.
    const batch = Math.max(1, Math.min(SIZES.loopBatch, Math.round(100_000 / layout.perEvent)));
    const loop = await deliveryRun(
      s,
      "baseline emit loop",
      s.baseA!,
      { kind: "baseline-loop", tenant: "bench", rooms: "both", batch },
      publishPools,
      layout.perEvent,
      2,
    );
    const viaHttp = await deliveryRun(
      s,
      "baseline HTTP/event",
      s.baseA!,
      { kind: "baseline-http", tenant: "bench", rooms: "both" },
      publishPools,
      layout.perEvent,
      C,
    );
    await s.closeSockets();
    results[layout.key] = {
      layout: layout.label,
      subscribers: layout.sockets,
      switchyard: sw,
      baselineEmitLoop: loop,
      baselineHttpPerEvent: viaHttp,
    };
    s.rows.push({
      scenario: `fan-out ${layout.label}`,
      metric: "deliveries/s",
      switchyard: human(sw.deliveredPerSecond),
      baseline: human(loop.deliveredPerSecond),
      ratio: ratio(sw.deliveredPerSecond, loop.deliveredPerSecond, 3),
      notes:
        `base = emit loop; base via HTTP/event ${human(viaHttp.deliveredPerSecond)} (sw ${ratio(sw.deliveredPerSecond, viaHttp.deliveredPerSecond)})` +
        (Math.min(sw.completeness, loop.completeness, viaHttp.completeness) < 1
          ? `; delivered only ${(sw.completeness * 100).toFixed(0)}%/${(loop.completeness * 100).toFixed(0)}%/${(viaHttp.completeness * 100).toFixed(0)}%`
          : ""),
    });
    s.rows.push({
      scenario: `fan-out ${layout.label}`,
      metric: "events published/s",
      switchyard: human(sw.publishPerSecond),
      baseline: human(viaHttp.publishPerSecond),
      ratio: ratio(sw.publishPerSecond, viaHttp.publishPerSecond, 3),
      notes: `both ${C} HTTP calls in flight (sw REST scale, base /publish); base emit loop ${human(loop.publishPerSecond)}/s`,
    });
  }
  s.notes.push(
    "fan-out: Switchyard is driven through its real publish path (POST /api/v1/pools/:id/scale, " +
      `${C} calls in flight): each event is authenticated, validated, written to PostgreSQL (pool row + event log, ` +
      "one sequence row per room) and then broadcast to `pools` and `pool:<id>`. 'deliveries/s' compares it with a bare " +
      "emit loop inside the baseline server (no HTTP, no database; same two rooms): the broadcast ceiling. 'events " +
      "published/s' compares the publish paths: the baseline driven like Switchyard, one HTTP /publish per event. With " +
      "one big room both are bounded by the machine (socket writes + the load generators' reads share the 2 cores); with " +
      "many small rooms Switchyard is bounded by its per-event publish cost (see cpu/profile in fanout-*.json).",
  );
  s.writeResult("fanout", results);
}
