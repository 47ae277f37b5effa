import { spawn, type ChildProcess } from "node:child_process";

// On globalThis because mocha may load support modules twice (the --require hooks and the specs).
const registry = globalThis as typeof globalThis & { __switchyardCliProcesses?: Set<CliProcess> };
const running = (registry.__switchyardCliProcesses ??= new Set<CliProcess>());

/** A command-line program a test runs (the watcher, a script in a fresh project), its output kept apart by stream. */
export interface CliProcess {
  process: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the output of `stream` once `pattern` matches it; rejects on exit or after `timeoutMs`. */
  waitFor(stream: "stdout" | "stderr", pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves with the exit code (null when a signal ended it). */
  exited: Promise<number | null>;
  /** SIGKILL unless it already exited; resolves once it has. */
  kill(): Promise<void>;
}

export function runCli(command: string, args: string[], options: { cwd: string; env: Record<string, string> }): CliProcess {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"] });
  const output = { stdout: "", stderr: "" };
  const listeners = new Set<() => void>();
  for (const stream of ["stdout", "stderr"] as const) {
    child[stream].on("data", (chunk: Buffer) => {
      output[stream] += chunk.toString();
      for (const listener of listeners) listener();
    });
  }
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  const cli: CliProcess = {
    process: child,
    stdout: () => output.stdout,
    stderr: () => output.stderr,
    exited,
    waitFor(stream, pattern, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const done = (): void => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        const check = (): void => {
          if (!pattern.test(output[stream])) return;
          done();
          resolve(output[stream]);
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${pattern} did not appear on ${stream} in time\n--- stdout:\n${output.stdout}\n--- stderr:\n${output.stderr}`));
        }, timeoutMs);
        listeners.add(check);
        void exited.then((code) => {
          if (!listeners.has(check)) return;
          check();
          if (!listeners.has(check)) return;
          done();
          reject(
            new Error(
              `exited with ${code} before ${pattern} appeared on ${stream}\n--- stdout:\n${output.stdout}\n--- stderr:\n${output.stderr}`,
            ),
          );
        });
        check();
      });
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
      running.delete(cli);
    },
  };
  running.add(cli);
  void exited.then(() => running.delete(cli));
  return cli;
}

/** Kills the programs a test started and left running (each test leaves no process behind). */
export async function killAllCli(): Promise<void> {
  await Promise.all([...running].map((cli) => cli.kill()));
}
