import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { connect, sleep, subscribe } from "./support/clients.js";
import { freshTenant, TEST_REDIS_URL } from "./support/env.js";
import { api } from "./support/http.js";
import { isolatedNodeEnv, isolatedPrefix } from "./support/isolation.js";
import { deleteRedisKeys } from "./support/redis-cleanup.js";
import { CONTRACT_SERIES } from "./support/metrics.js";
import { freePort } from "./support/private-services.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { submitTask, waitForTask } from "./support/tasks.js";
import { mintToken } from "./support/tokens.js";
import { skipBecause } from "./support/skip.js";

/** Debian's `prometheus` package (`.ci/run` installs it when missing). */
const PROMETHEUS = "/usr/bin/prometheus";
const DASHBOARD = "deploy/grafana/switchyard.json";
const ALERTS = "deploy/prometheus/alerts.yml";

interface PromResponse<T> {
  status: "success" | "error";
  data: T;
  errorType?: string;
  error?: string;
}

interface GrafanaPanel {
  title?: string;
  type: string;
  targets?: Array<{ expr?: string }>;
  panels?: GrafanaPanel[];
}

interface GrafanaVariable {
  name: string;
  type: string;
  allValue?: string;
  query?: string | { query?: string };
}

interface Dashboard {
  panels: GrafanaPanel[];
  templating: { list: GrafanaVariable[] };
}

interface RuleGroups {
  groups: Array<{ file: string; rules: Array<{ type: string; name: string; query: string; health: string; lastError?: string }> }>;
}

/** A PromQL expression to check, and where it comes from (for failure messages). */
interface Expression {
  source: string;
  expr: string;
}

/**
 * Grafana's built-in interval variables and the dashboard's own template variables, replaced by what Grafana would
 * send with every node selected: what remains must be plain PromQL.
 */
function grafanaToPromQL(expr: string, variables: readonly GrafanaVariable[]): string {
  let out = expr.replace(/\$\{?__(rate_interval|interval|range)\}?/g, (_, name: string) =>
    name === "interval" ? "15s" : name === "range" ? "1h" : "1m",
  );
  for (const variable of variables) {
    if (variable.type === "datasource") continue;
    out = out.replace(new RegExp(`\\$\\{${variable.name}(?::[a-z]+)?\\}|\\$${variable.name}\\b`, "g"), variable.allValue ?? ".*");
  }
  return out;
}

/** Every panel query of the dashboard, rows' nested panels included. */
function panelQueries(dashboard: Dashboard): Expression[] {
  const walk = (panels: readonly GrafanaPanel[]): Expression[] =>
    panels.flatMap((panel) => [
      ...(panel.targets ?? [])
        .filter((t) => t.expr)
        .map((t) => ({ source: `panel "${panel.title}"`, expr: grafanaToPromQL(t.expr!, dashboard.templating.list) })),
      ...walk(panel.panels ?? []),
    ]);
  return walk(dashboard.panels);
}

/** Metric names an expression selects that the nodes must expose (Switchyard's own and Node's process metrics). */
function metricNames(expr: string): string[] {
  return [...new Set(expr.match(/\b(?:switchyard|nodejs)_[a-zA-Z0-9_]+/g) ?? [])];
}

describe("Prometheus: the dashboard's queries and the alert rules against real nodes", function () {
  // Starting Prometheus, waiting for scrapes and evaluations: generous, and never a timing assertion.
  this.timeout(180_000);
  const prefix = isolatedPrefix("prom");
  let nodes: ServerProcess[] = [];
  let prometheus: ChildProcess | undefined;
  let prometheusExited: Promise<unknown> | undefined;
  let prometheusLog = "";
  let dir: string | undefined;
  let promUrl = "";

  async function query<T>(pathAndQuery: string): Promise<PromResponse<T>> {
    const response = await fetch(`${promUrl}${pathAndQuery}`, { signal: AbortSignal.timeout(15_000) });
    return (await response.json()) as PromResponse<T>;
  }

  async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const result = await probe().catch(() => undefined);
      if (result !== undefined) return result;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; Prometheus log:\n${prometheusLog.slice(-3000)}`);
      await sleep(500);
    }
  }

  before(async function () {
    if (!existsSync(PROMETHEUS)) {
      skipBecause(this, `${PROMETHEUS} is not installed (apt-get install prometheus; .ci/run does)`);
    }
    nodes = await Promise.all(["prom-a", "prom-b"].map((id) => startServer({ ...isolatedNodeEnv(prefix), NODE_ID: id })));

    // Traffic, so that the series behind the panels move: a subscriber, a task run to completion, a published event.
    const token = mintToken({ tenant: freshTenant() });
    const socket = await connect(nodes[1]!.url, "tasks", { token });
    assert.equal((await subscribe(socket, "tasks")).ok, true);
    const task = await submitTask(nodes[0]!.url, token, { type: "echo", payload: { hello: "prometheus" } });
    await waitForTask(nodes[0]!.url, token, task.id, ["completed"]);
    const published = await api(nodes[1]!.url, "POST", "/api/v1/events", {
      token,
      body: { namespace: "tasks", room: "tasks", type: "demo.ping", data: {} },
    });
    assert.equal(published.status, 202);

    dir = await mkdtemp(path.join(os.tmpdir(), "switchyard-prometheus-"));
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    // The real rule file, loaded as an operator would: Prometheus parses and evaluates every alert expression.
    const config = [
      "global:",
      "  scrape_interval: 1s",
      "  scrape_timeout: 1s",
      "  evaluation_interval: 1s",
      "rule_files:",
      `  - ${JSON.stringify(path.resolve(ALERTS))}`,
      "scrape_configs:",
      "  - job_name: switchyard",
      "    static_configs:",
      `      - targets: [${nodes.map((n) => JSON.stringify(`127.0.0.1:${n.port}`)).join(", ")}]`,
      "",
    ].join("\n");
    await writeFile(path.join(dir, "prometheus.yml"), config);
    const child = spawn(
      PROMETHEUS,
      [
        `--config.file=${path.join(dir, "prometheus.yml")}`,
        `--storage.tsdb.path=${path.join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    prometheus = child;
    prometheusExited = new Promise((resolve) => child.once("exit", resolve));
    child.stdout.on("data", (chunk: Buffer) => (prometheusLog += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (prometheusLog += chunk.toString()));

    await until("both nodes scraped and up", async () => {
      const result = await query<{ result: Array<{ metric: Record<string, string>; value: [number, string] }> }>(
        `/api/v1/query?query=${encodeURIComponent('up{job="switchyard"}')}`,
      );
      const up = result.data.result.filter((r) => r.value[1] === "1");
      return up.length === nodes.length ? true : undefined;
    });
    // Enough scrapes for rate() over a minute to have two points, and for every rule to have been evaluated.
    await until("a few scrapes of the traffic's series", async () => {
      const result = await query<{ result: unknown[] }>(
        `/api/v1/query?query=${encodeURIComponent("count_over_time(switchyard_tasks_total[1m])")}`,
      );
      return (result.data.result as Array<{ value: [number, string] }>).some((r) => Number(r.value[1]) >= 3) ? true : undefined;
    });
  });

  after(async () => {
    if (prometheus && prometheus.exitCode === null && prometheus.signalCode === null) prometheus.kill("SIGTERM");
    await prometheusExited;
    if (dir) await rm(dir, { recursive: true, force: true });
    await Promise.all(nodes.map((n) => n.stop()));
    await deleteRedisKeys(TEST_REDIS_URL, prefix);
  });

  /** The metric names the two nodes expose, as Prometheus scraped them. */
  async function exposedNames(): Promise<Set<string>> {
    const names = await query<string[]>("/api/v1/label/__name__/values");
    assert.equal(names.status, "success");
    return new Set(names.data);
  }

  /** Runs each expression through /api/v1/query; returns one line per problem (an error, a metric not exposed). */
  async function problems(expressions: readonly Expression[]): Promise<string[]> {
    const exposed = await exposedNames();
    const found: string[] = [];
    for (const { source, expr } of expressions) {
      const result = await query<unknown>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
      if (result.status !== "success") found.push(`${source}: ${result.errorType}: ${result.error} in ${expr}`);
      for (const name of metricNames(expr)) if (!exposed.has(name)) found.push(`${source}: ${name} is not exposed by the nodes (${expr})`);
    }
    return found;
  }

  it("runs every panel query of the Grafana dashboard without error, on metrics the nodes expose", async () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as Dashboard;
    const queries = panelQueries(dashboard);
    assert.ok(queries.length >= 12, `the dashboard has its panels (${queries.length} queries)`);
    for (const { source, expr } of queries) assert.doesNotMatch(expr, /\$/, `${source}: a Grafana variable left in ${expr}`);
    // The node picker's label_values() is Grafana's, not PromQL: its metric must exist all the same.
    const exposed = await exposedNames();
    for (const variable of dashboard.templating.list) {
      const text = typeof variable.query === "string" ? variable.query : (variable.query?.query ?? "");
      for (const name of metricNames(text)) assert.ok(exposed.has(name), `variable ${variable.name}: ${name} is not exposed`);
    }
    assert.deepEqual(await problems(queries), []);
  });

  it("loads alerts.yml, evaluates every rule healthily, and runs every alert expression on metrics the nodes expose", async () => {
    const declared = (readFileSync(ALERTS, "utf8").match(/^\s*- alert: \S+/gm) ?? []).length;
    const rules = await until("every rule evaluated", async () => {
      const response = await query<RuleGroups>("/api/v1/rules?type=alert");
      const loaded = response.data.groups.flatMap((g) => g.rules);
      return loaded.length === declared && loaded.every((r) => r.health !== "unknown") ? loaded : undefined;
    });
    assert.ok(declared >= 7, `alerts.yml declares its alerts (${declared})`);
    for (const rule of rules) assert.equal(rule.health, "ok", `${rule.name}: ${rule.lastError ?? ""}`);
    assert.deepEqual(await problems(rules.map((r) => ({ source: `alert ${r.name}`, expr: r.query }))), []);
  });

  it("sees no tenant label on any Switchyard series by default", async () => {
    const series = await query<Array<Record<string, string>>>(
      `/api/v1/series?${new URLSearchParams({ "match[]": '{__name__=~"switchyard_.+", tenant!=""}' }).toString()}`,
    );
    assert.equal(series.status, "success");
    assert.deepEqual(series.data, []);
    // And the contract's series are all there, from both nodes.
    const present = await query<Array<Record<string, string>>>(
      `/api/v1/series?${new URLSearchParams({ "match[]": '{__name__=~"switchyard_.+"}' }).toString()}`,
    );
    const byName = new Map<string, Set<string>>();
    for (const labels of present.data) byName.set(labels.__name__!, (byName.get(labels.__name__!) ?? new Set()).add(labels.node!));
    for (const name of CONTRACT_SERIES) {
      assert.deepEqual([...(byName.get(name) ?? [])].sort(), ["prom-a", "prom-b"], `${name} from both nodes`);
    }
  });
});
