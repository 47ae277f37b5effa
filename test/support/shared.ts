import { startServer, type ServerProcess } from "./server.js";

const registry = globalThis as typeof globalThis & { __switchyardShared?: Promise<ServerProcess> };

/** One node most tests share (fresh tenants keep them apart); tests that crash or reconfigure a node start their own. */
export function sharedServer(): Promise<ServerProcess> {
  registry.__switchyardShared ??= startServer({ NODE_ID: `shared-${process.pid}` });
  return registry.__switchyardShared;
}
