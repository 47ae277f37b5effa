import assert from "node:assert/strict";
import type { Browser } from "playwright-core";
import type { ScheduleView, TaskView } from "../src/protocol/views.js";
import { freshTenant } from "./support/env.js";
import { api } from "./support/http.js";
import { consoleBrowserOrSkip, OpenPages, seriousViolations, type ConsolePage } from "./support/browser.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { submitTask } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";

/*
 * The Schedules view in a real browser (Debian's chromium via playwright-core) against a real node with its
 * embedded worker, Redis and PostgreSQL: a schedule created from the form appears through its schedule.created
 * event, makes tasks (read back over REST by scheduleId) and links to them in the Tasks view; Pause, Resume and
 * Delete from the row, each checked over REST; a bad cron expression is refused with the server's error naming
 * `cron` and nothing created; a read-only token sees the list without the controls; axe-core, light and dark.
 */

/** Waits until `check` holds, asking again after each answer; the test's own timeout bounds it. */
async function until<T>(check: () => Promise<T | undefined | false>): Promise<T> {
  for (;;) {
    const value = await check();
    if (value) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function openSchedules(page: ConsolePage): Promise<void> {
  await page.live();
  await page.page.locator('a[data-view="schedules"]').click();
  await page.page.locator('[data-current-view="schedules"]').waitFor();
}

describe("console schedules: the Schedules view in a real browser", function () {
  this.timeout(120_000);
  let browser: Browser;
  let node: ServerProcess;

  before(async function () {
    browser = await consoleBrowserOrSkip(this);
    node = await startServer({ NODE_ID: `console-schedules-${process.pid}` });
  });
  after(async () => {
    await browser?.close();
    await node?.stop();
  });

  const pages = new OpenPages(() => browser);
  const open = (token?: string) => pages.open(node.url, token);
  /** Every schedule a test made (from the page or over REST), deleted after it whatever happened. */
  const made: Array<{ token: string; id: string }> = [];
  afterEach(async () => {
    await pages.closeAll();
    for (const { token, id } of made.splice(0)) {
      const deleted = await api(node.url, "DELETE", `/api/v1/schedules/${id}`, { token });
      assert.ok(deleted.status === 204 || deleted.status === 404, `cleaning up ${id}: ${deleted.status}`);
    }
  });

  async function createOverRest(token: string, body: Record<string, unknown>): Promise<ScheduleView> {
    const created = await api(node.url, "POST", "/api/v1/schedules", { token, body });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const schedule = created.body.schedule as ScheduleView;
    made.push({ token, id: schedule.id });
    return schedule;
  }

  it("creates a schedule from the form (every 1 s), sees it live, its tasks, then pauses, resumes and deletes it from the row", async () => {
    const tenant = freshTenant("sched-ui");
    const token = mintToken({ tenant, sub: "operator" });
    const unrelated = await submitTask(node.url, token, { type: "echo", payload: { by: "hand" } });
    const page = await open(token);
    await openSchedules(page);
    await page.page.locator(".schedules .empty", { hasText: "No schedules yet" }).waitFor();

    // The form: a name, the task (echo on the default pool, a payload), every 1 s.
    const form = page.page.locator("form.create-schedule");
    await form.locator('input[name="name"]').fill("heartbeat");
    await form.locator('input[name="type"]').fill("echo");
    await form.locator('select[name="poolId"]').selectOption("default");
    await form.locator('textarea[name="payload"]').fill('{"from":"console"}');
    await form.locator('input[name="kind"][value="every"]').check();
    await form.locator('input[name="everySeconds"]').fill("1");
    await form.locator('button[data-action="create-schedule"]').click();
    const created = page.page.locator("[data-created-schedule]");
    await created.waitFor();
    const id = (await created.getAttribute("data-created-schedule"))!;
    made.push({ token, id });

    // The row comes from the schedule.created event: the list was read once, when the page opened, and not again
    // (the POST of the form is the other request to the path).
    const row = page.page.locator(`tr[data-schedule-id="${id}"]`);
    await page.page.locator(`tr[data-schedule-id="${id}"][data-paused="false"][data-kind="every"]`).waitFor();
    const listReads = page.requests.filter(
      (url) => new URL(url).pathname === "/api/v1/schedules" && new URL(url).searchParams.has("limit"),
    );
    assert.equal(listReads.length, 1, page.requests.join("\n"));
    assert.equal(await row.locator("td[data-timing]").innerText(), "every 1 s");
    assert.match(await row.innerText(), /heartbeat[\s\S]*echo on default[\s\S]*active/);
    await row.locator("td[data-next-run]:not([data-next-run=''])").waitFor();
    await page.page.locator(".schedules .empty").waitFor({ state: "detached" });
    const stored = (await api(node.url, "GET", `/api/v1/schedules/${id}`, { token })).body.schedule as ScheduleView;
    assert.deepEqual([stored.name, stored.every, stored.cron, stored.paused], ["heartbeat", 1000, null, false]);
    assert.deepEqual(stored.task, {
      type: "echo",
      payload: { from: "console" },
      poolId: "default",
      priority: 50,
      maxAttempts: 1,
      timeoutMs: null,
    });

    // It makes tasks (GET /api/v1/tasks?scheduleId=), and the row's link shows them, and only them, in the Tasks view.
    const made1 = await until(
      async () => ((await api(node.url, "GET", `/api/v1/tasks?scheduleId=${id}`, { token })).body.items as TaskView[])[0],
    );
    assert.equal(made1.scheduleId, id);
    assert.deepEqual([made1.type, made1.payload], ["echo", { from: "console" }]);
    await row.locator(`a[data-schedule-tasks="${id}"]`).click();
    await page.page.locator('[data-current-view="tasks"]').waitFor();
    assert.equal(new URL(page.page.url()).hash, "#tasks");
    await page.element({ "task-id": made1.id });
    await page.page.locator("table[data-page]").waitFor();
    assert.equal(await page.page.locator(`tr[data-task-id="${unrelated.id}"]`).count(), 0, "the schedule's tasks only");
    const shown = await page.page.locator("tr[data-task-id]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-task-id")!));
    const ours = new Set(
      ((await api(node.url, "GET", `/api/v1/tasks?scheduleId=${id}&limit=200`, { token })).body.items as TaskView[]).map((t) => t.id),
    );
    for (const task of shown) if (!ours.has(task)) assert.fail(`task ${task} in the filtered view is not one of the schedule's`);
    // The filter bar says what the list is filtered by.
    assert.match(await page.page.locator('[data-filter="scheduleId"]').innerText(), /schedule /);
    await page.page.getByRole("button", { name: "Clear filters" }).click();
    await page.element({ "task-id": unrelated.id });

    // Pause, from the row: the row follows schedule.updated, and the node has it paused.
    await page.page.locator('a[data-view="schedules"]').click();
    await page.page.locator('[data-current-view="schedules"]').waitFor();
    await row.locator('button[data-action="pause-schedule"]').click();
    await page.element({ "schedule-id": id, paused: "true" });
    await row.locator('td[data-next-run=""]').waitFor();
    const paused = (await api(node.url, "GET", `/api/v1/schedules/${id}`, { token })).body.schedule as ScheduleView;
    assert.deepEqual([paused.paused, paused.nextRunAt], [true, null]);
    await page.screenshot("schedules");

    // Resume.
    await row.locator('button[data-action="resume-schedule"]').click();
    await page.element({ "schedule-id": id, paused: "false" });
    assert.equal(((await api(node.url, "GET", `/api/v1/schedules/${id}`, { token })).body.schedule as ScheduleView).paused, false);

    // Delete asks first; No keeps it, Yes deletes it, and the row goes with schedule.deleted.
    await row.locator('button[data-action="delete-schedule"]').click();
    await row.locator('button[data-action="cancel-delete-schedule"]').click();
    await row.locator('button[data-action="delete-schedule"]').click();
    await row.locator('button[data-action="confirm-delete-schedule"]').click();
    await row.waitFor({ state: "detached" });
    assert.equal((await api(node.url, "GET", `/api/v1/schedules/${id}`, { token })).status, 404);
    assert.deepEqual((await api(node.url, "GET", "/api/v1/schedules", { token })).body.items, []);
    await page.page.locator(".schedules .empty", { hasText: "No schedules yet" }).waitFor();
    pages.assertStayedClean();
  });

  it("a bad cron expression shows the server's error naming cron, marks the field, and creates nothing", async () => {
    const tenant = freshTenant("sched-ui-bad");
    const token = mintToken({ tenant });
    const page = await open(token);
    page.expect(/status of 400/);
    await openSchedules(page);
    const form = page.page.locator("form.create-schedule");
    await form.locator('input[name="name"]').fill("never");
    await form.locator('input[name="kind"][value="cron"]').check();
    await form.locator('input[name="cron"]').fill("61 * * * *");
    await form.locator('input[name="timezone"]').fill("Europe/Berlin");
    await form.locator('button[data-action="create-schedule"]').click();
    const error = form.locator(".error-line");
    await error.waitFor();
    assert.match(await error.innerText(), /\bcron\b/);
    assert.equal(await form.locator('input[name="cron"]').getAttribute("aria-invalid"), "true");
    assert.equal(await form.locator("[data-created-schedule]").count(), 0);
    assert.deepEqual((await api(node.url, "GET", "/api/v1/schedules", { token })).body.items, []);
    assert.equal(await page.page.locator("tr[data-schedule-id]").count(), 0);
    await page.page.locator(".schedules .empty", { hasText: "No schedules yet" }).waitFor();

    // Fixed, the same form creates it; the error and the mark go.
    await form.locator('input[name="cron"]').fill("0 3 * * *");
    await form.locator('button[data-action="create-schedule"]').click();
    const created = form.locator("[data-created-schedule]");
    await created.waitFor();
    made.push({ token, id: (await created.getAttribute("data-created-schedule"))! });
    await error.waitFor({ state: "detached" });
    assert.equal(await form.locator('input[name="cron"]').getAttribute("aria-invalid"), null);
    const row = page.page.locator(`tr[data-kind="cron"][data-schedule-name="never"]`);
    await row.waitFor();
    assert.equal(await row.locator("td[data-timing]").innerText(), "0 3 * * * Europe/Berlin");
    pages.assertStayedClean();
  });

  it("a tasks:read token sees the schedules and their tasks' link, without the form or the row's buttons", async () => {
    const tenant = freshTenant("sched-ui-read");
    const writer = mintToken({ tenant });
    const schedule = await createOverRest(writer, { name: "hourly", task: { type: "echo" }, every: 3_600_000 });
    const page = await open(mintToken({ tenant, permissions: ["tasks:read"] }));
    await openSchedules(page);
    const row = page.page.locator(`tr[data-schedule-id="${schedule.id}"]`);
    await row.waitFor();
    assert.equal(await row.locator("td[data-timing]").innerText(), "every 1 h");
    await row.locator(`a[data-schedule-tasks="${schedule.id}"]`).waitFor();
    assert.equal(await page.page.locator("form.create-schedule").count(), 0);
    assert.equal(await page.page.locator("[data-action]").count(), 0);
    // A change made elsewhere arrives live.
    assert.equal((await api(node.url, "PATCH", `/api/v1/schedules/${schedule.id}`, { token: writer, body: { paused: true } })).status, 200);
    await page.element({ "schedule-id": schedule.id, paused: "true" });
    pages.assertStayedClean();
  });

  it("axe-core finds no serious or critical violation in the Schedules view, light and dark, with the form, rows and a confirmation", async () => {
    const tenant = freshTenant("sched-ui-axe");
    const token = mintToken({ tenant });
    const every = await createOverRest(token, { name: "hourly", task: { type: "echo", payload: { n: 1 } }, every: 3_600_000 });
    const cron = await createOverRest(token, {
      name: "nightly",
      task: { type: "sleep", payload: { ms: 10 } },
      cron: "0 3 * * *",
      timezone: "Europe/Berlin",
    });
    assert.equal((await api(node.url, "PATCH", `/api/v1/schedules/${cron.id}`, { token, body: { paused: true } })).status, 200);
    const page = await open(token);
    page.expect(/status of 400/);
    const problems: string[] = [];
    await openSchedules(page);
    for (const scheme of ["light", "dark"] as const) {
      await page.page.emulateMedia({ colorScheme: scheme });
      const background = await page.page.evaluate<string>("getComputedStyle(document.documentElement).backgroundColor");
      assert.equal(background, scheme === "dark" ? "rgb(15, 19, 26)" : "rgb(245, 246, 248)", `${scheme} background`);
      await page.element({ "schedule-id": every.id, paused: "false" });
      await page.element({ "schedule-id": cron.id, paused: "true" });
      for (const found of await seriousViolations(page.page)) problems.push(`${scheme} schedules: ${found}`);
      // A refusal under the form, the cron fields shown, and a row asking to confirm a delete.
      const form = page.page.locator("form.create-schedule");
      await form.locator('input[name="name"]').fill("axe");
      await form.locator('input[name="kind"][value="cron"]').check();
      await form.locator('input[name="cron"]').fill("not a cron");
      await form.locator('button[data-action="create-schedule"]').click();
      await form.locator(".error-line").waitFor();
      await page.page.locator(`tr[data-schedule-id="${every.id}"] button[data-action="delete-schedule"]`).click();
      await page.page.locator(`tr[data-schedule-id="${every.id}"] button[data-action="confirm-delete-schedule"]`).waitFor();
      for (const found of await seriousViolations(page.page)) problems.push(`${scheme} schedules (error, confirmation): ${found}`);
      if (scheme === "dark") await page.screenshot("schedules-dark");
      await page.page.locator(`tr[data-schedule-id="${every.id}"] button[data-action="cancel-delete-schedule"]`).click();
    }
    assert.deepEqual(problems, []);
    assert.equal((await api(node.url, "GET", "/api/v1/schedules", { token })).body.items.length, 2, "nothing was created or deleted");
    pages.assertStayedClean();
  });
});
