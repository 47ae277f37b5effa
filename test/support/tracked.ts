import { SwitchyardClient, type NamespaceName, type SwitchyardClientOptions } from "../../src/client/index.js";

/**
 * What a test opened that would outlive a failed assertion: a SwitchyardClient reconnects forever, a submitter keeps
 * retrying. Whatever registers here is closed by the root afterEach hook (test/support/hooks.ts), so a failing test
 * fails instead of holding the run open.
 */
interface Tracked {
  what: string;
  close(): void | Promise<void>;
}

// On globalThis because mocha may load support modules twice (the --require hooks and the specs).
const registry = globalThis as typeof globalThis & { __switchyardTracked?: Map<object, Tracked> };
const open = (registry.__switchyardTracked ??= new Map<object, Tracked>());

/**
 * Registers `thing` to be closed after the current test; returns it. For what a test opens: one opened in a suite's
 * `before` would be closed after that suite's first test.
 */
export function track<T extends object>(thing: T, what: string, close: (thing: T) => void | Promise<void>): T {
  open.set(thing, { what, close: () => close(thing) });
  return thing;
}

/** A SwitchyardClient closed after the current test, whatever the test does. */
export function openClient<N extends NamespaceName>(options: SwitchyardClientOptions<N>): SwitchyardClient<N> {
  const urls = Array.isArray(options.urls) ? options.urls.join(",") : String(options.urls);
  return track(new SwitchyardClient<N>(options), `SwitchyardClient ${options.namespace} → ${urls}`, (client) => client.close());
}

/** Closes everything tracked; a close that throws is reported, not allowed to hide the others. */
export async function closeAllTracked(): Promise<void> {
  const entries = [...open.values()].reverse();
  open.clear();
  for (const entry of entries) {
    try {
      await entry.close();
    } catch (error) {
      process.stderr.write(`      could not close ${entry.what}: ${(error as Error).message}\n`);
    }
  }
}

/** What is still registered (for the end-of-run report). */
export function stillTracked(): string[] {
  return [...open.values()].map((entry) => entry.what);
}
