// Helpers shared by the bench orchestrator (run.ts), the load generators (load-client.ts) and the
// baseline server. Nothing here imports from src/: the bench treats Switchyard as a black box.

import http from "node:http";
import os from "node:os";
import jwt from "jsonwebtoken";

/**
 * Wall-clock milliseconds with sub-millisecond resolution, comparable across the processes of one machine
 * (process.hrtime/performance.now alone are per-process). Used to stamp a publish in one process and the
 * receipt in another.
 */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** HS256 token with the claims Switchyard requires (sub, tenant_id, exp, permissions). Valid for 4 h. */
export function mintToken(secret: string, tenant: string, sub = "bench-user", permissions: string[] = ["admin"]): string {
  const iat = Math.floor(Date.now() / 1000);
  return jwt.sign({ sub, tenant_id: tenant, permissions, iat, exp: iat + 4 * 3600 }, secret, { algorithm: "HS256" });
}

export interface Summary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Percentiles (nearest rank) of a list of numbers; the list is sorted in place. */
export function summarize(values: number[]): Summary {
  if (values.length === 0) return { count: 0, p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN };
  values.sort((a, b) => a - b);
  const at = (q: number): number => values[Math.min(values.length - 1, Math.max(0, Math.ceil(q * values.length) - 1))]!;
  let sum = 0;
  for (const v of values) sum += v;
  return { count: values.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: values[values.length - 1]!, mean: sum / values.length };
}

export function round(value: number, digits = 2): number {
  if (!Number.isFinite(value)) return value;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** A summary with every figure rounded to `digits` decimals, for a report. */
export function roundSummary(s: Summary, digits = 2): Summary {
  return {
    count: s.count,
    p50: round(s.p50, digits),
    p90: round(s.p90, digits),
    p99: round(s.p99, digits),
    max: round(s.max, digits),
    mean: round(s.mean, digits),
  };
}

export interface HttpResult {
  status: number;
  body: string;
}

/** A small JSON-over-HTTP client on a keep-alive agent (cheaper per request than fetch). */
export class HttpClient {
  readonly agent: http.Agent;
  constructor(
    readonly baseUrl: string,
    maxSockets = 64,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  }

  request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}, timeoutMs = 30_000): Promise<HttpResult> {
    const url = new URL(path, this.baseUrl);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<HttpResult>((resolve, reject) => {
      const req = http.request(
        {
          method,
          hostname: url.hostname,
          port: url.port,
          path: url.pathname + url.search,
          agent: this.agent,
          headers: {
            ...(payload ? { "content-type": "application/json", "content-length": String(payload.length) } : {}),
            ...headers,
          },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`${method} ${path} timed out`)));
      req.on("error", reject);
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

export function machineInfo() {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? "unknown",
    cpuCount: cpus.length,
    totalMemBytes: os.totalmem(),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    hostname: os.hostname(),
  };
}

/** A compact, fixed-width text table. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string => "| " + cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |";
  const sep = "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|";
  return [line(header), sep, ...rows.map(line)].join("\n");
}

/** Human-friendly number: 12345 -> "12.3k". */
export function human(value: number, digits = 1): string {
  if (!Number.isFinite(value)) return "n/a";
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${(value / 1e6).toFixed(digits)}M`;
  if (abs >= 1e4) return `${(value / 1e3).toFixed(digits)}k`;
  if (abs >= 100) return value.toFixed(0);
  return value.toFixed(digits);
}
