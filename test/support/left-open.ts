import { ChildProcess } from "node:child_process";
import { Server, Socket } from "node:net";
import { stillTracked } from "./tracked.js";

/** How long the run may take to wind down after the last hook before what holds it open is named and it fails. */
const GRACE_MS = 10_000;

// Node's list of the handles that keep the event loop alive: undocumented, but the only way to name them (the
// documented process.getActiveResourcesInfo() gives bare type names). Absent on a Node without it.
const internals = process as NodeJS.Process & { _getActiveHandles?: () => unknown[] };

function describe(handle: unknown): string | undefined {
  if (handle === process.stdin || handle === process.stdout || handle === process.stderr) return undefined;
  if (handle instanceof ChildProcess) return `child process ${handle.pid}: ${handle.spawnargs.join(" ").slice(0, 200)}`;
  if (handle instanceof Server) {
    const address = handle.address();
    return `server listening on ${typeof address === "string" ? address : `${address?.address}:${address?.port}`}`;
  }
  if (handle instanceof Socket) {
    // A child's stdio pipe: its process is listed on its own.
    if (handle.remotePort === undefined) return undefined;
    return `socket ${handle.localAddress}:${handle.localPort} → ${handle.remoteAddress}:${handle.remotePort}`;
  }
  const name = (handle as { constructor?: { name?: string } }).constructor?.name ?? typeof handle;
  const callback = (handle as { _onTimeout?: { name?: string } })._onTimeout?.name;
  return callback ? `${name} (${callback || "anonymous"})` : name;
}

/**
 * Called when the run's teardown is done: if anything still holds the process after a grace period (a client,
 * socket, timer or child a test opened and nothing closed), names it and exits 1. Mocha's `exit: true` would hide
 * such a leak; waiting forever would hang CI.
 */
export function failIfLeftOpen(): void {
  const timer = setTimeout(() => {
    const handles = (internals._getActiveHandles?.() ?? []).map(describe).filter((d): d is string => d !== undefined);
    const counts = new Map<string, number>();
    for (const resource of process.getActiveResourcesInfo()) counts.set(resource, (counts.get(resource) ?? 0) + 1);
    const lines = [
      ...handles,
      ...stillTracked().map((what) => `tracked, never closed: ${what}`),
      `active resources: ${[...counts].map(([name, n]) => `${name} x${n}`).join(", ") || "none"}`,
    ];
    process.stderr.write(
      `\n*** The tests finished, but ${GRACE_MS / 1000} s later the process is still held open by:\n` +
        `${lines.map((line) => `  - ${line}`).join("\n")}\n` +
        `Close it in the test or helper that opened it (test/support/tracked.ts tracks clients). Exiting with 1. ***\n`,
    );
    // Mocha (exit: false) sets the exit code to the failure count in its own "exit" listener; this one is added
    // after it, so a run with no failing test still ends non-zero.
    process.on("exit", () => {
      process.exitCode = Math.max(Number(process.exitCode ?? 0), 1);
    });
    process.exit(1);
  }, GRACE_MS);
  // Unreferenced: a run that closed everything exits at once, and this never fires.
  timer.unref();
}
