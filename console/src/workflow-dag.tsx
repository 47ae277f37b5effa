import type { WorkflowStepStatus } from "../../src/client/index.js";

export interface DagStep {
  key: string;
  type: string;
  dependsOn: string[];
  status: WorkflowStepStatus;
  /** The step's task status when it has one and it says more (queued, started, retrying…). */
  detail: string | undefined;
  taskId: string | null;
}

const BOX = { width: 168, height: 58, gapX: 64, gapY: 18, pad: 12 };

/** Each step's layer: 0 without dependencies, else one more than its deepest dependency (the DAG has no cycles). */
export function layers(steps: Array<{ key: string; dependsOn: string[] }>): Map<string, number> {
  const byKey = new Map(steps.map((s) => [s.key, s]));
  const layer = new Map<string, number>();
  const visit = (key: string, depth: number): number => {
    const known = layer.get(key);
    if (known !== undefined) return known;
    const step = byKey.get(key);
    // An unknown key or a cycle would be refused by the server; guard anyway, the page must not hang.
    if (!step || depth > steps.length) return 0;
    const value = step.dependsOn.length === 0 ? 0 : 1 + Math.max(...step.dependsOn.map((d) => visit(d, depth + 1)));
    layer.set(key, value);
    return value;
  };
  for (const step of steps) visit(step.key, 0);
  return layer;
}

/** The workflow's steps in columns by layer, an arrow from each dependency to the step that waits for it. */
export function WorkflowDag({ steps }: { steps: DagStep[] }) {
  const layerOf = layers(steps);
  const columns: DagStep[][] = [];
  for (const step of steps) (columns[layerOf.get(step.key) ?? 0] ??= []).push(step);
  const position = new Map<string, { x: number; y: number }>();
  columns.forEach((column, c) =>
    column.forEach((step, r) =>
      position.set(step.key, { x: BOX.pad + c * (BOX.width + BOX.gapX), y: BOX.pad + r * (BOX.height + BOX.gapY) }),
    ),
  );
  const rows = Math.max(1, ...columns.map((c) => c.length));
  const width = BOX.pad * 2 + columns.length * BOX.width + Math.max(0, columns.length - 1) * BOX.gapX;
  const height = BOX.pad * 2 + rows * BOX.height + (rows - 1) * BOX.gapY;
  return (
    <svg class="dag" width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img" aria-label="workflow steps">
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
          <path d="M0,0 L10,5 L0,10 z" class="dag-arrowhead" />
        </marker>
      </defs>
      {steps.flatMap((step) =>
        step.dependsOn.map((dep) => {
          const from = position.get(dep);
          const to = position.get(step.key);
          if (!from || !to) return null;
          const x1 = from.x + BOX.width;
          const y1 = from.y + BOX.height / 2;
          const x2 = to.x;
          const y2 = to.y + BOX.height / 2;
          const bend = (x2 - x1) / 2;
          return (
            <path
              key={`${dep}->${step.key}`}
              class="dag-edge"
              d={`M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`}
              marker-end="url(#arrow)"
            />
          );
        }),
      )}
      {steps.map((step) => {
        const at = position.get(step.key)!;
        return (
          <g
            key={step.key}
            class={`dag-step step-${step.status}`}
            data-step-key={step.key}
            data-status={step.status}
            transform={`translate(${at.x},${at.y})`}
          >
            <title>{`${step.key} (${step.type}): ${step.status}${step.taskId ? `, task ${step.taskId}` : ""}`}</title>
            <rect width={BOX.width} height={BOX.height} rx="8" />
            <text x="12" y="23" class="dag-key">
              {step.key}
            </text>
            <text x="12" y="43" class="dag-sub">
              {step.type} · {step.detail ?? step.status}
            </text>
          </g>
        );
      })}
    </svg>
  );
}
