import { readFileSync } from "node:fs";
import type { Result } from "ioredis";
import type { RedisClient } from "./redis-connection.js";

/*
 * Every Lua script Switchyard runs, one file each in ./lua/ (the build copies them beside the compiled code, into
 * dist/jobs/lua/: scripts/build-assets.ts), defined on a connection as ioredis commands: EVALSHA, and EVAL only
 * when Redis does not know the script yet (after a restart, say). On a Redis Cluster the keys of one call must
 * share a hash slot: RedisKeys gives the keys used together one hash tag.
 */

const SCRIPTS = {
  tenantConnectionsAdmit: { file: "tenant-connections-admit.lua", numberOfKeys: 2 },
  tenantConnectionsHeartbeat: { file: "tenant-connections-heartbeat.lua", numberOfKeys: 1 },
  tenantRunningTake: { file: "tenant-running-take.lua", numberOfKeys: 2 },
  releasePresence: { file: "release-presence.lua", numberOfKeys: 1 },
  // As many keys as the call passes: its first argument says how many.
  sumWaiting: { file: "sum-waiting.lua", numberOfKeys: undefined },
} as const;

declare module "ioredis" {
  interface RedisCommander<Context> {
    tenantConnectionsAdmit(
      tenantKey: string,
      instancesKey: string,
      instance: string,
      count: number,
      limit: number,
      ttlMs: number,
    ): Result<[number, number], Context>;
    tenantConnectionsHeartbeat(instancesKey: string, instance: string, ttlMs: number): Result<number, Context>;
    tenantRunningTake(runningKey: string, limitKey: string, taskId: string, ttlMs: number): Result<number, Context>;
    releasePresence(presenceKey: string, connectionId: string, graceMs: number): Result<number, Context>;
    sumWaiting(numberOfKeys: number, ...keys: string[]): Result<number, Context>;
  }
}

/** Each script's text, read once per process. */
let sources: Map<keyof typeof SCRIPTS, string> | undefined;
const defined = new WeakSet<RedisClient>();

/** Makes every script a command of `redis`; a connection already given them is left as it is. */
export function defineScripts(redis: RedisClient): void {
  if (defined.has(redis)) return;
  sources ??= new Map(
    (Object.keys(SCRIPTS) as Array<keyof typeof SCRIPTS>).map((name) => [
      name,
      readFileSync(new URL(`./lua/${SCRIPTS[name].file}`, import.meta.url), "utf8"),
    ]),
  );
  for (const [name, lua] of sources) {
    const { numberOfKeys } = SCRIPTS[name];
    redis.defineCommand(name, numberOfKeys === undefined ? { lua } : { numberOfKeys, lua });
  }
  defined.add(redis);
}
