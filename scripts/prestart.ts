// `npm start`'s preparation (the `prestart` script; `--build-only` for `npm run worker`), in the order that fails fastest:
//   1. the configuration, validated before anything else (a bad variable fails in well under a second);
//   2. scripts/ensure-services.sh (this machine's own PostgreSQL and Redis, when they are installed but down);
//   3. `prisma generate` when the schema is newer than the generated client, and `tsc` (incremental) to dist/, with
//      the files it does not emit (scripts/build-assets.ts), when a source or a compiler setting is newer than the
//      last build;
//      the browser console bundled into dist/console/ when a source of it is newer (not for the worker);
//   4. the database created when missing and pending migrations applied (none: one query).
// Production images skip all of this: they are built once and run `node dist/main.js` after `npm run migrate`.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync, utimesSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError, loadConfig, type Config } from "../src/config.js";
import { errorMessage, setupDatabase } from "../src/db/setup.js";
import { redactUrl } from "../src/observability/redact.js";
import { copyAssets } from "./build-assets.js";
import { buildConsole, consoleIsStale } from "./build-console.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name: string): string => path.join(root, "node_modules", ".bin", name);
const say = (line: string): void => void process.stdout.write(`prestart: ${line}\n`);

function step(what: string, command: string, args: string[]): void {
  const started = performance.now();
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit", env: { ...process.env, CHECKPOINT_DISABLE: "1" } });
  if (result.status !== 0) {
    process.stderr.write(
      `prestart: ${what} failed (${result.error ? errorMessage(result.error) : `exit ${result.status ?? result.signal}`})\n`,
    );
    process.exit(1);
  }
  say(`${what} (${Math.round(performance.now() - started)} ms)`);
}

// `npm run worker` needs only the compiled output: no database of its own.
const buildOnly = process.argv.includes("--build-only");

let config: Config | undefined;
if (!buildOnly)
  try {
    config = loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) process.stderr.write(`config error: ${problem}\n`);
    process.exit(78); // EX_CONFIG, as the server itself
  }

if (!buildOnly) step("services checked", "bash", [path.join(root, "scripts", "ensure-services.sh")]);

const generated = path.join(root, "src", "generated", "prisma", "client.ts");
const schema = path.join(root, "prisma", "schema.prisma");
if (!existsSync(generated) || statSync(generated).mtimeMs < statSync(schema).mtimeMs) {
  step("prisma client generated", bin("prisma"), ["generate"]);
}
// tsc's incremental build still parses and binds every file when nothing changed (several seconds on a busy
// machine): a walk of src/'s modification times (directories too: a file removed or renamed changes its
// directory's) tells in milliseconds that dist/ is current.
const buildInfo = path.join(root, "dist", ".tsbuildinfo");
function newestIn(dir: string): number {
  let newest = statSync(dir).mtimeMs;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestIn(full) : statSync(full).mtimeMs);
  }
  return newest;
}
function distIsStale(): boolean {
  if (!existsSync(buildInfo)) return true;
  const builtAt = statSync(buildInfo).mtimeMs;
  const settings = ["tsconfig.json", "tsconfig.build.json", "package-lock.json"].map((file) => path.join(root, file));
  return newestIn(path.join(root, "src")) > builtAt || settings.some((file) => existsSync(file) && statSync(file).mtimeMs > builtAt);
}
if (distIsStale()) {
  step("compiled to dist/", bin("tsc"), ["-p", path.join(root, "tsconfig.build.json")]);
  copyAssets();
  // tsc leaves its build info alone when no output changed (a file saved without a change): mark the check done.
  const now = new Date();
  if (existsSync(buildInfo)) utimesSync(buildInfo, now, now);
} else {
  say("dist/ up to date");
}

// In this process (esbuild is an API): an unchanged console costs a few stat calls, a rebuild about 0.3 s.
if (!buildOnly && consoleIsStale()) {
  const started = performance.now();
  try {
    await buildConsole();
  } catch (error) {
    process.stderr.write(`prestart: console build failed (${errorMessage(error)})\n`);
    process.exit(1);
  }
  say(`console built into dist/console/ (${Math.round(performance.now() - started)} ms)`);
}

if (config)
  try {
    const started = performance.now();
    const { created, applied } = await setupDatabase(config.databaseUrl);
    const state = applied.length === 0 ? "up to date" : `${applied.length} migration(s) applied`;
    say(`database ${redactUrl(config.databaseUrl)}${created ? " created," : ""} ${state} (${Math.round(performance.now() - started)} ms)`);
  } catch (error) {
    process.stderr.write(`prestart: ${errorMessage(error)}\n`);
    process.exit(1);
  }
