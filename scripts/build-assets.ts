// What dist/ needs beside the compiled code that tsc does not emit: the Lua scripts (src/jobs/lua/ → dist/jobs/lua/,
// read by src/jobs/lua.ts relative to itself). Run by `npm run build` and `npm start`'s preparation; an unchanged
// tree costs a few file copies.
import { cpSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export function copyAssets(): void {
  cpSync(path.join(root, "src", "jobs", "lua"), path.join(root, "dist", "jobs", "lua"), { recursive: true });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) copyAssets();
