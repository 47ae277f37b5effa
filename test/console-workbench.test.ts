import assert from "node:assert/strict";
import type { Browser } from "playwright-core";
import { connect } from "./support/clients.js";
import { freshTenant } from "./support/env.js";
import { api, createPool } from "./support/http.js";
import { consoleBrowserOrSkip, OpenPages, seriousViolations } from "./support/browser.js";
import { startServer, startWorker, type ServerProcess } from "./support/server.js";
import { submitTask, waitForTask } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";
import { skipBecause } from "./support/skip.js";

/*
 * The console as an operator's workbench, in a real browser (Debian's chromium via playwright-core) against two
 * real nodes, a real standalone worker, Redis and PostgreSQL: a task's detail and its actions, counts and pages
 * over the node's tasks, filters, bulk actions, nodes and connections, token revocation, a test event, the live
 * charts, the offline state, the dark theme, and an axe-core accessibility check of every view in both themes.
 */

const FAST_PRESENCE = { WORKER_HEARTBEAT_INTERVAL_MS: "300", WORKER_HEARTBEAT_TIMEOUT_MS: "2000", WORKER_DISCONNECT_GRACE_MS: "1000" };

/** Runs `fn` over `items`, `limit` at a time. */
async function inBatches<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += limit) await Promise.all(items.slice(i, i + limit).map(fn));
}

describe("console workbench: an operator's tools in a real browser", function () {
  this.timeout(240_000);
  let browser: Browser;
  let a: ServerProcess;
  let b: ServerProcess;

  before(async function () {
    browser = await consoleBrowserOrSkip(this);
    [a, b] = await Promise.all([
      startServer({ NODE_ID: `workbench-a-${process.pid}`, ...FAST_PRESENCE }),
      startServer({ NODE_ID: `workbench-b-${process.pid}`, ...FAST_PRESENCE }),
    ]);
  });
  after(async () => {
    await browser?.close();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  const pages = new OpenPages(() => browser);
  const open = (url: string, token?: string) => pages.open(url, token);
  const assertStayedClean = (): void => pages.assertStayedClean();
  afterEach(() => pages.closeAll());

  it("the operator's loop: a failed task's detail shows payload, error, attempts and timeline; Retry there runs it again to completed, live; Cancel there cancels", async () => {
    const tenant = freshTenant("bench-loop");
    const token = mintToken({ tenant, sub: "operator" });
    const poolId = await createPool(a.url, token, "ingest");
    const worker = startWorker({
      token: mintToken({ tenant, permissions: ["pools:work"], poolId, ttl: 3600 }),
      poolId,
      urls: [a.url],
      args: ["--handlers", "test/fixtures/flaky-handlers.ts"],
    });
    try {
      await worker.connected();
      const page = await open(a.url, token);
      await page.live();
      await page.view("tasks");
      for (let n = 0; n < 3; n++) await submitTask(a.url, token, { type: "echo", payload: { n } });
      const task = await submitTask(a.url, token, { type: "flaky", poolId, payload: { table: "orders", since: "2026-12-01" } });
      await page.element({ "task-id": task.id, status: "failed" });

      // From the list to the detail: a link per row.
      await page.page.locator(`a[data-open-task="${task.id}"]`).click();
      const detail = page.page.locator(`[data-task-detail="${task.id}"]`);
      await detail.waitFor();
      assert.equal(new URL(page.page.url()).hash, `#tasks/${task.id}`);
      await detail.locator('[data-detail="error"]', { hasText: "ECONNREFUSED" }).waitFor();
      assert.match(
        await detail.locator('[data-detail="stack"]').innerText(),
        /ECONNREFUSED[^\n]*\n\s+at .*flaky-handlers\.ts/,
        "the handler's stack, naming its file",
      );
      assert.match(await detail.locator('[data-detail="payload"]').innerText(), /"table": "orders"/);
      assert.equal(await detail.locator('[data-detail="attempts"]').innerText(), "1 of 1");
      assert.match(await detail.innerText(), new RegExp(`worker[\\s\\S]*${poolId}|worker`));
      await detail.locator('[data-event-type="task.failed"]').waitFor();
      const timeline = await detail
        .locator("[data-event-type]")
        .evaluateAll((items) => items.map((i) => i.getAttribute("data-event-type")));
      assert.deepEqual(timeline.slice(0, 2), ["task.created", "task.queued"], timeline.join(" "));
      assert.equal(timeline.at(-1), "task.failed");
      // The picture shows the counts as they settle: four tasks, one failed.
      await page.page.locator('[data-count="all"][data-value="4"]').waitFor();
      await page.screenshot("operator-loop");

      // Retry from the detail: the detail follows it to completed, with its result, and the timeline grows.
      await page.record("detail", "[data-task-detail]", "data-task-detail", "data-status");
      await detail.locator('button[data-action="retry"]').click();
      await page.page.locator(`[data-task-detail="${task.id}"][data-status="completed"]`).waitFor();
      await detail.locator('[data-detail="result"]', { hasText: '"run": "second"' }).waitFor();
      const statuses = await page.recorded("detail", task.id);
      assert.ok(statuses.indexOf("failed") < statuses.indexOf("completed"), statuses.join(" "));
      assert.ok(statuses.some((s) => ["queued", "assigned", "started"].includes(s)) || statuses.at(-1) === "completed", statuses.join(" "));
      await detail.locator('[data-event-type="task.retried"]').waitFor();
      await detail.locator('[data-event-type="task.completed"]').waitFor();
      assert.equal(await detail.locator('[data-detail="retries"]').innerText(), "1");
      assert.equal(await page.page.locator(`tr[data-task-id="${task.id}"]`).getAttribute("data-status"), "completed");
      await page.screenshot("operator-loop-retried");

      // Cancel from another task's detail.
      const long = await submitTask(a.url, token, { type: "sleep", payload: { ms: 60_000 } });
      await page.page.goto(`${a.url}/dashboard/#tasks/${long.id}`);
      await page.live();
      const longDetail = page.page.locator(`[data-task-detail="${long.id}"]`);
      await page.page.locator(`[data-task-detail="${long.id}"][data-status="started"]`).waitFor();
      await longDetail.locator('button[data-action="cancel"]').click();
      await page.page.locator(`[data-task-detail="${long.id}"][data-status="cancelled"]`).waitFor();
      assert.equal((await waitForTask(a.url, token, long.id, ["cancelled"])).status, "cancelled");
      await longDetail.locator('a[data-action="close-detail"]').click();
      await longDetail.waitFor({ state: "detached" });
      assertStayedClean();
    } finally {
      await worker.stop();
    }
  });

  it("a workflow step's task links to its workflow", async () => {
    const tenant = freshTenant("bench-wf");
    const token = mintToken({ tenant });
    const created = await api(a.url, "POST", "/api/v1/workflows", {
      token,
      body: { name: "linked", steps: [{ key: "only", type: "echo", payload: { x: 1 } }] },
    });
    assert.equal(created.status, 202, JSON.stringify(created.body));
    const workflowId = created.body.workflow.id as string;
    const page = await open(a.url, token);
    await page.live();
    await page.view("tasks");
    const row = page.page.locator("tr[data-task-id]").first();
    await row.waitFor();
    const taskId = (await row.getAttribute("data-task-id"))!;
    await page.page.locator(`a[data-open-task="${taskId}"]`).click();
    await page.page.locator(`[data-task-detail="${taskId}"] a[data-workflow-link="${workflowId}"]`).click();
    await page.page.locator(`[data-current-view="workflows"] [data-selected-workflow="${workflowId}"]`).waitFor();
    assertStayedClean();
  });

  it("exact counts per status past 200 tasks, server pages, and filters (status, type, pool, time, id) answered by the node", async () => {
    const tenant = freshTenant("bench-counts");
    const token = mintToken({ tenant });
    // A pool without workers: its tasks stay queued.
    const idle = await createPool(a.url, token, "idle");
    const queued: string[] = [];
    await inBatches(
      Array.from({ length: 230 }, (_, n) => n),
      16,
      async (n) => queued.push((await submitTask(a.url, token, { type: "echo", poolId: idle, payload: { n } })).id),
    );
    const between = new Date().toISOString();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const done: string[] = [];
    for (let n = 0; n < 5; n++) done.push((await submitTask(a.url, token, { type: "echo", payload: { late: n } })).id);
    for (const id of done) await waitForTask(a.url, token, id, ["completed"]);

    const page = await open(a.url, token);
    await page.live();
    await page.view("tasks");
    await page.element({ count: "all", value: "235" });
    await page.element({ count: "queued", value: "230" });
    await page.element({ count: "completed", value: "5" });

    // Five pages of 50, 50, 50, 50, 35: every task once.
    const seen = new Set<string>();
    const ids = (): Promise<string[]> =>
      page.page.locator("tr[data-task-id]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-task-id")!));
    for (let n = 1; n <= 5; n++) {
      await page.element({ "page-number": String(n) });
      await page.page.locator(`table[data-page="${n}"]`).waitFor();
      const rows = await ids();
      assert.equal(rows.length, n === 5 ? 35 : 50, `page ${n}`);
      for (const id of rows) seen.add(id);
      if (n < 5) await page.page.locator('button[data-page-action="next"]').click();
    }
    assert.equal(seen.size, 235);
    assert.equal(await page.page.locator('button[data-page-action="next"]').isDisabled(), true);
    await page.page.locator('button[data-page-action="previous"]').click();
    await page.element({ "page-number": "4" });

    // Status (from its count), then pool, type, time range and id prefix: each answered by the node.
    await page.page.locator('button[data-count="completed"]').click();
    await page.element({ "page-number": "1" });
    await page.page.locator("tr[data-task-id]").nth(4).waitFor();
    assert.deepEqual((await ids()).sort(), [...done].sort());
    await page.page.locator('select[name="status"]').selectOption("");
    await page.page.locator('select[name="pool"]').selectOption(idle);
    await page.element({ count: "all", value: "230" });
    await page.element({ count: "completed", value: "0" });
    await page.page.locator('form.filters input[name="type"]').fill("sleep");
    await page.page.locator(".empty", { hasText: "No tasks match these filters" }).waitFor();
    await page.page.locator('form.filters input[name="type"]').fill("");
    await page.page.locator('select[name="pool"]').selectOption("");
    const local = (iso: string): string => {
      const time = new Date(iso);
      return new Date(time.getTime() - time.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
    };
    // The id search (a prefix), then a time range (datetime-local has minutes: a range two minutes on, and one an hour back, match nothing).
    await page.page.locator('input[name="q"]').fill(queued[7]!.slice(0, 13));
    await page.element({ "task-id": queued[7]! });
    await page.page.locator("tr[data-task-id]").nth(1).waitFor({ state: "detached" });
    assert.deepEqual(await ids(), [queued[7]]);
    await page.page.locator('input[name="q"]').fill("");
    await page.page.locator('input[name="createdAfter"]').fill(local(new Date(Date.parse(between) + 120_000).toISOString()));
    await page.page.locator(".empty", { hasText: "No tasks match these filters" }).waitFor();
    await page.page.locator('input[name="createdAfter"]').fill("");
    await page.page.locator('input[name="createdBefore"]').fill(local(new Date(Date.parse(between) - 3_600_000).toISOString()));
    await page.page.locator(".empty", { hasText: "No tasks match these filters" }).waitFor();
    await page.page.getByRole("button", { name: "Clear filters" }).click();
    await page.page.locator("table[data-page] tr[data-task-id]").nth(49).waitFor();
    await page.screenshot("counts");
    assertStayedClean();
  });

  it("bulk cancel and bulk retry act on the filtered list (POST /api/v1/tasks/bulk)", async function () {
    // Kept for a node without the route (a branch merged before it): the test says so instead of failing.
    const tenant = freshTenant("bench-bulk");
    const token = mintToken({ tenant });
    const probe = await api(a.url, "POST", "/api/v1/tasks/bulk", { token, body: { action: "retry", filter: { status: "failed" } } });
    if (probe.status === 404) {
      skipBecause(this, "this server has no POST /api/v1/tasks/bulk yet (another branch adds it)");
    }
    const idle = await createPool(a.url, token, "idle");
    const stuck: string[] = [];
    for (let n = 0; n < 12; n++) stuck.push((await submitTask(a.url, token, { type: "echo", poolId: idle })).id);
    const failing: string[] = [];
    for (let n = 0; n < 3; n++) failing.push((await submitTask(a.url, token, { type: "fail", payload: { retryable: false } })).id);
    for (const id of failing) await waitForTask(a.url, token, id, ["failed"]);
    const page = await open(a.url, token);
    await page.live();
    await page.view("tasks");
    await page.page.locator('select[name="pool"]').selectOption(idle);
    await page.page.locator('select[name="status"]').selectOption("queued");
    await page.element({ count: "queued", value: "12" });
    await page.page.locator('button[data-bulk="cancel"]').click();
    await page.page.locator('button[data-bulk-confirm="cancel"]').click();
    await page.element({ "bulk-result": "cancel", matched: "12", changed: "12" });
    await page.element({ count: "cancelled", value: "12" });
    await page.element({ count: "queued", value: "0" });
    await page.page.locator(".empty", { hasText: "No tasks match these filters" }).waitFor();
    await page.page.locator('button[data-count="cancelled"]').click();
    for (const id of stuck) await page.element({ "task-id": id, status: "cancelled" });

    await page.page.locator('select[name="pool"]').selectOption("");
    await page.page.locator('select[name="status"]').selectOption("failed");
    await page.page.locator('button[data-bulk="retry"]').click();
    await page.page.locator('button[data-bulk-confirm="retry"]').click();
    await page.element({ "bulk-result": "retry", matched: "3", changed: "3" });
    // Each ran again (and failed again): its retry counted.
    for (const id of failing) {
      let task = await waitForTask(a.url, token, id, ["failed", "queued", "assigned", "started"]);
      for (let i = 0; (task.retries !== 1 || task.status !== "failed") && i < 100; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        task = await waitForTask(a.url, token, id, ["failed", "queued", "assigned", "started"]);
      }
      assert.deepEqual([task.status, task.retries], ["failed", 1]);
    }
    assertStayedClean();
  });

  it("pauses and resumes a pool, and bounds how many of its tasks run at once", async () => {
    const tenant = freshTenant("bench-pool");
    const token = mintToken({ tenant });
    const poolId = await createPool(a.url, token, "render");
    const page = await open(a.url, token);
    await page.live();
    await page.view("pools");
    const card = page.page.locator(`[data-pool-id="${poolId}"]`);
    await card.locator('button[data-action="pause"]').click();
    await page.element({ "pool-id": poolId, paused: "true" });
    assert.equal((await api(a.url, "GET", `/api/v1/pools/${poolId}`, { token })).body.pool.paused, true);
    await card.locator('button[data-action="resume"]').click();
    await page.element({ "pool-id": poolId, paused: "false" });
    await card.locator('input[name="maxConcurrency"]').fill("2");
    await card.locator('button[data-action="set-concurrency"]').click();
    await card.locator('[data-max-concurrency="2"]').waitFor();
    assert.equal((await api(a.url, "GET", `/api/v1/pools/${poolId}`, { token })).body.pool.maxConcurrency, 2);
    await card.locator('input[name="maxConcurrency"]').fill("");
    await card.locator('button[data-action="set-concurrency"]').click();
    await card.locator('[data-max-concurrency=""]').waitFor();
    assertStayedClean();
  });

  it("nodes and connections: both nodes, the tenant's sockets per namespace on each; revoking a token ends its session", async () => {
    const tenant = freshTenant("bench-nodes");
    const token = mintToken({ tenant, sub: "admin-user" });
    const page = await open(a.url, token);
    await page.live();
    await page.view("nodes");
    await page.element({ "node-id": a.nodeId });
    await page.element({ "node-id": b.nodeId });
    // The tab's own client: one socket in each namespace it reads, on node a; none on node b, until one connects there.
    const cell = (node: string, namespace: string) => page.page.locator(`tr[data-node-id="${node}"] td[data-namespace="${namespace}"]`);
    await cell(a.nodeId, "tasks").filter({ hasText: /^1$/ }).waitFor();
    assert.equal(await cell(b.nodeId, "tasks").innerText(), "0");
    const socket = await connect(b.url, "tasks", { token });
    await cell(b.nodeId, "tasks").filter({ hasText: /^1$/ }).waitFor();
    socket.close();
    await page.screenshot("nodes");

    // Revoke another tab's token by its jti: that tab is signed out with TOKEN_REVOKED.
    const victim = await open(b.url, mintToken({ tenant, jti: `victim-${tenant}` }));
    await victim.live();
    victim.expect(/status of 401/);
    await page.page.locator('input[name="revokeValue"]').fill(`victim-${tenant}`);
    await page.page.locator('button[data-action="revoke"]').click();
    await page.element({ revoked: `victim-${tenant}` });
    await victim.page.locator('[data-error-code="TOKEN_REVOKED"]').waitFor();
    assertStayedClean();
  });

  it("publishes a test event into the followed room and sees it in the feed; the charts fill from the hub's own data", async () => {
    const tenant = freshTenant("bench-feed");
    const token = mintToken({ tenant });
    const page = await open(a.url, token);
    await page.live();
    await page.view("events");
    await page.page.locator('select[name="namespace"]').selectOption("tasks");
    await page.page.locator('input[name="room"]').fill("tasks");
    await page.page.getByRole("button", { name: "Follow" }).click();
    await page.element({ "feed-room": "tasks" });
    await page.page.locator('input[name="publishType"]').fill("ops.console_check");
    await page.page.locator('button[data-action="publish"]').click();
    const cursor = await page.page.locator("[data-published-cursor]").getAttribute("data-published-cursor");
    await page.element({ type: "ops.console_check", cursor: cursor! });

    for (let n = 0; n < 4; n++) await submitTask(b.url, token, { type: "sleep", payload: { ms: 300 } });
    await submitTask(b.url, token, { type: "fail", payload: { retryable: false } });
    await page.view("activity");
    await page.page.locator('[data-chart="throughput"] path.chart-line').waitFor();
    await page.page.locator('[data-chart="failures"] path.chart-line').waitFor();
    await page.page.locator('[data-chart="duration"]:not([data-latest=""])').waitFor();
    await page.page.locator('[data-chart="queue-depth"]:not([data-latest=""])').waitFor();
    await page.screenshot("activity");
    assertStayedClean();
  });

  it("says it is offline when its node stops, and is live again when it is back", async () => {
    const env = { NODE_ID: `workbench-offline-${process.pid}` };
    let lonely = await startServer(env);
    try {
      const tenant = freshTenant("bench-offline");
      const page = await open(lonely.url, mintToken({ tenant }));
      await page.live();
      await page.view("tasks");
      page.expect(/ERR_CONNECTION_REFUSED|Failed to load resource/);
      assert.equal(await page.page.locator("[data-offline]").count(), 0);
      await lonely.stop();
      await page.page.locator("[data-offline]").waitFor();
      await page.screenshot("offline");
      lonely = await startServer({ ...env, PORT: String(lonely.port) });
      await page.live();
      await page.page.locator("[data-offline]").waitFor({ state: "detached" });
      assertStayedClean();
    } finally {
      await lonely.stop();
    }
  });

  it("follows the system's dark theme, and axe-core finds no serious or critical violation on any view, light or dark", async () => {
    const tenant = freshTenant("bench-axe");
    const token = mintToken({ tenant });
    const failed = await submitTask(a.url, token, { type: "fail", payload: { message: "disk full", retryable: false } });
    await waitForTask(a.url, token, failed.id, ["failed"]);
    await submitTask(a.url, token, { type: "echo", payload: { ok: 1 } });
    await api(a.url, "POST", "/api/v1/workflows", { token, body: { name: "axe", steps: [{ key: "one", type: "echo" }] } });
    const page = await open(a.url, token);
    await page.live();
    const problems: string[] = [];
    for (const scheme of ["light", "dark"] as const) {
      await page.page.emulateMedia({ colorScheme: scheme });
      const background = await page.page.evaluate<string>("getComputedStyle(document.documentElement).backgroundColor");
      assert.equal(background, scheme === "dark" ? "rgb(15, 19, 26)" : "rgb(245, 246, 248)", `${scheme} background`);
      for (const view of ["tasks", "pools", "workflows", "events", "activity", "nodes"] as const) {
        await page.page.goto(`${a.url}/dashboard/#${view}`);
        await page.live();
        await page.page.locator(`[data-current-view="${view}"]`).waitFor();
        if (view === "tasks") await page.element({ "task-id": failed.id });
        if (view === "nodes") await page.element({ "node-id": a.nodeId });
        for (const found of await seriousViolations(page.page)) problems.push(`${scheme} ${view}: ${found}`);
      }
      await page.page.goto(`${a.url}/dashboard/#tasks/${failed.id}`);
      await page.live();
      await page.page.locator(`[data-task-detail="${failed.id}"] [data-event-type="task.failed"]`).waitFor();
      for (const found of await seriousViolations(page.page)) problems.push(`${scheme} task detail: ${found}`);
      if (scheme === "dark") await page.screenshot("dark");
    }
    // Signed out too.
    const signIn = await open(a.url);
    await signIn.page.locator("form.sign-in-card").waitFor();
    for (const found of await seriousViolations(signIn.page)) problems.push(`sign-in: ${found}`);
    assert.deepEqual(problems, []);
    assertStayedClean();
  });
});
