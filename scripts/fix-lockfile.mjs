// npm here cannot resolve the other platforms' builds of @msgpackr-extract (a bullmq dependency), so the
// lockfile it writes lacks their entries and `npm ci` then refuses it. Run after every dependency change:
//   node scripts/fix-lockfile.mjs
import { readFileSync, writeFileSync } from "node:fs";

const path = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(path, "utf8"));
const extract = lock.packages["node_modules/msgpackr-extract"];
if (!extract) process.exit(0);
const version = extract.version;
const platforms = {
  "darwin-arm64": ["darwin", "arm64"],
  "darwin-x64": ["darwin", "x64"],
  "linux-arm": ["linux", "arm"],
  "linux-arm64": ["linux", "arm64"],
  "linux-x64": ["linux", "x64"],
  "win32-x64": ["win32", "x64"],
};
let added = 0;
for (const [name, [os, cpu]] of Object.entries(platforms)) {
  const key = `node_modules/@msgpackr-extract/msgpackr-extract-${name}`;
  if (!lock.packages[key]) {
    lock.packages[key] = { version, cpu: [cpu], license: "MIT", optional: true, os: [os] };
    added++;
  }
}
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`fix-lockfile: added ${added} @msgpackr-extract platform entries`);
