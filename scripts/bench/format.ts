// How `npm run bench` writes figures in its table and progress lines.

import type { Summary } from "./lib.js";

export const ratio = (a: number, b: number, digits = 2): string =>
  Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${(a / b).toFixed(digits)}x` : "n/a";
export const kib = (bytes: number): string => (Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(1)} KiB` : "n/a");
export const ms = (value: number): string => (Number.isFinite(value) ? value.toFixed(1) : "n/a");
export const lat = (s: Summary): string => (s.count > 0 ? `${ms(s.p50)}/${ms(s.p99)}/${ms(s.max)}` : "n/a");

/** CPU (% of one core) the machine spent outside the measured process groups: other work sharing the cores. */
const otherCpu = (cpu: Record<string, number>): number =>
  (cpu.machine ?? 0) - Object.entries(cpu).reduce((sum, [k, v]) => (k === "machine" ? sum : sum + v), 0);
export const cpuText = (cpu: Record<string, number>): string =>
  Object.entries(cpu)
    .map(([k, v]) => `${k} ${v}%`)
    .join(", ") + `, other ${otherCpu(cpu)}%`;
/** Row note when something outside the bench used a noticeable share of the cores during any of `cpus`. */
export const busyNote = (...cpus: Array<Record<string, number>>): string => {
  const worst = Math.max(...cpus.map(otherCpu));
  return worst >= 25 ? `; machine busy: up to ${worst}% CPU outside the bench` : "";
};

/** CPU microseconds of one process group per unit (delivery, event) over a delivery run. */
export function cpuUs(run: { cpuPercent: Record<string, number>; cpuWallMs: number }, group: string, units: number): string {
  const percent = run.cpuPercent[group];
  if (percent === undefined || units <= 0) return "n/a";
  return (((percent / 100) * run.cpuWallMs * 1000) / units).toFixed(1);
}
