// Memory per idle, authenticated, subscribed socket (RSS and V8 heap after a full GC, minus the warmed-up idle
// server) and the connect+subscribe rate, Switchyard next to the baseline.

import { human, sleep } from "../lib.js";
import { kib, ratio } from "../format.js";
import { SIZES } from "../options.js";
import { sampleMemory, type MemorySample } from "../procs.js";
import type { Suite } from "../suite.js";

export async function idleScenario(s: Suite): Promise<void> {
  const perServer: Record<string, unknown> = {};
  const measured: Record<
    string,
    Array<{ sockets: number; rssPerSocket: number; heapPerSocket: number; connectPerSecond: number; sample: MemorySample; failed: number }>
  > = {};
  for (const server of [s.nodeA!, s.baseA!]) {
    // Warm-up: one-time costs (lazy module init, JIT, the database client's first queries, the room's first
    // subscription) must not be counted per socket; it also warms the load generators for both servers alike.
    await s.connectSockets(server, "/pools", s.tokens.idle, ["pools"], 200);
    await s.closeSockets();
    const before = await sampleMemory(server);
    s.log(
      `idle ${server.name}: before rss ${(before.rssBytes / 2 ** 20).toFixed(1)} MiB heap ${(before.heapUsedBytes / 2 ** 20).toFixed(1)} MiB (gc ${before.gc})`,
    );
    let have = 0;
    const steps: (typeof measured)[string] = [];
    for (const size of SIZES.idleSockets) {
      const connect = await s.connectSockets(server, "/pools", s.tokens.idle, ["pools"], size - have);
      have = size;
      await sleep(1000);
      const sample = await sampleMemory(server);
      const step = {
        sockets: size,
        rssPerSocket: (sample.rssBytes - before.rssBytes) / size,
        heapPerSocket: (sample.heapUsedBytes - before.heapUsedBytes) / size,
        connectPerSecond: connect.perSecond,
        sample,
        failed: connect.failed,
      };
      steps.push(step);
      s.log(
        `idle ${server.name} ${size} sockets: rss ${kib(step.rssPerSocket)}/socket, heap ${kib(step.heapPerSocket)}/socket, ` +
          `connect+subscribe ${human(connect.perSecond)}/s`,
      );
    }
    measured[server.kind] = steps;
    perServer[server.kind] = { before, steps };
    await s.closeSockets();
  }
  for (let i = 0; i < SIZES.idleSockets.length; i++) {
    const sw = measured.switchyard![i]!;
    const base = measured.baseline![i]!;
    const n = `${human(sw.sockets, 0)} sockets`;
    s.rows.push({
      scenario: `idle ${n}`,
      metric: "RSS per socket",
      switchyard: kib(sw.rssPerSocket),
      baseline: kib(base.rssPerSocket),
      ratio: ratio(sw.rssPerSocket, base.rssPerSocket),
      notes: "after full GC, minus the idle server",
    });
    s.rows.push({
      scenario: `idle ${n}`,
      metric: "heap per socket",
      switchyard: kib(sw.heapPerSocket),
      baseline: kib(base.heapPerSocket),
      ratio: ratio(sw.heapPerSocket, base.heapPerSocket),
      notes: "",
    });
    s.rows.push({
      scenario: `idle ${n}`,
      metric: "connect+subscribe/s",
      switchyard: human(sw.connectPerSecond),
      baseline: human(base.connectPerSecond),
      ratio: ratio(sw.connectPerSecond, base.connectPerSecond),
      notes: sw.failed + base.failed > 0 ? `failed: sw ${sw.failed}, base ${base.failed}` : "handshake + JWT + subscribe ack",
    });
  }
  s.writeResult("idle", perServer);
}
