// The publish API (POST /api/v1/events, batches of custom events) on node B with the subscribers on node A, next
// to the baseline pair driven the same way (POST /publish-batch): the publish path alone, deliveries/s with the
// publisher kept a bounded number of events ahead, and latency at a fixed offered rate.

import { human, sleep } from "../lib.js";
import { busyNote, cpuUs, lat, ms, ratio } from "../format.js";
import { SIZES } from "../options.js";
import type { PublisherSpec } from "../publishers.js";
import { capacityRun, deliveryRun, latencyMeasure, type CapacityRun, type DeliveryRun, type LatencyRun } from "../runs.js";
import type { Suite } from "../suite.js";

export async function publishScenario(s: Suite): Promise<void> {
  const pools = await s.ensureBenchPools(SIZES.publishRooms);
  const rooms = pools.map((id) => `pool:${id}`);
  const B = SIZES.publishBatch;
  const C = SIZES.publishConcurrencyBatches;
  const perRoom = SIZES.publishPerRoom;
  s.log("publish: starting second nodes");
  const { nodeB, baseB } = await s.startSecondNodes();
  const sides = [
    {
      kind: "switchyard" as const,
      label: "switchyard POST /api/v1/events",
      subscribeTo: s.nodeA!,
      publishTo: nodeB,
      spec: { kind: "switchyard-events", token: s.tokens.bench, batch: B } as PublisherSpec,
    },
    {
      kind: "baseline" as const,
      label: "baseline POST /publish-batch",
      subscribeTo: s.baseA!,
      publishTo: baseB,
      spec: { kind: "baseline-batch", tenant: "bench", batch: B } as PublisherSpec,
    },
  ];
  const results: Record<string, { warmupMs: number; capacity: CapacityRun; throughput: DeliveryRun; latency: LatencyRun }> = {};
  for (const side of sides) {
    s.log(`publish ${side.kind}: batches of ${B} posted to B, ${rooms.length} rooms`);
    // Warm-up, not measured: one call at a time until every room got two events (a node that has not seen a
    // room yet looks it up in PostgreSQL; the JIT warms up on both sides).
    const warm = await s.publisher!.call<{ calls: number; failed: number; errors: string[]; startTs: number; endTs: number }>("publish", {
      url: side.publishTo.url,
      spec: side.spec,
      pools,
      concurrency: 1,
      durationMs: 30_000,
      limit: Math.ceil((2 * rooms.length) / B),
    });
    if (warm.failed > 0) throw new Error(`publish warm-up failed: ${warm.errors.join("; ")}`);
    const warmupMs = warm.endTs - warm.startTs;
    s.log(`  warm-up: ${warm.calls} calls one at a time in ${ms(warmupMs)} ms`);
    await sleep(300);
    const capacity = await capacityRun(s, side.label, side.publishTo, side.subscribeTo, side.spec, pools, C);
    s.log(`  ${rooms.length} rooms x ${perRoom} subscribers on A`);
    await s.connectSockets(side.subscribeTo, "/pools", s.tokens.bench, rooms, rooms.length * perRoom);
    const throughput = await deliveryRun(s, side.label, side.publishTo, side.spec, pools, perRoom, C, {
      subscribeTo: side.subscribeTo,
      durationMs: SIZES.publishMs,
      scenario: "publish",
      maxBacklog: SIZES.publishMaxBacklog,
    });
    const latency = await latencyMeasure(
      s,
      "2 nodes",
      SIZES.publishLatencyRate,
      side.publishTo,
      side.subscribeTo,
      side.spec,
      pools,
      perRoom,
      SIZES.publishLatencyMs,
      { subNode: side.subscribeTo, pubNode: side.publishTo },
      "publish",
    );
    await s.closeSockets();
    results[side.kind] = { warmupMs, capacity, throughput, latency };
  }
  await s.stopSecondNodes();
  const sw = results.switchyard!;
  const base = results.baseline!;
  s.rows.push({
    scenario: `publish API ${human(rooms.length, 0)} rooms x ${perRoom}`,
    metric: "deliveries/s",
    switchyard: human(sw.throughput.deliveredPerSecond),
    baseline: human(base.throughput.deliveredPerSecond),
    ratio: ratio(sw.throughput.deliveredPerSecond, base.throughput.deliveredPerSecond, 3),
    notes:
      `${C} batches of ${B} in flight, <= ${human(SIZES.publishMaxBacklog, 0)} events ahead; node A CPU/delivery sw ${cpuUs(sw.throughput, "subNode", sw.throughput.received)} µs, ` +
      `base ${cpuUs(base.throughput, "subNode", base.throughput.received)} µs` +
      (Math.min(sw.throughput.completeness, base.throughput.completeness) < 1
        ? `; delivered only ${(sw.throughput.completeness * 100).toFixed(0)}%/${(base.throughput.completeness * 100).toFixed(0)}%`
        : "") +
      (sw.throughput.failed + base.throughput.failed > 0 ? `; failed calls ${sw.throughput.failed}/${base.throughput.failed}` : "") +
      busyNote(sw.throughput.cpuPercent, base.throughput.cpuPercent),
  });
  s.rows.push({
    scenario: "publish API, no subscribers",
    metric: "events published/s",
    switchyard: human(sw.capacity.publishPerSecond),
    baseline: human(base.capacity.publishPerSecond),
    ratio: ratio(sw.capacity.publishPerSecond, base.capacity.publishPerSecond, 3),
    notes:
      `${C} batches of ${B} in flight; CPU/event: node B sw ${cpuUs(sw.capacity, "pubNode", sw.capacity.events)} µs + PostgreSQL ${cpuUs(sw.capacity, "postgres", sw.capacity.events)} µs, ` +
      `base ${cpuUs(base.capacity, "pubNode", base.capacity.events)} µs` +
      (sw.capacity.failed + base.capacity.failed > 0 ? `; failed calls ${sw.capacity.failed}/${base.capacity.failed}` : "") +
      busyNote(sw.capacity.cpuPercent, base.capacity.cpuPercent),
  });
  const loss = sw.latency.matched < sw.latency.expected || base.latency.matched < base.latency.expected;
  const behind = sw.latency.skipped > 0 || base.latency.skipped > 0;
  s.rows.push({
    scenario: `publish API @${human(SIZES.publishLatencyRate, 0)}/s, 2 nodes`,
    metric: "p50/p99/max ms",
    switchyard: lat(sw.latency.latencyMs),
    baseline: lat(base.latency.latencyMs),
    ratio: `p99 ${ratio(sw.latency.latencyMs.p99, base.latency.latencyMs.p99, 1)}`,
    notes:
      `${human(SIZES.publishLatencyRate / B, 0)} batches of ${B}/s; achieved ${human(sw.latency.achievedRate)}/${human(base.latency.achievedRate)} events/s` +
      (behind ? " (overloaded: publishes skipped)" : "") +
      (loss ? `; receipts ${sw.latency.matched}/${sw.latency.expected}, ${base.latency.matched}/${base.latency.expected}` : "") +
      busyNote(sw.latency.cpuPercent, base.latency.cpuPercent),
  });
  s.notes.push(
    `publish API: Switchyard's POST /api/v1/events (admin token; ${B} custom events per call, each to one \`pool:<id>\` room, ` +
      "checked, stored and numbered as one unit, then broadcast) on node B, with the subscribers on node A (through Redis); " +
      "the baseline pair driven the same way: POST /publish-batch to baseline B emits each event once (no auth, no storage), " +
      "subscribers on baseline A. 'no subscribers': the publish path alone (node A only gets the Redis messages). " +
      `'deliveries/s': the publisher stays at most ${human(SIZES.publishMaxBacklog, 0)} events ahead of the deliveries, so both ` +
      "are measured at node A's delivery capacity without piling up in Redis (unbounded, the bare pair outran its " +
      "subscriber node until Redis cut the adapter's subscription at its 32 MB pub/sub output limit and events were lost). " +
      "Latency: open loop at the offered rate, from each batch's scheduled time to each receipt.",
  );
  s.writeResult("publish", {
    rooms: rooms.length,
    subscribersPerRoom: perRoom,
    batch: B,
    batchesInFlight: C,
    maxBacklogEvents: SIZES.publishMaxBacklog,
    durationMs: SIZES.publishMs,
    latency: { offeredEventsPerSecond: SIZES.publishLatencyRate, durationMs: SIZES.publishLatencyMs },
    switchyard: sw,
    baseline: base,
  });
}
