// The console's Tasks view over 100,000 tasks of one tenant, in Debian's Chromium (playwright-core): how long the
// first render takes (navigation to the first page of rows and the exact counts on screen), and how long a filter
// change takes (the control changed to the new rows and counts on screen).
//
//   npx tsx scripts/bench/console-tasks.ts [--tasks 100000] [--runs 5]
//
// One node on a database of its own (switchyard_console_<rand>, dropped at the end), no embedded worker. The tasks
// are seeded with one INSERT … SELECT generate_series: finished ones only (completed, failed, cancelled), so no
// worker or reconciler touches them while the browser measures; four types, three pools, creation times over the
// last 7 days. Prints a JSON summary (milliseconds, per run and the median). Timings are taken from the test
// driver's side (playwright round trips included): what an operator waits at most.

import { parseArgs } from "node:util";
import { chromium, type Browser, type Page } from "playwright-core";
import { buildConsole } from "../build-console.js";
import { benchRun, LIMITS_OUT_OF_REACH, withDatabase, type BenchRun } from "./bench-run.js";
import { HttpClient, mintToken, round, summarize } from "./lib.js";

const { values } = parseArgs({ options: { tasks: { type: "string", default: "100000" }, runs: { type: "string", default: "5" } } });
const TASKS = Number(values.tasks);
const RUNS = Number(values.runs);

const tenant = "console-bench";
const log = (line: string): void => void process.stderr.write(`${line}\n`);

async function seed(databaseUrl: string, pools: string[]): Promise<number> {
  return withDatabase(databaseUrl, async (client) => {
    const started = performance.now();
    // Statuses 80% completed, 15% failed, 5% cancelled; types and pools round-robin; one task a few seconds apart.
    await client.query(
      `INSERT INTO "Task" ("id", "tenantId", "poolId", "type", "payload", "status", "priority", "maxAttempts", "attempts",
         "result", "error", "workerId", "createdAt", "updatedAt", "queuedAt", "startedAt", "finishedAt")
       SELECT gen_random_uuid()::text, $1, ($2::text[])[1 + n % 3], (ARRAY['echo','sleep','fail','import.csv'])[1 + n % 4],
         jsonb_build_object('n', n),
         CASE WHEN n % 20 = 0 THEN 'cancelled' WHEN n % 20 < 4 THEN 'failed' ELSE 'completed' END,
         50, 1, 1,
         CASE WHEN n % 20 >= 4 THEN jsonb_build_object('ok', n) END,
         CASE WHEN n % 20 BETWEEN 1 AND 3 THEN jsonb_build_object('code', 'HANDLER_ERROR', 'message', 'seeded failure ' || n, 'retryable', false) END,
         'embedded@seed',
         now() - make_interval(secs => ($3 - n) * 6), now() - make_interval(secs => ($3 - n) * 6) + interval '2 seconds',
         now() - make_interval(secs => ($3 - n) * 6), now() - make_interval(secs => ($3 - n) * 6) + interval '1 second',
         now() - make_interval(secs => ($3 - n) * 6) + interval '2 seconds'
       FROM generate_series(1, $3) AS n`,
      [tenant, pools, TASKS],
    );
    await client.query(`ANALYZE "Task"`);
    return performance.now() - started;
  });
}

/** Waits until something matches `condition` on the page. */
async function shown(page: Page, condition: string): Promise<void> {
  await page.locator(condition).first().waitFor({ timeout: 30_000 });
}

/** The measurements, on a node of the run's own with the tasks seeded, in `browser`. */
async function measureConsole(run: BenchRun, browser: Browser): Promise<void> {
  const node = await run.startSwitchyard({ ...LIMITS_OUT_OF_REACH, EMBEDDED_WORKER: "false" });
  const token = mintToken(run.secret, tenant, "bench", ["admin"]);
  const http = new HttpClient(node.url, 4);
  const auth = { authorization: `Bearer ${token}` };
  const pools = ["default"];
  for (const name of ["ingest", "render"])
    pools.push(
      (JSON.parse(String((await http.request("POST", "/api/v1/pools", { name }, auth)).body)) as { pool: { id: string } }).pool.id,
    );
  const seedMs = await seed(run.databaseUrl, pools);
  log(`seeded ${TASKS} tasks in ${Math.round(seedMs)} ms`);
  const counts = JSON.parse(String((await http.request("GET", "/api/v1/tasks/counts", undefined, auth)).body)) as {
    total: number;
    counts: Record<string, number>;
  };
  log(`counts: ${JSON.stringify(counts)}`);
  const countOf = async (query: string): Promise<number> =>
    (JSON.parse(String((await http.request("GET", `/api/v1/tasks/counts?${query}`, undefined, auth)).body)) as { total: number }).total;
  const byType = await countOf("type=import.csv");
  const byPool = await countOf(`poolId=${pools[2]}`);

  // The API alone, for reference: the requests the view makes.
  const api: Record<string, number[]> = {};
  for (const [name, route] of [
    ["page", "/api/v1/tasks?limit=50"],
    ["page status=failed", "/api/v1/tasks?limit=50&status=failed"],
    ["page type=import.csv", "/api/v1/tasks?limit=50&type=import.csv"],
    ["page pool", `/api/v1/tasks?limit=50&poolId=${pools[1]}`],
    ["page q", "/api/v1/tasks?limit=50&q=abc"],
    ["counts", "/api/v1/tasks/counts"],
    ["counts type", "/api/v1/tasks/counts?type=import.csv"],
  ] as const) {
    api[name] = [];
    for (let i = 0; i < RUNS + 1; i++) {
      const started = performance.now();
      const response = await http.request("GET", route, undefined, auth);
      if (response.status !== 200) throw new Error(`${route}: ${response.status} ${String(response.body)}`);
      if (i > 0) api[name].push(performance.now() - started);
    }
  }

  const firstRender: number[] = [];
  const filters: Record<string, number[]> = { status: [], type: [], pool: [], id: [], back: [] };
  for (let i = 0; i < RUNS; i++) {
    const context = await browser.newContext({ viewport: { width: 1360, height: 860 } });
    const page = await context.newPage();
    // Signed in once (the tab keeps the token in sessionStorage); then the operator opens /dashboard/#tasks: the
    // first render is the whole page load up to the first page of rows and the exact counts on screen.
    await page.goto(`${node.url}/dashboard/#token=${token}`);
    await shown(page, '[data-connection="live"]');
    await page.goto("about:blank");
    const started = performance.now();
    await page.goto(`${node.url}/dashboard/#tasks`);
    await shown(page, `[data-count="all"][data-value="${counts.total}"]`);
    await shown(page, `table[data-page="1"] tr[data-task-id]:nth-child(50)`);
    firstRender.push(performance.now() - started);

    const rows = page.locator("table[data-page] tr[data-task-id]");
    /** Polls the page (a few ms a round trip) until `done` holds. */
    const until = async (done: () => Promise<boolean>): Promise<void> => {
      for (const deadline = performance.now() + 30_000; !(await done());) {
        if (performance.now() > deadline) throw new Error("the view did not change in 30 s");
      }
    };
    const measure = async (name: string, change: () => Promise<unknown>, done: () => Promise<boolean>): Promise<void> => {
      const from = performance.now();
      await change();
      await until(done);
      filters[name]!.push(performance.now() - from);
      // Back to no filter, measured too.
      const back = performance.now();
      await page.getByRole("button", { name: "Clear filters" }).click();
      await until(
        async () =>
          (await page.locator(`[data-count="all"][data-value="${counts.total}"]`).count()) === 1 &&
          (await rows.count()) === 50 &&
          (await page.locator('[data-page-number="1"]').count()) === 1,
      );
      // Only when something had to be read again (the counts after a type or pool filter; the page after any).
      filters.back!.push(performance.now() - back);
    };
    const fullPageOf = async (selector: string): Promise<boolean> =>
      (await rows.count()) === 50 && (await page.locator(`table[data-page] tr[data-task-id]:not(${selector})`).count()) === 0;
    await measure(
      "status",
      () => page.locator('select[name="status"]').selectOption("failed"),
      () => fullPageOf('[data-status="failed"]'),
    );
    await measure(
      "type",
      () => page.locator('form.filters input[name="type"]').fill("import.csv"),
      async () =>
        (await page.locator(`[data-count="all"][data-value="${byType}"]`).count()) === 1 &&
        fullPageOf(":has(td:nth-child(2):text-is('import.csv'))"),
    );
    await measure(
      "pool",
      () => page.locator('select[name="pool"]').selectOption(pools[2]!),
      async () =>
        (await page.locator(`[data-count="all"][data-value="${byPool}"]`).count()) === 1 &&
        fullPageOf(`:has(td:nth-child(3):text-is('${pools[2]}'))`),
    );
    await measure(
      "id",
      () => page.locator('input[name="q"]').fill("ab"),
      () => fullPageOf('[data-task-id^="ab"]'),
    );
    await context.close();
  }
  const median = (xs: number[]): number => round(summarize(xs).p50, 0);
  const summary = {
    tasks: TASKS,
    runs: RUNS,
    firstRenderMs: { median: median(firstRender), all: firstRender.map((x) => Math.round(x)) },
    filterChangeMs: Object.fromEntries(
      Object.entries(filters).map(([k, xs]) => [k, { median: median(xs), all: xs.map((x) => Math.round(x)) }]),
    ),
    apiMs: Object.fromEntries(Object.entries(api).map(([k, xs]) => [k, median(xs)])),
    note: "type and id filters include the 120 ms pause the view waits after typing stops",
  };
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run"],
});
try {
  await buildConsole();
  await benchRun({ tag: "console", log }, (run) => measureConsole(run, browser));
} finally {
  await browser.close();
}
