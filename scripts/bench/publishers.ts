// How the bench makes events happen. A Publisher produces events for pools (a room pair `pools` +
// `pool:<id>`, or the room `pool:<id>` alone), each tagged with a per-pool sequence number `seq` that
// subscribers read back from the event (`data.to`) to match a receipt with its publish. One call publishes
// `perCall` such events (a batch for the publish API, one for the others). Swapping the publish path means
// writing one more Publisher here; the loops below stay the same.

import { randomUUID } from "node:crypto";
import type { HttpClient } from "./lib.js";
import { now } from "./lib.js";

/** One event of a call: the pool it is about and its per-pool sequence number. */
export type Slot = [poolId: string, seq: number];

export interface Publisher {
  /** Events (slots) one call publishes. */
  perCall: number;
  /** Publishes one call's events; resolves with how many events reached a room (per room pair, one). */
  publish(slots: Slot[]): Promise<number>;
}

/** The custom event type both publish-API paths use (not under Switchyard's built-in prefixes). */
export const BENCH_EVENT_TYPE = "bench.tick";

export type PublisherSpec =
  /** Switchyard's real REST path: POST /api/v1/pools/:id/scale → `pool.scaling` to `pools` and `pool:<id>` (stored, then broadcast). */
  | { kind: "switchyard-scale"; token: string }
  /** Switchyard's publish API: POST /api/v1/events { events: [batch × { namespace: "pools", room: "pool:<id>", type, data }] }. */
  | { kind: "switchyard-events"; token: string; batch: number }
  /** Baseline, one HTTP call per event, emitting to the same two rooms: the baseline's equivalent of the call above. */
  | { kind: "baseline-http"; tenant: string; rooms: "pools" | "pool" | "both" }
  /** Baseline emit loop: one HTTP call makes the server emit `batch` events back to back (broadcast capacity). */
  | { kind: "baseline-loop"; tenant: string; rooms: "pools" | "pool" | "both"; batch: number }
  /** Baseline, a batch of distinct events per HTTP call (POST /publish-batch), each emitted once: the publish API's equivalent. */
  | { kind: "baseline-batch"; tenant: string; batch: number };

/** A pool as Switchyard serializes it, so baseline events carry a payload of the same shape and size. */
function poolView(poolId: string, seq: number) {
  const ts = new Date().toISOString();
  return { id: poolId, name: `bench-${poolId.slice(0, 8)}`, desiredWorkers: seq, status: "active", createdAt: ts, updatedAt: ts };
}

function baselineRooms(mode: "pools" | "pool" | "both", poolId: string): string[] {
  if (mode === "pools") return ["pools"];
  if (mode === "pool") return [`pool:${poolId}`];
  return ["pools", `pool:${poolId}`];
}

/** The `data` of a published bench event: the same for Switchyard's publish API and the baseline's batch. */
function tickData(poolId: string, seq: number) {
  return { poolId, to: seq, at: new Date().toISOString() };
}

export function createPublisher(spec: PublisherSpec, http: HttpClient): Publisher {
  switch (spec.kind) {
    case "switchyard-scale": {
      const headers = { authorization: `Bearer ${spec.token}` };
      return {
        perCall: 1,
        async publish(slots) {
          const [poolId, seq] = slots[0]!;
          const res = await http.request("POST", `/api/v1/pools/${encodeURIComponent(poolId)}/scale`, { desiredWorkers: seq }, headers);
          if (res.status !== 202) throw new Error(`scale ${poolId}: HTTP ${res.status} ${res.body.slice(0, 200)}`);
          return 1;
        },
      };
    }
    case "switchyard-events": {
      const headers = { authorization: `Bearer ${spec.token}` };
      return {
        perCall: spec.batch,
        async publish(slots) {
          const events = slots.map(([poolId, seq]) => ({
            namespace: "pools",
            room: `pool:${poolId}`,
            type: BENCH_EVENT_TYPE,
            data: tickData(poolId, seq),
          }));
          const res = await http.request("POST", "/api/v1/events", { events }, headers);
          if (res.status !== 202) throw new Error(`events: HTTP ${res.status} ${res.body.slice(0, 200)}`);
          return events.length;
        },
      };
    }
    case "baseline-batch": {
      return {
        perCall: spec.batch,
        async publish(slots) {
          const events = slots.map(([poolId, seq]) => ({ room: `pool:${poolId}`, type: BENCH_EVENT_TYPE, data: tickData(poolId, seq) }));
          const res = await http.request("POST", "/publish-batch", { namespace: "pools", tenant: spec.tenant, events });
          if (res.status !== 202) throw new Error(`publish-batch: HTTP ${res.status} ${res.body.slice(0, 200)}`);
          return events.length;
        },
      };
    }
    case "baseline-http":
    case "baseline-loop": {
      const count = spec.kind === "baseline-loop" ? spec.batch : 1;
      return {
        perCall: 1,
        async publish(slots) {
          const [poolId, seq] = slots[0]!;
          const res = await http.request("POST", "/publish", {
            namespace: "pools",
            tenant: spec.tenant,
            rooms: baselineRooms(spec.rooms, poolId),
            type: "pool.scaling",
            data: { poolId, from: seq - 1, to: seq, pool: poolView(poolId, seq), id: randomUUID() },
            count,
          });
          if (res.status !== 200) throw new Error(`publish: HTTP ${res.status} ${res.body.slice(0, 200)}`);
          return count;
        },
      };
    }
  }
}

/** Per-pool sequence numbers 1..10000 (Switchyard caps desiredWorkers at 10,000). */
export class SeqSource {
  private readonly seqs = new Map<string, number>();
  private index = 0;
  constructor(private readonly pools: string[]) {}
  next(): Slot {
    const poolId = this.pools[this.index++ % this.pools.length]!;
    const seq = ((this.seqs.get(poolId) ?? 0) % 10_000) + 1;
    this.seqs.set(poolId, seq);
    return [poolId, seq];
  }
}

export interface LoopResult {
  calls: number;
  events: number;
  failed: number;
  errors: string[];
  startTs: number;
  endTs: number;
  /** Open loop only: the intended send time of each published event, keyed `${poolId}:${seq}`. */
  sends?: Array<[string, number]>;
  /** Open loop only: publishes that could not start on time because maxInFlight calls were pending. */
  late?: number;
  /** Open loop only: publishes never made because the window ended first. */
  skipped?: number;
  callLatency?: number[];
}

/**
 * As many calls as `concurrency` allows, back to back, for `durationMs` (or until `limit` calls were made).
 * With `gate`, a call starts only while the events of all calls started so far stay within `gate()` (the caller
 * raises it as deliveries come in, which bounds the backlog between publishers and subscribers).
 */
export async function closedLoop(
  publisher: Publisher,
  seqs: SeqSource,
  concurrency: number,
  durationMs: number,
  limit = Infinity,
  gate?: () => number,
): Promise<LoopResult & { gatedMs: number }> {
  const result: LoopResult & { gatedMs: number } = { calls: 0, events: 0, failed: 0, errors: [], startTs: now(), endTs: 0, gatedMs: 0 };
  const deadline = result.startTs + durationMs;
  let started = 0;
  const lane = async (): Promise<void> => {
    while (now() < deadline && result.calls < limit) {
      if (gate && started + publisher.perCall > gate()) {
        const t = now();
        while (started + publisher.perCall > gate() && now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2));
        result.gatedMs += now() - t;
        continue;
      }
      const slots = Array.from({ length: publisher.perCall }, () => seqs.next());
      started += publisher.perCall;
      result.calls++;
      try {
        const produced = await publisher.publish(slots); // not `events += await ...`: that reads `events` before the await
        result.events += produced;
      } catch (error) {
        result.failed++;
        if (result.errors.length < 5) result.errors.push((error as Error).message);
        if (result.failed > 1000) return;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  result.endTs = now();
  return result;
}

/**
 * A fixed offered rate of calls (`rate` calls/s, each of `perCall` events): call k is due at start + k/rate.
 * Latency is measured from the due time, so a publisher that falls behind shows up in the latency instead of
 * silently lowering the rate (no coordinated omission). At most `maxInFlight` calls are pending; publishes still not started when the window ends are
 * skipped (counted in `skipped`), so an overloaded server cannot stretch the run.
 */
export async function openLoop(
  publisher: Publisher,
  seqs: SeqSource,
  rate: number,
  durationMs: number,
  maxInFlight: number,
): Promise<LoopResult> {
  const result: LoopResult = {
    calls: 0,
    events: 0,
    failed: 0,
    errors: [],
    startTs: now(),
    endTs: 0,
    sends: [],
    late: 0,
    skipped: 0,
    callLatency: [],
  };
  const total = Math.floor((rate * durationMs) / 1000);
  const windowEnd = result.startTs + durationMs;
  const inFlight = new Set<Promise<void>>();
  for (let k = 0; k < total; k++) {
    const due = result.startTs + (k * 1000) / rate;
    const wait = due - now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    if (inFlight.size >= maxInFlight) {
      result.late!++;
      while (inFlight.size >= maxInFlight) await Promise.race(inFlight);
    }
    if (now() > windowEnd) {
      result.skipped = total - k;
      break;
    }
    const slots = Array.from({ length: publisher.perCall }, () => seqs.next());
    for (const [poolId, seq] of slots) result.sends!.push([`${poolId}:${seq}`, due]);
    result.calls++;
    const call = publisher.publish(slots).then(
      (n) => {
        result.events += n;
        result.callLatency!.push(now() - due);
      },
      (error: unknown) => {
        result.failed++;
        if (result.errors.length < 5) result.errors.push((error as Error).message);
      },
    );
    const tracked = call.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  }
  await Promise.all(inFlight);
  result.endTs = now();
  return result;
}
