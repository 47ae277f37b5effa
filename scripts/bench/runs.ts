// The measured runs the scenarios share: a closed loop counting deliveries (fan-out, publish), an open loop
// timing every receipt (latency, publish) and the publish path alone with no subscriber (publish, sharding).

import { human, now, sleep, summarize, type Summary } from "./lib.js";
import { cpuText, lat } from "./format.js";
import { SIZES } from "./options.js";
import type { ServerHandle } from "./procs.js";
import type { LoopResult, PublisherSpec } from "./publishers.js";
import type { ProfileSummary, Suite } from "./suite.js";

/** What a closed publishing loop published, and the CPU it took per process group. */
export interface CapacityRun {
  calls: number;
  events: number;
  failed: number;
  errors: string[];
  publishMs: number;
  publishPerSecond: number;
  cpuPercent: Record<string, number>;
  /** Wall time the CPU figures cover (publishing, and draining where there are subscribers). */
  cpuWallMs: number;
  profile?: ProfileSummary;
}

export interface DeliveryRun extends CapacityRun {
  publisher: string;
  expected: number;
  received: number;
  deliverMs: number;
  deliveredPerSecond: number;
  completeness: number;
  /** Gated runs: total time the publisher's lanes waited for the deliveries to catch up. */
  gatedMs: number;
  /** Two-node runs: the profile of the node holding the subscribers. */
  subscriberProfile?: ProfileSummary;
}

/** Events one call of `spec` publishes. */
export const perCall = (spec: PublisherSpec): number =>
  spec.kind === "switchyard-events" || spec.kind === "baseline-batch" ? spec.batch : 1;

/**
 * Closed-loop publishing to `server` (`concurrency` calls in flight) for `durationMs`, counting what the
 * subscribers (already connected, to `subscribeTo`) receive. `scenario` names the profile.
 */
export async function deliveryRun(
  s: Suite,
  label: string,
  server: ServerHandle,
  spec: PublisherSpec,
  pools: string[],
  subscribersPerEvent: number,
  concurrency: number,
  {
    subscribeTo = server,
    durationMs = SIZES.fanoutMs,
    scenario = "fanout",
    maxBacklog,
  }: {
    subscribeTo?: ServerHandle;
    durationMs?: number;
    scenario?: string;
    /** Events the publisher may be ahead of the deliveries (published events x subscribersPerEvent - received). */
    maxBacklog?: number;
  } = {},
): Promise<DeliveryRun> {
  await s.record("count");
  const meter = s.cpuMeter(subscribeTo === server ? { server } : { subNode: subscribeTo, pubNode: server });
  const meterStart = now();
  meter.start();
  const [{ loop, roomEvents, expected, t }, profile, subscriberProfile] = await s.profiled(
    server,
    `${scenario} ${label} ${subscribersPerEvent}`,
    async () => {
      const running = s.publisher!.call<LoopResult & { gatedMs: number }>("publish", {
        url: server.url,
        spec,
        pools,
        concurrency,
        durationMs,
        gateEvents: maxBacklog,
      });
      if (maxBacklog !== undefined) {
        // Feeds the publisher's gate from the subscribers' counts while it runs.
        let done = false;
        void running.finally(() => (done = true)).catch(() => undefined);
        while (!done) {
          await sleep(50);
          const { received } = await s.totals();
          await s.publisher!.call("allow", { events: Math.floor(received / subscribersPerEvent) + maxBacklog });
        }
      }
      const loop = await running;
      if (loop.gatedMs > 0)
        s.log(`  ${label}: lanes waited ${(loop.gatedMs / concurrency / 1000).toFixed(1)} s each for deliveries to catch up`);
      // Events that reach the subscribed room(s) (successful calls only): one per Switchyard scale call, one per
      // logical baseline event, `batch` per publish-API call.
      const roomEvents = loop.events;
      const expected = roomEvents * subscribersPerEvent;
      const t = await s.drain(expected);
      return { loop, roomEvents, expected, t };
    },
    subscribeTo,
  );
  const cpuPercent = meter.stop();
  const cpuWallMs = now() - meterStart;
  await s.record("none");
  const deliverMs = Math.max(t.lastTs, loop.endTs) - loop.startTs;
  const run: DeliveryRun = {
    publisher: label,
    calls: loop.calls,
    events: roomEvents,
    failed: loop.failed,
    errors: loop.errors,
    publishMs: loop.endTs - loop.startTs,
    publishPerSecond: (roomEvents * 1000) / (loop.endTs - loop.startTs),
    expected,
    received: t.received,
    deliverMs,
    deliveredPerSecond: (t.received * 1000) / deliverMs,
    completeness: expected > 0 ? t.received / expected : NaN,
    cpuPercent,
    cpuWallMs,
    gatedMs: loop.gatedMs,
    profile,
    subscriberProfile,
  };
  if (loop.failed > 0) s.log(`  ${label}: ${loop.failed} publish calls failed: ${loop.errors.slice(0, 2).join("; ")}`);
  s.log(
    `  ${label}: ${human(roomEvents)} events (${human(run.publishPerSecond)}/s published), ` +
      `${human(t.received)}/${human(expected)} delivered, ${human(run.deliveredPerSecond)} deliveries/s; cpu ${cpuText(cpuPercent)}`,
  );
  return run;
}

export interface LatencyRun {
  topology: string;
  offeredRate: number;
  achievedRate: number;
  calls: number;
  failed: number;
  late: number;
  skipped: number;
  expected: number;
  received: number;
  matched: number;
  latencyMs: Summary;
  callMs: Summary | undefined;
  cpuPercent: Record<string, number>;
  profile?: ProfileSummary;
  /** Two-node runs: the profile of the node holding the subscribers. */
  subscriberProfile?: ProfileSummary;
}

/**
 * Open loop at `rate` events/s (calls of perCall(spec) events each) to `publishTo` for `durationMs`, with
 * `perRoom` subscribers per room already connected to `subscribeTo`: publish -> receive latency of every receipt.
 */
export async function latencyMeasure(
  s: Suite,
  topology: string,
  rate: number,
  publishTo: ServerHandle,
  subscribeTo: ServerHandle,
  spec: PublisherSpec,
  pools: string[],
  perRoom: number,
  durationMs: number,
  cpuGroups: Record<string, ServerHandle>,
  scenario = "latency",
): Promise<LatencyRun> {
  await s.record("latency");
  const meter = s.cpuMeter(publishTo === subscribeTo ? { server: publishTo } : cpuGroups);
  meter.start();
  const [loop, profile, subscriberProfile] = await s.profiled(
    publishTo,
    `${scenario} ${topology} ${rate}`,
    () =>
      s.publisher!.call<{
        calls: number;
        events: number;
        failed: number;
        late: number;
        skipped: number;
        sends: Array<[string, number]>;
        startTs: number;
        endTs: number;
        callLatency?: Summary;
      }>("publish", { url: publishTo.url, spec, pools, rate: rate / perCall(spec), durationMs, maxInFlight: 256 }),
    subscribeTo,
  );
  const expected = loop.events * perRoom;
  await s.drain(expected, 1000, 10_000);
  const cpuPercent = meter.stop();
  await s.record("none");
  const samples = await Promise.all(s.clients.map((c) => c.call<{ keys: string[]; ts: number[] }>("stats", { samples: true })));
  const sentAt = new Map(loop.sends);
  const latencies: number[] = [];
  let received = 0;
  for (const s of samples) {
    received += s.keys.length;
    for (let i = 0; i < s.keys.length; i++) {
      const t = sentAt.get(s.keys[i]!);
      if (t !== undefined) latencies.push(s.ts[i]! - t);
    }
  }
  const run: LatencyRun = {
    topology,
    offeredRate: rate,
    achievedRate: (loop.events * 1000) / (loop.endTs - loop.startTs),
    calls: loop.calls,
    failed: loop.failed,
    late: loop.late,
    skipped: loop.skipped,
    expected,
    received,
    matched: latencies.length,
    latencyMs: summarize(latencies),
    callMs: loop.callLatency,
    cpuPercent,
    profile,
    subscriberProfile,
  };
  s.log(
    `  ${topology} ${spec.kind}: p50/p99/max ${lat(run.latencyMs)} ms, ${human(run.achievedRate)}/s of ${run.offeredRate}/s offered, ` +
      `${run.matched}/${expected} receipts; cpu ${cpuText(cpuPercent)}`,
  );
  return run;
}

/** The publish path alone: a closed loop to `server` with no subscribers connected anywhere. */
export async function capacityRun(
  s: Suite,
  label: string,
  server: ServerHandle,
  other: ServerHandle,
  spec: PublisherSpec,
  pools: string[],
  concurrency: number,
): Promise<CapacityRun> {
  const meter = s.cpuMeter({ subNode: other, pubNode: server });
  const meterStart = now();
  meter.start();
  const [loop, profile] = await s.profiled(server, `publish-capacity ${label}`, () =>
    s.publisher!.call<{ calls: number; events: number; failed: number; errors: string[]; startTs: number; endTs: number }>("publish", {
      url: server.url,
      spec,
      pools,
      concurrency,
      durationMs: SIZES.publishCapacityMs,
    }),
  );
  const cpuPercent = meter.stop();
  const cpuWallMs = now() - meterStart;
  const publishMs = loop.endTs - loop.startTs;
  const run: CapacityRun = { ...loop, publishMs, publishPerSecond: (loop.events * 1000) / publishMs, cpuPercent, cpuWallMs, profile };
  if (loop.failed > 0) s.log(`  ${label}: ${loop.failed} publish calls failed: ${loop.errors.slice(0, 2).join("; ")}`);
  s.log(`  ${label}, no subscribers: ${human(run.publishPerSecond)} events/s published; cpu ${cpuText(cpuPercent)}`);
  return run;
}
