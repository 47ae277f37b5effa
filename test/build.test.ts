import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { copyAssets } from "../scripts/build-assets.js";
import { dropDatabase } from "../src/db/setup.js";
import { TEST_DATABASE_URL, TEST_JWT_SECRET, TEST_REDIS_PREFIX, TEST_REDIS_URL } from "./support/env.js";

/*
 * The production build as the image runs it: `tsc` to dist/ (with scripts/build-assets.ts), then a directory holding exactly what the Dockerfile's
 * runtime stage copies (read from deploy/Dockerfile, so the two cannot drift apart), in which `node dist/migrate.js`
 * migrates a fresh database and `node dist/main.js` serves. No Docker engine here, so node_modules is the
 * checkout's (a symlink) rather than the image's production-only copy.
 */

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Sources (relative to the build stage's /src, or to the repository) and destinations of the runtime stage's COPY lines. */
function runtimeCopies(): Array<{ from: string; to: string }> {
  const dockerfile = readFileSync(path.join(repoRoot, "deploy", "Dockerfile"), "utf8");
  const runtime = dockerfile.slice(dockerfile.search(/^FROM .* AS runtime$/m));
  assert.ok(runtime.length < dockerfile.length, "the Dockerfile has a runtime stage");
  const copies: Array<{ from: string; to: string }> = [];
  for (const match of runtime.matchAll(/^COPY (?:--from=build )?(\S+) (\S+)$/gm)) {
    copies.push({ from: match[1]!.replace(/^\/src\//, ""), to: match[2]! });
  }
  return copies;
}

function output(child: ReturnType<typeof spawn>): () => string {
  let text = "";
  child.stdout?.on("data", (chunk: Buffer) => (text += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (text += chunk.toString()));
  return () => text;
}

describe("operations: the compiled build", function () {
  this.timeout(120_000);
  let dir: string;
  const databaseUrl = (() => {
    const url = new URL(TEST_DATABASE_URL);
    url.pathname = `${url.pathname}_build`;
    // PostgreSQL here trusts local connections, so a password is accepted and ignored: it must never be logged.
    url.password = "s3cret";
    return url.toString();
  })();

  before(async function () {
    await run(path.join(repoRoot, "node_modules", ".bin", "tsc"), ["-p", "tsconfig.build.json"], { cwd: repoRoot });
    // As `npm run build` does: what tsc does not emit (the Lua scripts).
    copyAssets();
    dir = mkdtempSync(path.join(tmpdir(), "switchyard-image-"));
    for (const { from, to } of runtimeCopies()) {
      const target = path.join(dir, to);
      if (from === "node_modules") {
        symlinkSync(path.join(repoRoot, "node_modules"), target);
        continue;
      }
      mkdirSync(to.endsWith("/") ? target : path.dirname(target), { recursive: true });
      cpSync(path.join(repoRoot, from), to.endsWith("/") ? path.join(target, path.basename(from)) : target, { recursive: true });
    }
  });

  after(async function () {
    if (dir) rmSync(dir, { recursive: true, force: true });
    await dropDatabase(databaseUrl);
  });

  it("migrates a new database with `node dist/migrate.js`, and then has nothing to do", async function () {
    const env = { PATH: process.env.PATH ?? "", DATABASE_URL: databaseUrl, NODE_ENV: "production" };
    const first = await run(process.execPath, ["dist/migrate.js"], { cwd: dir, env });
    assert.match(first.stdout, /created, applied \d+ migration\(s\)/);
    // The schema's datasource carries no URL of its own: Prisma has nothing to warn about.
    assert.doesNotMatch(first.stdout + first.stderr, /will NOT be used|datasource properties/);
    const second = await run(process.execPath, ["dist/migrate.js"], { cwd: dir, env });
    assert.match(second.stdout, /up to date, nothing to apply/);
  });

  it("serves with `node dist/main.js`: ready line with URL, node id, Redis and PostgreSQL; /ready; SIGTERM exits 0", async function () {
    const child = spawn(process.execPath, ["dist/main.js"], {
      cwd: dir,
      env: {
        PATH: process.env.PATH ?? "",
        NODE_ENV: "production",
        PORT: "0",
        HOST: "127.0.0.1",
        NODE_ID: "build-test",
        DATABASE_URL: databaseUrl,
        REDIS_URL: TEST_REDIS_URL,
        REDIS_PREFIX: `${TEST_REDIS_PREFIX}-build`,
        JWT_SECRET: TEST_JWT_SECRET,
        EMBEDDED_WORKER: "false",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const logs = output(child);
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ready line:\n${logs()}`)), 30_000);
        child.stdout.on("data", () => {
          const line = logs()
            .split("\n")
            .find((l) => l.includes('"msg":"switchyard listening"'));
          if (!line) return;
          clearTimeout(timer);
          resolve(JSON.parse(line) as Record<string, unknown>);
        });
        void exited.then((code) => reject(new Error(`exited ${code}:\n${logs()}`)));
      });
      assert.match(String(ready.url), /^http:\/\/127\.0\.0\.1:\d+\/$/);
      assert.equal(ready.nodeId, "build-test");
      assert.equal(ready.redis, new URL(TEST_REDIS_URL).toString());
      assert.equal(ready.postgres, databaseUrl.replace(":s3cret@", ":***@"));
      assert.ok(!logs().includes("s3cret"), "no password in the logs");
      const response = await fetch(new URL("/ready", String(ready.url)));
      assert.equal(response.status, 200);
      assert.equal(((await response.json()) as { status: string }).status, "ready");
    } finally {
      child.kill("SIGTERM");
    }
    assert.equal(await exited, 0, logs());
  });

  it("refuses a bad configuration at once, one line per problem, exit 78", async function () {
    const child = await run(process.execPath, ["dist/main.js"], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? "", PORT: "abc", JWT_SECRET: "short" },
    }).then(
      () => assert.fail("should exit non-zero"),
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal(child.code, 78);
    assert.match(child.stderr, /^config error: PORT: must be a number$/m);
    assert.match(child.stderr, /^config error: JWT_SECRET: must be at least 16 characters$/m);
  });
});
