import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { build } from "esbuild";
import { chromium } from "playwright-core";
import { runCli } from "./support/cli.js";
import { freshTenant } from "./support/env.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { sharedServer } from "./support/shared.js";
import { submitTask } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";
import { skipBecause } from "./support/skip.js";

/*
 * The client package as a user gets it: `npm pack ./packages/client` (its prepack compiles src/client and the
 * protocol modules it imports), installed from the tarball into a new project outside the repository, imported
 * as `switchyard/client` by Node, by the project's own TypeScript and by a browser bundle.
 */

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const tsc = path.join(repoRoot, "node_modules", "typescript", "bin", "tsc");
/** The browser the console's tests drive; the browser test says so and is pending when it is missing. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
/** Modules only the server uses: none may be imported by, or installed with, the client package. */
const SERVER_MODULES = [
  "express",
  "@prisma/client",
  "prisma",
  "pg",
  "ioredis",
  "bullmq",
  "zod",
  "jsonwebtoken",
  "socket.io",
  "pino",
  "prom-client",
];

/** What the browser bundle below leaves on the page's window. */
interface PageState {
  ready?: Promise<unknown>;
  seen: string[];
}

interface PackResult {
  name: string;
  version: string;
  filename: string;
  files: Array<{ path: string }>;
}

/** Every module specifier a JavaScript or declaration file imports or re-exports. */
function importsOf(source: string): string[] {
  const specifiers: string[] = [];
  for (const match of source.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"']+)["']/g)) specifiers.push(match[1]!);
  return specifiers;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.join(entry.parentPath, entry.name));
}

describe("client package: switchyard/client from a packed tarball in a fresh project", function () {
  // npm may fetch socket.io-client from the registry when its cache does not have it.
  this.timeout(180_000);
  let dir: string;
  let project: string;
  let packed: PackResult;
  const installed = (): string => path.join(project, "node_modules", "switchyard");

  before(async function () {
    dir = mkdtempSync(path.join(tmpdir(), "switchyard-client-package-"));
    const packDir = path.join(dir, "pack");
    project = path.join(dir, "app");
    mkdirSync(packDir);
    mkdirSync(project);
    const pack = await run("npm", ["pack", "./packages/client", "--pack-destination", packDir, "--json"], { cwd: repoRoot });
    [packed] = JSON.parse(pack.stdout) as [PackResult];
    writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "fresh-app", private: true, type: "module" }, null, 2));
    await run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", path.join(packDir, packed.filename)], { cwd: project });
  });

  after(function () {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("holds the compiled client and protocol with declarations, depends on socket.io-client only, and imports nothing else", () => {
    const rootManifest = JSON.parse(readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { version: string };
    assert.equal(packed.name, "switchyard");
    assert.equal(packed.version, rootManifest.version, "packages/client/package.json's version follows the repository's");
    for (const { path: file } of packed.files) {
      assert.match(
        file,
        /^(package\.json|README\.md|LICENSE|dist\/(client|protocol)\/[a-z-]+\.(js|d\.ts))$/,
        `unexpected file in the package: ${file}`,
      );
    }
    for (const expected of ["dist/client/index.js", "dist/client/index.d.ts", "dist/protocol/events.d.ts", "README.md", "LICENSE"]) {
      assert.ok(
        packed.files.some((file) => file.path === expected),
        `${expected} is packed`,
      );
    }

    const manifest = JSON.parse(readFileSync(path.join(installed(), "package.json"), "utf8")) as Record<string, unknown>;
    assert.deepEqual(manifest.dependencies, { "socket.io-client": "4.8" });
    assert.deepEqual((manifest.exports as Record<string, unknown>)["./client"], {
      types: "./dist/client/index.d.ts",
      import: "./dist/client/index.js",
    });

    for (const file of filesUnder(path.join(installed(), "dist"))) {
      for (const specifier of importsOf(readFileSync(file, "utf8"))) {
        const where = `${path.relative(installed(), file)} imports ${specifier}`;
        if (specifier.startsWith(".")) {
          assert.ok(existsSync(path.resolve(path.dirname(file), specifier)), `${where}, which is not in the package`);
        } else {
          assert.equal(
            specifier,
            "socket.io-client",
            `${where}: only socket.io-client may be imported (no Node built-ins, no server modules)`,
          );
        }
      }
    }
    for (const name of SERVER_MODULES)
      assert.ok(!existsSync(path.join(project, "node_modules", name)), `${name} was installed with the client`);
  });

  it("Node: imports SwitchyardClient from switchyard/client and gets a task's events from a running node", async () => {
    const server = await sharedServer();
    const token = mintToken({ tenant: freshTenant(), permissions: ["tasks:read", "tasks:write"] });
    writeFileSync(
      path.join(project, "app.mjs"),
      `import { SwitchyardClient } from "switchyard/client";

const client = new SwitchyardClient({ urls: process.env.SWITCHYARD_URL, namespace: "tasks", token: process.env.TOKEN });
client.socket.on("connect_error", (error) => {
  console.error("connect_error", error.message);
  process.exit(1);
});
client.on("task.completed", (event) => {
  console.log("completed", event.data.task.id, JSON.stringify(event.data.task.result), event.cursor);
  client.close();
});
const { cursor } = await client.subscribe("tasks");
console.log("subscribed", cursor);
`,
    );
    const app = runCli(process.execPath, ["app.mjs"], {
      cwd: project,
      env: { PATH: process.env.PATH ?? "", SWITCHYARD_URL: server.url, TOKEN: token },
    });
    await app.waitFor("stdout", /^subscribed \S+-\d{12}$/m);
    const task = await submitTask(server.url, token, { type: "echo", payload: { from: "fresh-app" } });
    assert.equal(await app.exited, 0, app.stderr());
    assert.match(app.stdout(), new RegExp(`^completed ${task.id} \\{"from":"fresh-app"\\} \\S+-000000000005$`, "m"));
  });

  it("TypeScript: the declarations type each event's data; a misspelt or other-namespace event name does not compile", async () => {
    const tsconfig = (files: string[]) =>
      JSON.stringify({
        compilerOptions: {
          strict: true,
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          noEmit: true,
          types: [],
          skipLibCheck: false,
        },
        files,
      });
    writeFileSync(path.join(project, "tsconfig.json"), tsconfig(["typed.ts"]));
    writeFileSync(
      path.join(project, "typed.ts"),
      `import { applyTaskEvent, isEvent, SwitchyardClient, type TaskEventView, type TaskView } from "switchyard/client";

const client = new SwitchyardClient({ urls: "http://127.0.0.1:3000", namespace: "tasks", token: async () => "jwt", socketOptions: { autoConnect: false } });
const known = new Map<string, TaskView>();
client.on("task.completed", (event) => {
  console.log(event.data.task.result);
  // Task events leave out the payload (only task.created has it): the full view is kept from the events.
  const slim: TaskEventView = event.data.task;
  // @ts-expect-error an event's task may lack the payload, so it is not a TaskView
  const notFull: TaskView = slim;
  const task: TaskView = applyTaskEvent(known.get(slim.id), slim);
  known.set(task.id, task);
  console.log(task.result, notFull);
  // @ts-expect-error task.completed carries a task, not a pool
  console.log(event.data.pool);
});
client.on("task.progress", (event) => console.log(event.data.progress.toFixed(0)));
client.on("billing.invoice_paid", (event) => console.log(event.data satisfies unknown));
// @ts-expect-error a misspelt event name
client.on("task.complete", () => undefined);
// @ts-expect-error pool.created is not an event of /tasks
client.on("pool.created", () => undefined);
const { cursor, replayed } = await client.subscribe("tasks", (event) => {
  if (isEvent(event, "task.failed")) console.log(event.data.task.error?.code);
});
console.log(cursor, replayed);
`,
    );
    await run(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: project });

    // Without the directive, the user sees the error itself.
    writeFileSync(path.join(project, "tsconfig.wrong.json"), tsconfig(["wrong.ts"]));
    writeFileSync(
      path.join(project, "wrong.ts"),
      `import { SwitchyardClient } from "switchyard/client";\nnew SwitchyardClient({ urls: "http://x", namespace: "tasks", token: "t" }).on("task.complete", () => undefined);\n`,
    );
    const wrong = await run(process.execPath, [tsc, "-p", "tsconfig.wrong.json"], { cwd: project }).then(
      () => assert.fail("tsc accepted a misspelt event name"),
      (error: { code: number; stdout: string }) => error,
    );
    assert.equal(wrong.code, 2);
    assert.match(wrong.stdout, /wrong\.ts\(2,\d+\): error TS2345: Argument of type '"task\.complete"' is not assignable/);
  });

  describe("in a browser", function () {
    let node: ServerProcess | undefined;
    let page: Server | undefined;

    after(async function () {
      await node?.stop();
      await new Promise((resolve) => (page ? page.close(resolve) : resolve(undefined)));
    });

    it("bundled with esbuild for the browser, it subscribes and publishes cross-origin with CORS_ORIGINS set", async function () {
      if (!existsSync(CHROMIUM)) skipBecause(this, `${CHROMIUM} is missing (set CHROMIUM_PATH, or apt-get install chromium)`);
      // The page comes from another origin than the node, as a web app would: the node must allow it.
      page = createServer();
      await new Promise<void>((resolve) => page!.listen(0, "127.0.0.1", resolve));
      const pageOrigin = `http://127.0.0.1:${(page.address() as { port: number }).port}`;
      node = await startServer({ NODE_ID: "client-package-browser", CORS_ORIGINS: pageOrigin });
      const token = mintToken({ tenant: freshTenant(), permissions: ["tasks:read", "tasks:write", "events:publish"] });

      writeFileSync(
        path.join(project, "browser.js"),
        `import { SwitchyardClient } from "switchyard/client";

const params = new URLSearchParams(location.search);
const client = new SwitchyardClient({ urls: params.get("url"), namespace: "tasks", token: params.get("token") });
window.seen = [];
client.on("task.completed", (event) => window.seen.push(\`\${event.type} \${event.data.task.id}\`));
client.on("browser.hello", (event) => window.seen.push(\`\${event.type} \${JSON.stringify(event.data)}\`));
window.ready = client.subscribe("tasks").then(() => client.publish({ room: "tasks", type: "browser.hello", data: { from: location.origin } }));
`,
      );
      const bundle = await build({
        entryPoints: [path.join(project, "browser.js")],
        bundle: true,
        platform: "browser",
        format: "esm",
        write: false,
        absWorkingDir: project,
        logLevel: "silent",
      });
      const script = bundle.outputFiles[0]!.text;
      page.on("request", (request, response) => {
        const isScript = request.url === "/app.js";
        response.writeHead(200, { "content-type": isScript ? "text/javascript" : "text/html" });
        response.end(isScript ? script : `<!doctype html><script type="module" src="/app.js"></script>`);
      });

      const browser = await chromium.launch({ executablePath: CHROMIUM });
      try {
        const tab = await browser.newPage();
        const problems: string[] = [];
        tab.on("pageerror", (error) => problems.push(error.message));
        tab.on("console", (message) => message.type() === "error" && problems.push(message.text()));
        await tab.goto(`${pageOrigin}/?${new URLSearchParams({ url: node.url, token }).toString()}`);
        // These functions run in the page, where the bundle put `ready` and `seen` on the window.
        await tab.waitForFunction(() => (globalThis as unknown as PageState).ready !== undefined, undefined, { timeout: 20_000 });
        await tab.evaluate(() => (globalThis as unknown as PageState).ready);
        const task = await submitTask(node.url, token, { type: "echo", payload: {} });
        await tab.waitForFunction((n) => (globalThis as unknown as PageState).seen.length >= n, 2, { timeout: 30_000 });
        const seen = await tab.evaluate(() => (globalThis as unknown as PageState).seen);
        assert.deepEqual(seen, [`browser.hello {"from":"${pageOrigin}"}`, `task.completed ${task.id}`], problems.join("\n"));
      } finally {
        await browser.close();
      }
    });
  });
});
