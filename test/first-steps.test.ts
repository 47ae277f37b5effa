import assert from "node:assert/strict";
import { freePort } from "./support/private-services.js";
import path from "node:path";
import { fileURLToPath } from "node:url";
import jwt from "jsonwebtoken";
import { runCli } from "./support/cli.js";
import { freshTenant, TEST_JWT_SECRET } from "./support/env.js";
import { eventually } from "./support/faults.js";
import { api } from "./support/http.js";
import { startServer } from "./support/server.js";
import { mintToken } from "./support/tokens.js";

/*
 * What a newcomer meets first, as the README walks them through it: the token script's help and the lifetime it
 * gives, a node started while Redis is down, and ensure-services.sh waiting for a service that does not come.
 */

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function jsonLines(logs: string): Array<Record<string, unknown>> {
  return logs
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe("first steps", function () {
  this.timeout(60_000);

  it("npm run token: --help gives the default lifetime apart from the maximum, and a token gets that default", async () => {
    const help = runCli("npm", ["run", "-s", "token", "--", "--help"], { cwd: repoRoot, env: { PATH: process.env.PATH ?? "" } });
    assert.equal(await help.exited, 0, help.stderr());
    assert.match(
      help.stdout(),
      /--ttl +lifetime in seconds, default 3600 \(1 h\); at most JWT_MAX_LIFETIME_S \(default 2592000 = 30 days\)/,
    );
    const mint = runCli("npm", ["run", "-s", "token", "--", "--tenant", freshTenant()], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? "", JWT_SECRET: TEST_JWT_SECRET },
    });
    assert.equal(await mint.exited, 0, mint.stderr());
    const claims = jwt.verify(mint.stdout().trim(), TEST_JWT_SECRET) as { exp: number; iat: number };
    assert.equal(claims.exp - claims.iat, 3600);
  });

  it("a node started with Redis down says it is not ready and what is down; a 503 is a warning without a stack", async () => {
    const node = await startServer({ REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
    try {
      await eventually(() => node.logs().includes("listening, but not ready"), 20_000);
      const notReady = jsonLines(node.logs()).find((line) => String(line.msg).startsWith("listening, but not ready"));
      assert.ok(notReady, node.logs());
      assert.equal(notReady.level, 40);
      assert.deepEqual(notReady.unavailable, ["redis"]);
      assert.match(String(notReady.msg), /redis unavailable; \/ready answers 503/);

      const token = mintToken({ tenant: freshTenant() });
      const refused = await api(node.url, "POST", "/api/v1/tasks", { token, body: { type: "echo" } });
      assert.equal(refused.status, 503);
      const accessLine = (): Record<string, unknown> | undefined =>
        jsonLines(node.logs()).find((line) => (line.req as { url?: string } | undefined)?.url === "/api/v1/tasks");
      await eventually(() => accessLine() !== undefined, 20_000);
      const line = accessLine()!;
      assert.equal(line.level, 40, JSON.stringify(line));
      assert.equal(line.msg, "request completed");
      assert.deepEqual(line.res, { statusCode: 503 });
      assert.equal(line.err, undefined, "no stand-in error (and its stack) for a status");
      assert.doesNotMatch(node.logs(), /"stack"/);
    } finally {
      await node.stop();
    }
  });

  it("ensure-services.sh says what it waits for and how long before it gives up", async () => {
    const port = await freePort();
    const check = runCli("bash", ["scripts/ensure-services.sh"], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? "", REDIS_URL: `redis://127.0.0.1:${port}`, ENSURE_SERVICES_TIMEOUT: "2" },
    });
    await check.waitFor(
      "stderr",
      new RegExp(
        `^ensure-services: waiting up to 2s \\(ENSURE_SERVICES_TIMEOUT\\) for redis at 127\\.0\\.0\\.1:${port} \\(REDIS_URL\\)$`,
        "m",
      ),
    );
    assert.equal(await check.exited, 1);
    assert.match(
      check.stderr(),
      new RegExp(`^redis at redis://127\\.0\\.0\\.1:${port} is not reachable after 2s; not starting anything: start it yourself$`, "m"),
    );
  });
});
