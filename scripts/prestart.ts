// `npm start`'s preparation (the `prestart` script; `--build-only` for `npm run worker`), in the order that fails fastest:
//   1. the configuration, validated before anything else (a bad variable fails in well under a second);
//   2. scripts/ensure-services.sh (this machine's own PostgreSQL and Redis, when they are installed but down);
//   3. `prisma generate` when the schema is newer than the generated client, and `tsc` (incremental) to dist/ with
//      the files it does not emit (scripts/build-assets.ts);
//      the browser console bundled into dist/console/ when a source of it is newer (not for the worker);
//   4. the database created when missing and pending migrations applied (none: one query).
// Production images skip all of this: they are built once and run `node dist/main.js` after `npm run migrate`.
import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError, loadConfig, type Config } from "../src/config.js";
import { errorMessage, redactUrl, setupDatabase } from "../src/db/setup.js";
import { copyAssets } from "./build-assets.js";
import { buildConsole, consoleIsStale } from "./build-console.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name: string): string => path.join(root, "node_modules", ".bin", name);
const say = (line: string): void => void process.stdout.write(`prestart: ${line}\n`);

function step(what: string, command: string, args: string[]): void {
  const started = performance.now();
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit", env: { ...process.env, CHECKPOINT_DISABLE: "1" } });
  if (result.status !== 0) {
    process.stderr.write(`prestart: ${what} failed (${result.error ? errorMessage(result.error) : `exit ${result.status ?? result.signal}`})\n`);
    process.exit(1);
  }
  say(`${what} (${Math.round(performance.now() - started)} ms)`);
}

// `npm run worker` needs only the compiled output: no database of its own.
const buildOnly = process.argv.includes("--build-only");

let config: Config | undefined;
if (!buildOnly) try {
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
step("compiled to dist/", bin("tsc"), ["-p", path.join(root, "tsconfig.build.json")]);
copyAssets();

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

if (config) try {
  const started = performance.now();
  const { created, applied } = await setupDatabase(config.databaseUrl);
  const state = applied.length === 0 ? "up to date" : `${applied.length} migration(s) applied`;
  say(`database ${redactUrl(config.databaseUrl)}${created ? " created," : ""} ${state} (${Math.round(performance.now() - started)} ms)`);
} catch (error) {
  process.stderr.write(`prestart: ${errorMessage(error)}\n`);
  process.exit(1);
}
