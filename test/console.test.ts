import assert from "node:assert/strict";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { freePort } from "./support/private-services.js";
import { tmpdir } from "node:os";
import path from "node:path";
import express from "express";
import type { Browser } from "playwright-core";
import { consoleRoutes } from "../src/http/console.js";
import { freshTenant } from "./support/env.js";
import { api, createPool } from "./support/http.js";
import { consoleBrowserOrSkip, OpenPages } from "./support/browser.js";
import { startServer, startWorker, type ServerProcess } from "./support/server.js";
import { submitTask, waitForTask } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";

/*
 * The console (/dashboard/) in a real browser (Debian's chromium via playwright-core) against real nodes, a real
 * standalone worker, Redis and PostgreSQL. Screenshots of each view go to test/artifacts/ (gitignored).
 */

const FAST_PRESENCE = { WORKER_HEARTBEAT_INTERVAL_MS: "300", WORKER_HEARTBEAT_TIMEOUT_MS: "2000", WORKER_DISCONNECT_GRACE_MS: "1000" };

describe("console: /dashboard/ in a real browser", function () {
  this.timeout(180_000);
  let browser: Browser;
  let node: ServerProcess;

  before(async function () {
    browser = await consoleBrowserOrSkip(this);
    node = await startServer({ NODE_ID: "console-a", ...FAST_PRESENCE });
  });
  after(async () => {
    await browser?.close();
    await node?.stop();
  });

  const pages = new OpenPages(() => browser);
  const open = (url: string, token?: string) => pages.open(url, token);
  const assertStayedClean = (): void => pages.assertStayedClean();
  afterEach(() => pages.closeAll());

  it("signs in from #token=: the token moves to sessionStorage (no cookie, gone from the URL) and the tenant is shown", async () => {
    const tenant = freshTenant("console");
    const token = mintToken({ tenant, sub: "ada" });
    const page = await open(node.url, token);
    await page.live();
    assert.equal(new URL(page.page.url()).hash, "", "the fragment is gone from the address bar");
    assert.equal(await page.storedToken(), token);
    assert.deepEqual(await page.page.context().cookies(), []);
    assert.equal(await page.cookie(), "");
    assert.equal(await page.page.locator("[data-tenant]").getAttribute("data-tenant"), tenant);
    assert.match(await page.page.locator(".identity").innerText(), /ada/);
    // A reload stays signed in (the tab keeps the token); signing out forgets it.
    await page.page.reload();
    await page.live();
    await page.page.getByRole("button", { name: "Sign out" }).click();
    await page.page.locator("form.sign-in-card").waitFor();
    assert.equal(await page.storedToken(), null);
    assertStayedClean();
  });

  it("a #token= link opened in a signed-in tab asks before it replaces the session; staying keeps it, accepting switches", async () => {
    const mine = mintToken({ tenant: freshTenant("console-mine"), sub: "ada" });
    const theirTenant = freshTenant("console-link");
    const theirs = mintToken({ tenant: theirTenant, sub: "mallory" });
    const page = await open(node.url, mine);
    await page.live();
    // The link, opened in the same tab (a full load: the tab keeps its sessionStorage).
    await page.page.goto("about:blank");
    await page.page.goto(`${node.url}/dashboard/#token=${theirs}`);
    const offer = page.page.locator("[data-switch-offer]");
    await offer.waitFor();
    assert.match(await offer.innerText(), new RegExp(`${theirTenant}[\\s\\S]*mallory`));
    assert.equal(await page.storedToken(), mine, "nothing replaced before the answer");
    assert.equal(new URL(page.page.url()).hash, "", "the link's token is gone from the address bar");
    await page.page.locator('[data-action="decline-switch"]').click();
    await offer.waitFor({ state: "detached" });
    assert.equal(await page.storedToken(), mine);
    assert.match(await page.page.locator(".identity").innerText(), /ada/);
    // Again, and this time accept.
    await page.page.goto("about:blank");
    await page.page.goto(`${node.url}/dashboard/#token=${theirs}`);
    await page.page.locator('[data-action="accept-switch"]').click();
    await page.page.locator(`[data-tenant="${theirTenant}"]`).waitFor();
    assert.equal(await page.storedToken(), theirs);
    assertStayedClean();
  });

  it("a bad or expired token shows the sign-in screen with the server's code, and is not kept", async () => {
    const tenant = freshTenant("console");
    const expired = await open(node.url, mintToken({ tenant, ttl: -60 }));
    expired.expect(/status of 401/);
    await expired.page.locator('[data-error-code="TOKEN_EXPIRED"]').waitFor();
    assert.equal(await expired.storedToken(), null);
    await expired.screenshot("sign-in-error");

    const pasted = await open(node.url);
    pasted.expect(/status of 401/);
    for (const bad of ["not-a-jwt", mintToken({ tenant, secret: "another-secret-0123456789abcdef" })]) {
      await pasted.page.locator("textarea#token").fill(bad);
      await pasted.page.getByRole("button", { name: "Sign in" }).click();
      await pasted.page.locator('[data-error-code="TOKEN_INVALID"]').waitFor();
      assert.equal(await pasted.storedToken(), null);
      await pasted.page.locator("textarea#token").fill("");
    }
    // A good token pasted into the same screen signs in; when it expires, the server ends the session and the
    // sign-in screen says so. How soon the page is live depends on the machine: a token that expired first is
    // pasted again with twice the time, so the test waits on what the page shows, not on a guessed pace.
    for (let ttl = 4; ; ttl *= 2) {
      assert.ok(ttl <= 64, "the page never went live before its token expired");
      await pasted.page.locator("textarea#token").fill(mintToken({ tenant, ttl }));
      await pasted.page.getByRole("button", { name: "Sign in" }).click();
      await pasted.page.locator('[data-connection="live"], [data-error-code="TOKEN_EXPIRED"]').first().waitFor({ timeout: 60_000 });
      if ((await pasted.page.locator('[data-connection="live"]').count()) > 0) break;
    }
    await pasted.page.locator('[data-error-code="TOKEN_EXPIRED"]').waitFor({ timeout: 60_000 });
    assert.equal(await pasted.storedToken(), null);
    assertStayedClean();
  });

  it("a task submitted through the API appears, shows its progress and turns completed; the form submits, cancel cancels, filters filter", async () => {
    const tenant = freshTenant("console");
    const token = mintToken({ tenant });
    const page = await open(node.url, token);
    await page.live();
    await page.view("tasks");
    const task = await submitTask(node.url, token, { type: "sleep", payload: { ms: 5000 } });
    await page.element({ "task-id": task.id });
    await page.record("progress", `tr[data-task-id="${task.id}"] .progress`, undefined, "data-progress");
    await page.record("task", `tr[data-task-id="${task.id}"]`, "data-task-id", "data-status");
    const failing = await submitTask(node.url, token, { type: "fail", payload: { message: "disk full", retryable: true }, maxAttempts: 2 });
    // The screenshot (the README shows it) while the sleep is on its way, if it still is: it is not what the
    // test checks (the recorder above sees every value the bar takes).
    await page.page
      .locator(`tr[data-task-id="${task.id}"] .progress:not([data-progress=""]):not([data-progress="100"])`)
      .waitFor({ timeout: 5000 })
      .catch(() => undefined);
    await page.screenshot("tasks");
    await page.element({ "task-id": failing.id, status: "failed" });
    assert.match(await page.page.locator(`tr[data-task-id="${failing.id}"]`).innerText(), /2 \/ 2[\s\S]*disk full/);
    await page.element({ "task-id": task.id, status: "completed" }, 30_000);
    const statuses = await page.recorded("task", task.id);
    assert.equal(statuses.at(-1), "completed");
    const progress = (await page.recorded("progress")).filter(Boolean).map(Number);
    assert.ok(
      progress.some((p) => p > 0 && p < 100),
      `progress was shown on the way: ${progress.join(",")}`,
    );
    assert.equal(await page.page.locator(`tr[data-task-id="${task.id}"] .progress`).getAttribute("data-progress"), "100");
    assert.match(await page.page.locator(`tr[data-task-id="${task.id}"] .outcome`).innerText(), /"slept":5000/);

    // Submit from the form: an echo whose result comes back in the row.
    await page.page.locator('form.submit-task input[name="type"]').fill("echo");
    await page.page.locator('form.submit-task input[name="payload"]').fill('{"from":"the console"}');
    await page.page.locator("form.submit-task").getByRole("button", { name: "Submit" }).click();
    const submitted = await page.page.locator("[data-submitted-task]").getAttribute("data-submitted-task");
    assert.ok(submitted);
    await page.element({ "task-id": submitted, status: "completed" });
    assert.match(await page.page.locator(`tr[data-task-id="${submitted}"] .outcome`).innerText(), /the console/);

    // Cancel a long task from its row.
    const long = await submitTask(node.url, token, { type: "sleep", payload: { ms: 60_000 } });
    await page.element({ "task-id": long.id, status: "started" });
    await page.page.locator(`tr[data-task-id="${long.id}"] button[data-action="cancel"]`).click();
    await page.element({ "task-id": long.id, status: "cancelled" });
    assert.equal((await waitForTask(node.url, token, long.id, ["cancelled"])).status, "cancelled");

    // Retry a failed task from its row: it runs again (and fails again), its retry counted.
    const broken = await submitTask(node.url, token, { type: "fail", payload: { message: "boom", retryable: false } });
    await page.element({ "task-id": broken.id, status: "failed" });
    await page.page.locator(`tr[data-task-id="${broken.id}"] button[data-action="retry"]`).click();
    let again = await waitForTask(node.url, token, broken.id, ["failed"]);
    for (let i = 0; (again.retries !== 1 || again.status !== "failed") && i < 100; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      again = await waitForTask(node.url, token, broken.id, ["failed", "queued", "assigned", "started"]);
    }
    assert.deepEqual([again.status, again.retries, again.attempts], ["failed", 1, 1]);
    await page.element({ "task-id": broken.id, status: "failed" });
    assert.equal(
      await page.page.locator(`tr[data-task-id="${task.id}"] button[data-action="retry"]`).count(),
      0,
      "no retry for a completed task",
    );

    // Filters: only cancelled tasks, then every task again.
    await page.page.locator('select[name="status"]').selectOption("cancelled");
    await page.page.locator(`tr[data-task-id="${task.id}"]`).waitFor({ state: "detached" });
    assert.deepEqual(await page.page.locator("tr[data-task-id]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-task-id"))), [
      long.id,
    ]);
    await page.page.locator('select[name="status"]').selectOption("");
    await page.element({ "task-id": task.id });
    assertStayedClean();
  });

  it("a standalone worker appears idle, turns busy with its task, and turns offline when killed; the pool scales", async () => {
    const tenant = freshTenant("console");
    const token = mintToken({ tenant });
    const poolId = await createPool(node.url, token, "render-farm");
    const page = await open(node.url, token);
    await page.live();
    await page.view("pools");
    await page.element({ "pool-id": poolId });
    await page.record("workers", "tr[data-worker-id]", "data-worker-id", "data-status");
    const worker = startWorker({
      token: mintToken({ tenant, permissions: ["pools:work"], poolId, ttl: 3600 }),
      poolId,
      urls: [node.url],
      env: { WORKER_ID: "w-console" },
    });
    await page.element({ "worker-id": "w-console", status: "idle" });
    const task = await submitTask(node.url, token, { type: "sleep", payload: { ms: 2500 }, poolId });
    await page.element({ "worker-id": "w-console", status: "busy" });
    await page.page.locator(`tr[data-worker-id="w-console"] [data-current-task="${task.id}"]`).waitFor();
    await page.screenshot("pools");
    await page.element({ "worker-id": "w-console", status: "idle" });
    await worker.kill();
    await page.element({ "worker-id": "w-console", status: "offline" });
    assert.deepEqual(await page.recorded("workers", "w-console"), ["idle", "busy", "idle", "offline"]);
    assert.equal(await page.page.locator('tr[data-worker-id="w-console"]').getAttribute("class"), "offline");

    const card = page.page.locator(`[data-pool-id="${poolId}"]`);
    await card.locator('input[aria-label="desired workers"]').fill("3");
    await card.getByRole("button", { name: "Scale" }).click();
    await card.locator("[data-desired-workers]", { hasText: "3" }).waitFor();
    assert.equal((await api(node.url, "GET", `/api/v1/pools/${poolId}`, { token })).body.pool.desiredWorkers, 3);
    assertStayedClean();
  });

  it("a workflow's steps complete in dependency order, drawn as a DAG", async () => {
    const tenant = freshTenant("console");
    const token = mintToken({ tenant });
    const page = await open(node.url, token);
    await page.live();
    await page.view("workflows");
    await page.record("steps", "[data-step-key]", "data-step-key", "data-status");
    const created = await api(node.url, "POST", "/api/v1/workflows", {
      token,
      body: {
        name: "nightly-report",
        steps: [
          { key: "extract", type: "sleep", payload: { ms: 1200 } },
          { key: "clean", type: "sleep", payload: { ms: 1200 }, dependsOn: ["extract"] },
          { key: "enrich", type: "echo", payload: { rows: 42 }, dependsOn: ["extract"] },
          { key: "publish", type: "sleep", payload: { ms: 1000 }, dependsOn: ["clean", "enrich"] },
        ],
      },
    });
    assert.equal(created.status, 202, JSON.stringify(created.body));
    const workflowId = created.body.workflow.id as string;
    await page.element({ "workflow-id": workflowId });
    await page.element({ "workflow-id": workflowId, status: "completed" }, 60_000);
    await page.screenshot("workflows");
    const log = await page.recorded("steps");
    const completedAt = (key: string): number => log.indexOf(`${key}=completed`);
    for (const key of ["extract", "clean", "enrich", "publish"]) assert.ok(completedAt(key) >= 0, `${key} completed: ${log.join(" ")}`);
    assert.ok(completedAt("extract") < completedAt("clean") && completedAt("extract") < completedAt("enrich"), log.join(" "));
    assert.ok(completedAt("clean") < completedAt("publish") && completedAt("enrich") < completedAt("publish"), log.join(" "));
    // No step ran before the ones it depends on had completed.
    assert.ok(
      log.indexOf("publish=running") > completedAt("clean") && log.indexOf("publish=running") > completedAt("enrich"),
      log.join(" "),
    );
    const timeline = await page.page.locator(".timeline li").allInnerTexts();
    assert.match(timeline[0]!, /workflow\.started/);
    assert.match(timeline.at(-1)!, /workflow\.completed/);
    assertStayedClean();
  });

  it("offers only what the token permits, and nothing of another tenant appears", async () => {
    const tenant = freshTenant("console");
    const admin = mintToken({ tenant });
    const page = await open(node.url, mintToken({ tenant, permissions: ["tasks:read"] }));
    await page.live();
    assert.deepEqual(await page.page.locator("a[data-view]").evaluateAll((tabs) => tabs.map((t) => t.getAttribute("data-view"))), [
      "tasks",
      "schedules",
      "events",
      "activity",
    ]);
    const foreign = await submitTask(node.url, mintToken({ tenant: freshTenant("other") }), { type: "echo" });
    const own = await submitTask(node.url, admin, { type: "echo" });
    await page.element({ "task-id": own.id, status: "completed" });
    assert.equal(await page.page.locator("form.submit-task").count(), 0, "no submit form without tasks:write");
    assert.equal(await page.page.locator('button[data-action="cancel"]').count(), 0, "no cancel without tasks:write");
    assert.equal(await page.page.locator('button[data-action="retry"]').count(), 0, "no retry without tasks:write");
    assert.equal(await page.page.locator(`[data-task-id="${foreign.id}"]`).count(), 0, "another tenant's task never appears");
    assertStayedClean();
  });

  it("a node restart shows reconnecting, then the events missed meanwhile, each once and in order", async () => {
    const port = await freePort();
    const env = { NODE_ID: "console-restart", PORT: String(port) };
    let restarting = await startServer(env);
    const other = await startServer({ NODE_ID: "console-b" });
    try {
      const tenant = freshTenant("console");
      const token = mintToken({ tenant });
      const page = await open(restarting.url, token);
      await page.live();
      await page.view("events");
      await page.page.locator('select[name="namespace"]').selectOption("tasks");
      await page.page.locator('input[name="room"]').fill("tasks");
      await page.page.getByRole("button", { name: "Follow" }).click();
      await page.element({ "feed-room": "tasks" });
      await page.live();
      await page.record("connection", "[data-connection]", undefined, "data-connection");
      const before = await submitTask(other.url, token, { type: "echo", payload: { n: 0 } });
      await page.element({ type: "task.completed" });

      page.expect(/ERR_CONNECTION_REFUSED/);
      await restarting.stop();
      await page.element({ connection: "reconnecting" });
      await page.screenshot("reconnecting");
      const missed = [];
      for (let n = 1; n <= 3; n++) missed.push(await submitTask(other.url, token, { type: "echo", payload: { n } }));
      for (const task of missed) await waitForTask(other.url, token, task.id, ["completed"]);
      restarting = await startServer(env);
      await page.live();
      assert.deepEqual(await page.recorded("connection"), ["live", "reconnecting", "catching-up", "live"]);

      // The feed has every event of the room once, consecutive cursors, nothing between them missing.
      const cursors = await page.page.locator("tr[data-cursor]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-cursor")!));
      const seqs = cursors.map((c) => Number(c.split("-").pop())).reverse();
      assert.ok(seqs.length >= 4 * 4, `every event of the four tasks: ${seqs.length}`);
      seqs.forEach((seq, i) => i > 0 && assert.equal(seq, seqs[i - 1]! + 1, `consecutive: ${seqs.join(",")}`));
      await page.screenshot("events");

      await page.view("tasks");
      for (const task of [before, ...missed]) await page.element({ "task-id": task.id, status: "completed" });
      assertStayedClean();
    } finally {
      await Promise.all([restarting.stop(), other.stop()]);
    }
  });

  it("nothing leaves the node: every view's requests go to its origin, under a strict CSP; / leads to the console; unbuilt → 503", async () => {
    const tenant = freshTenant("console");
    const token = mintToken({ tenant });
    await submitTask(node.url, token, { type: "echo" });
    const page = await open(node.url, token);
    await page.live();
    for (const view of ["pools", "tasks", "workflows", "events"] as const) await page.view(view);
    await page.page.reload();
    await page.live();
    assert.ok(
      page.requests.some((u) => u.endsWith("/dashboard/main.js")) && page.requests.some((u) => u.startsWith("ws://")),
      page.requests.join("\n"),
    );
    assert.deepEqual(page.foreignRequests(), []);

    const response = await fetch(`${node.url}/dashboard/`);
    assert.equal(response.status, 200);
    const csp = response.headers.get("content-security-policy") ?? "";
    for (const directive of [
      "default-src 'self'",
      "script-src 'self'",
      "connect-src 'self'",
      "frame-ancestors 'none'",
      "object-src 'none'",
    ]) {
      assert.ok(csp.includes(directive), `CSP has ${directive}: ${csp}`);
    }
    assert.equal(response.headers.get("x-content-type-options"), "nosniff");
    assert.equal(response.headers.get("referrer-policy"), "no-referrer");
    assert.doesNotMatch(await response.text(), /<script>|<script [^>]*>[^<]/, "no inline script");
    const root = await fetch(`${node.url}/`, { redirect: "manual" });
    assert.equal(root.status, 302);
    assert.equal(root.headers.get("location"), "/dashboard/");
    const bare = await fetch(`${node.url}/dashboard?x=1`, { redirect: "manual" });
    assert.equal(bare.headers.get("location"), "/dashboard/?x=1");
    assert.equal((await fetch(`${node.url}/dashboard/nope.js`)).status, 404);
    // Odd paths are answered, never served from outside dist/console/, and the node stays up.
    assert.equal((await fetch(`${node.url}/dashboard/..%2f..%2fpackage.json`)).status, 404);
    assert.equal((await fetch(`${node.url}/dashboard/%E0%A4%A`)).status, 404);
    assert.equal((await fetch(`${node.url}/health`)).status, 200);

    // Without a build, the node says what to run instead of a bare 404. The node's console routes over a directory
    // with no build, served from this process: renaming the checkout's dist/console would take it from every other
    // test (and every other run) using it meanwhile.
    const unbuilt = express().use(consoleRoutes(path.join(tmpdir(), `switchyard-no-console-${process.pid}`)));
    const server = await new Promise<Server>((resolve) => {
      const listening: Server = unbuilt.listen(0, "127.0.0.1", () => resolve(listening));
    });
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const html = await fetch(`${url}/dashboard/`, { headers: { accept: "text/html" } });
      assert.equal(html.status, 503);
      assert.match(await html.text(), /npm run build/);
      const json = await api(url, "GET", "/dashboard/");
      assert.equal(json.status, 503);
      assert.equal(json.body.error.code, "UNAVAILABLE");
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    assertStayedClean();
  });
});
