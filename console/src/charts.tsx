import { BUCKET_MS, BUCKETS, type Bucket } from "./activity.js";
import { useObservable } from "./observable.js";
import type { Session } from "./session.js";
import { Empty } from "./ui.js";

const WIDTH = 320;
const HEIGHT = 90;

/** Round numbers for an axis' top: 1, 2, 5, 10, 20, 50 … */
function niceMax(value: number): number {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * power).find((n) => n >= value)!;
}

/**
 * A small line chart drawn as inline SVG (no chart library: the page loads nothing but the node's own files).
 * `values` are one per slice of the window, null where nothing was measured (a gap in the line).
 */
export function LineChart({
  name,
  title,
  unit,
  values,
  headline,
  format = (v) => String(v),
}: {
  name: string;
  title: string;
  unit: string;
  values: Array<number | null>;
  /** The figure in the caption, when it is not the last value (a rate over the last seconds). */
  headline?: number | undefined;
  format?: (v: number) => string;
}) {
  const known = values.filter((v): v is number => v !== null);
  const latest = headline ?? [...values].reverse().find((v): v is number => v !== null);
  const top = niceMax(Math.max(0, ...known));
  // 3 units in from each side: a dot at either end is not cut in half.
  const x = (i: number): number => 3 + (i / Math.max(1, BUCKETS - 1)) * (WIDTH - 6);
  const y = (v: number): number => HEIGHT - (v / top) * (HEIGHT - 4) - 2;
  // One path of segments: a null starts a new segment.
  const offset = BUCKETS - values.length;
  // A lone point (nothing measured either side) is drawn as a dot: a tiny segment with round caps.
  let d = "";
  values.forEach((v, i) => {
    if (v === null) return;
    const joined = i > 0 && values[i - 1] !== null;
    d += `${joined ? "L" : "M"}${x(i + offset).toFixed(1)},${y(v).toFixed(1)}`;
    if (!joined && (i === values.length - 1 || values[i + 1] === null)) d += "h0.1";
  });
  const summary =
    latest === undefined
      ? "no data yet"
      : `now ${format(latest)} ${unit}, peak ${format(Math.max(...known))} ${unit} over the last ${(BUCKETS * BUCKET_MS) / 60_000} minutes`;
  return (
    <figure class="chart card" data-chart={name} data-latest={latest === undefined ? "" : String(latest)}>
      <figcaption>
        <span class="chart-title">{title}</span>
        <span class="chart-value">
          {latest === undefined ? "—" : format(latest)} <span class="muted">{unit}</span>
        </span>
      </figcaption>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} preserveAspectRatio="none" role="img" aria-label={`${title}: ${summary}`}>
        <line class="chart-grid" x1="0" x2={WIDTH} y1={y(top / 2)} y2={y(top / 2)} />
        <line class="chart-grid" x1="0" x2={WIDTH} y1={y(0)} y2={y(0)} />
        {d && <path class="chart-line" d={d} />}
      </svg>
      <div class="chart-axis muted">
        <span>−{(BUCKETS * BUCKET_MS) / 1000} s</span>
        <span>max {format(top)}</span>
        <span>now</span>
      </div>
    </figure>
  );
}

const perSecond = (n: number, buckets = 1): number => Math.round((n / ((buckets * BUCKET_MS) / 1000)) * 10) / 10;
/** Slices the caption's rates are taken over: the current slice alone is only partly through. */
const RECENT = 5;
const recentRate = (buckets: Bucket[], pick: (b: Bucket) => number): number => {
  const recent = buckets.slice(-RECENT);
  return perSecond(
    recent.reduce((sum, b) => sum + pick(b), 0),
    recent.length,
  );
};
const millis = (ms: number): string =>
  ms >= 10_000 ? `${(ms / 1000).toFixed(0)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;

/** Throughput, failures, queue depth and task duration of the last two minutes, from the hub's own data. */
export function ActivityCharts({ session }: { session: Session }) {
  useObservable(session.activity);
  const buckets: Bucket[] = session.activity.buckets;
  if (buckets.length === 0) return <Empty>Charts fill in as tasks run.</Empty>;
  return (
    <section class="charts" aria-label="Live charts">
      <LineChart
        name="throughput"
        title="Throughput"
        unit="tasks/s"
        values={buckets.map((b) => perSecond(b.completed))}
        headline={recentRate(buckets, (b) => b.completed)}
      />
      <LineChart
        name="failures"
        title="Failures"
        unit="tasks/s"
        values={buckets.map((b) => perSecond(b.failed))}
        headline={recentRate(buckets, (b) => b.failed)}
      />
      <LineChart name="queue-depth" title="Queue depth" unit="queued" values={buckets.map((b) => b.queued)} />
      <LineChart
        name="duration"
        title="Task duration (mean run time)"
        unit=""
        values={buckets.map((b) => (b.durations === 0 ? null : b.durationMs / b.durations))}
        format={millis}
      />
    </section>
  );
}
