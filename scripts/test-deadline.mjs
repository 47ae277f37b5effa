#!/usr/bin/env node
// Runs a command (the process tests) under an overall deadline, so a run that hangs fails CI with a message instead
// of holding it until the CI's own limit. Usage: node scripts/test-deadline.mjs <minutes> <command> [args...]
// TEST_DEADLINE_MINUTES overrides the limit (a slow machine, or a single file run with --inspect).
import { spawn } from "node:child_process";

const [limitArg, command, ...args] = process.argv.slice(2);
const minutes = Number(process.env.TEST_DEADLINE_MINUTES ?? limitArg);
if (!command || !(minutes > 0)) {
  console.error("usage: node scripts/test-deadline.mjs <minutes> <command> [args...]");
  process.exit(2);
}

// Its own process group, so the whole tree (mocha and the nodes, workers and CLIs it spawned) can be stopped.
const child = spawn(command, args, { stdio: "inherit", detached: true });
const signalGroup = (signal) => {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is already gone.
  }
};
let timedOut = false;
const deadline = setTimeout(() => {
  timedOut = true;
  process.stderr.write(
    `\n*** ${command} ${args.join(" ")} still running after ${minutes} min (the overall deadline): stopping it. A test or hook is hanging; the output above shows the last one that ran. ***\n`,
  );
  signalGroup("SIGTERM");
  // Give mocha's own teardown a moment, then end everything that is left.
  setTimeout(() => signalGroup("SIGKILL"), 15_000).unref();
}, minutes * 60_000);
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => signalGroup(signal));
child.on("exit", (code, signal) => {
  clearTimeout(deadline);
  if (timedOut) process.exit(124);
  process.exit(code ?? (signal ? 128 : 1));
});
