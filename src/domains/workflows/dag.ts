/** Problems with a workflow's step graph, each naming the offending field (`steps.<i>.<field>`). */
export interface DagProblem {
  field: string;
  message: string;
}

/**
 * Checks that step keys are unique, dependencies name existing other steps, and the graph has no cycle
 * (Kahn's algorithm: whatever cannot be ordered lies on or behind a cycle).
 */
export function validateDag(steps: ReadonlyArray<{ key: string; dependsOn: readonly string[] }>): DagProblem[] {
  const problems: DagProblem[] = [];
  const index = new Map<string, number>();
  steps.forEach((step, i) => {
    if (index.has(step.key)) problems.push({ field: `steps.${i}.key`, message: `duplicate key "${step.key}"` });
    else index.set(step.key, i);
  });
  steps.forEach((step, i) => {
    step.dependsOn.forEach((dep, j) => {
      if (dep === step.key) problems.push({ field: `steps.${i}.dependsOn.${j}`, message: "a step cannot depend on itself" });
      else if (!index.has(dep)) problems.push({ field: `steps.${i}.dependsOn.${j}`, message: `unknown step "${dep}"` });
    });
  });
  if (problems.length > 0) return problems;

  const remaining = new Map(steps.map((s) => [s.key, new Set(s.dependsOn)]));
  let progressed = true;
  while (progressed) {
    progressed = false;
    for (const [key, deps] of remaining) {
      if (deps.size === 0) {
        remaining.delete(key);
        for (const other of remaining.values()) other.delete(key);
        progressed = true;
      }
    }
  }
  if (remaining.size > 0) {
    const cyclic = [...remaining.keys()];
    problems.push({ field: "steps", message: `dependency cycle among steps: ${cyclic.join(", ")}` });
  }
  return problems;
}
