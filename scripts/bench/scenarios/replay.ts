// Events/s replayed to a client resubscribing with `after` (one client, then several at once), after seeding
// one room through concurrent REST scale calls (whose rate is a row of its own).

import { human, summarize } from "../lib.js";
import { cpuText, ms } from "../format.js";
import { SIZES } from "../options.js";
import type { Suite } from "../suite.js";

export async function replayScenario(s: Suite): Promise<void> {
  const created = await s.publisher!.call<Array<{ status: number; body: { pool?: { id: string } } }>>("http", {
    url: s.nodeA!.url,
    method: "POST",
    path: "/api/v1/pools",
    bodies: [{ name: "replay" }],
    token: s.tokens.replay,
    concurrency: 1,
  });
  const poolId = created[0]?.body.pool?.id;
  if (!poolId) throw new Error(`could not create the replay pool: ${JSON.stringify(created[0]).slice(0, 300)}`);
  const room = `pool:${poolId}`;
  const { cursor } = await s.publisher!.call<{ cursor: string }>("headCursor", {
    url: s.nodeA!.url,
    nsp: "/pools",
    token: s.tokens.replay,
    room,
  });
  s.log(`replay: storing ${SIZES.replayEvents} events in ${room}`);
  const meter = s.cpuMeter({ server: s.nodeA! });
  meter.start();
  const [seed, seedProfile] = await s.profiled(s.nodeA!, "replay seeding", () =>
    s.publisher!.call<{ calls: number; failed: number; startTs: number; endTs: number; errors: string[] }>("publish", {
      url: s.nodeA!.url,
      spec: { kind: "switchyard-scale", token: s.tokens.replay },
      pools: [poolId],
      concurrency: 8,
      durationMs: 600_000,
      limit: SIZES.replayEvents,
    }),
  );
  if (seed.failed > 0) throw new Error(`seeding failed: ${seed.errors.join("; ")}`);
  const seedCpu = meter.stop();
  const seedRate = (seed.calls * 1000) / (seed.endTs - seed.startTs);
  s.log(`  stored at ${human(seedRate)} events/s (one room, 8 concurrent REST calls); cpu ${cpuText(seedCpu)}`);
  type ReplayResult = {
    perClient: Array<{ ok: boolean; replayed: number; received: number; ms: number; error?: unknown }>;
    totalMs: number;
  };
  const one = await s.publisher!.call<ReplayResult>("replay", {
    url: s.nodeA!.url,
    nsp: "/pools",
    token: s.tokens.replay,
    room,
    after: cursor,
    clients: 1,
  });
  const many = await s.publisher!.call<ReplayResult>("replay", {
    url: s.nodeA!.url,
    nsp: "/pools",
    token: s.tokens.replay,
    room,
    after: cursor,
    clients: SIZES.replayClients,
  });
  const check = (r: ReplayResult): void => {
    const bad = r.perClient.find((c) => !c.ok || c.received !== SIZES.replayEvents);
    if (bad) throw new Error(`replay incomplete: ${JSON.stringify(bad).slice(0, 300)}`);
  };
  check(one);
  check(many);
  const oneRate = (SIZES.replayEvents * 1000) / one.perClient[0]!.ms;
  const manyRate = (SIZES.replayEvents * SIZES.replayClients * 1000) / many.totalMs;
  const perClientMs = summarize(many.perClient.map((c) => c.ms));
  s.log(
    `  1 client: ${human(oneRate)} events/s; ${SIZES.replayClients} at once: ${human(manyRate)} events/s total, p99 ${ms(perClientMs.p99)} ms to ack`,
  );
  s.rows.push({
    scenario: `replay ${human(SIZES.replayEvents, 0)} events`,
    metric: "events/s, 1 client",
    switchyard: human(oneRate),
    baseline: "n/a",
    ratio: "n/a",
    notes: `subscribe {after} -> ack, ${ms(one.perClient[0]!.ms)} ms`,
  });
  s.rows.push({
    scenario: `replay ${human(SIZES.replayEvents, 0)} events`,
    metric: `events/s, ${SIZES.replayClients} clients at once`,
    switchyard: human(manyRate),
    baseline: "n/a",
    ratio: "n/a",
    notes: `slowest ack ${ms(perClientMs.max)} ms`,
  });
  s.rows.push({
    scenario: "publish into one room",
    metric: "events/s stored",
    switchyard: human(seedRate),
    baseline: "n/a",
    ratio: "n/a",
    notes: "replay seeding: 8 concurrent scale calls on one pool",
  });
  s.writeResult("replay", {
    room,
    events: SIZES.replayEvents,
    seeding: { ...seed, eventsPerSecond: seedRate, cpuPercent: seedCpu, profile: seedProfile },
    oneClient: { ...one, eventsPerSecond: oneRate },
    manyClients: { ...many, clients: SIZES.replayClients, eventsPerSecondTotal: manyRate, perClientMs },
  });
}
