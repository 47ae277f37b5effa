// Builds the browser console (console/) into dist/console/, which every node serves at /dashboard/:
//   main.js (+ .map)   console/src/main.tsx bundled with Preact, SwitchyardClient and socket.io-client, minified
//   styles.css         console/styles.css, minified
//   index.html, favicon.svg   copied
// `npm run build` runs it (`tsx scripts/build-console.ts`); `npm start`'s preparation calls buildConsole() when a
// source is newer than the output. esbuild is the whole toolchain: no config file, no plugins.
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const CONSOLE_OUT = path.join(root, "dist", "console");
/** Everything the bundle is made of: the console itself, and the client helper and protocol it imports. */
const SOURCES = [path.join(root, "console"), path.join(root, "src", "client"), path.join(root, "src", "protocol")];
const COPIED = ["index.html", "favicon.svg"];

function newestIn(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestIn(full) : statSync(full).mtimeMs);
  }
  return newest;
}

/** True when dist/console/ is missing or older than a source file. */
export function consoleIsStale(): boolean {
  const built = path.join(CONSOLE_OUT, "main.js");
  if (!existsSync(built)) return true;
  const builtAt = Math.min(
    ...[built, ...COPIED.map((f) => path.join(CONSOLE_OUT, f)), path.join(CONSOLE_OUT, "styles.css")].map((f) =>
      existsSync(f) ? statSync(f).mtimeMs : 0,
    ),
  );
  return SOURCES.some((dir) => newestIn(dir) > builtAt);
}

/** Bundles the console; resolves with the output's files and sizes. */
export async function buildConsole(outdir = CONSOLE_OUT): Promise<Array<{ file: string; bytes: number }>> {
  mkdirSync(outdir, { recursive: true });
  const result = await build({
    absWorkingDir: root,
    entryPoints: { main: "console/src/main.tsx", styles: "console/styles.css" },
    outdir,
    bundle: true,
    minify: true,
    sourcemap: true,
    format: "iife",
    platform: "browser",
    target: ["chrome110", "firefox110", "safari16"],
    jsx: "automatic",
    jsxImportSource: "preact",
    tsconfig: "console/tsconfig.json",
    define: { "process.env.NODE_ENV": '"production"' },
    legalComments: "linked",
    metafile: true,
    logLevel: "warning",
  });
  for (const file of COPIED) copyFileSync(path.join(root, "console", file), path.join(outdir, file));
  const outputs = Object.entries(result.metafile.outputs).map(([file, meta]) => ({
    file: path.relative(root, path.resolve(root, file)),
    bytes: meta.bytes,
  }));
  return [
    ...outputs,
    ...COPIED.map((f) => ({ file: path.relative(root, path.join(outdir, f)), bytes: statSync(path.join(outdir, f)).size })),
  ];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const started = performance.now();
  const files = await buildConsole();
  const sizes = files.filter((f) => !f.file.endsWith(".map")).map((f) => `${path.basename(f.file)} ${(f.bytes / 1024).toFixed(1)} KiB`);
  process.stdout.write(
    `console built into ${path.relative(root, CONSOLE_OUT)}/ in ${Math.round(performance.now() - started)} ms: ${sizes.join(", ")}\n`,
  );
}
