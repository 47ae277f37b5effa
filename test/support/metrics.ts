/** One sample of a node's `/metrics` (Prometheus text format). */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    const match = LINE.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const [, name, value] of (match[2] ?? "").matchAll(LABEL)) labels[name!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** A node's /metrics, parsed. */
export async function scrape(url: string): Promise<Sample[]> {
  const response = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(15_000) });
  if (response.status !== 200) throw new Error(`${url}/metrics answered ${response.status}`);
  return parseMetrics(await response.text());
}

/** The samples of `name` whose labels include `labels`. */
export function select(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The sum of the samples of `name` with `labels`, over every scrape given (one per node). */
export function total(scrapes: ReadonlyArray<readonly Sample[]>, name: string, labels: Record<string, string> = {}): number {
  return scrapes.flatMap((samples) => select(samples, name, labels)).reduce((sum, s) => sum + s.value, 0);
}

/** The series the contract's "Operations" names, histograms by their `_count` (every histogram exports one). */
export const CONTRACT_SERIES = [
  "switchyard_connected_sockets",
  "switchyard_connections_total",
  "switchyard_subscriptions",
  "switchyard_events_published_total",
  "switchyard_publish_duration_seconds_count",
  "switchyard_event_log_batch_rows_count",
  "switchyard_slow_consumer_disconnects_total",
  "switchyard_rate_limited_total",
  "switchyard_tasks_total",
  "switchyard_task_duration_seconds_count",
  "switchyard_queue_waiting",
  "switchyard_workers",
  "switchyard_db_query_duration_seconds_count",
  "switchyard_redis_up",
  "switchyard_postgres_up",
] as const;
