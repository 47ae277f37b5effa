// Echo tasks in a closed loop, N in flight: Switchyard (REST submit -> task.completed on a `tasks` subscriber)
// next to bare BullMQ on the same Redis (Queue.add -> the bare worker -> QueueEvents' completed).

import { human, now, type Summary } from "../lib.js";
import { busyNote, cpuText, lat, ratio } from "../format.js";
import { SIZES } from "../options.js";
import type { ProfileSummary, Suite } from "../suite.js";

interface TasksRun {
  concurrency: number;
  completed: number;
  failed: number;
  errors: string[];
  tasksPerSecond: number;
  latency: Summary;
  /** Switchyard: every event the `tasks` subscriber saw; bare BullMQ: every `completed` QueueEvents saw. */
  taskEventsSeen?: number;
  completedEventsSeen?: number;
  cpuPercent: Record<string, number>;
  /** CPU time per completed task (warm-up included, like the CPU window), ms, by process group. */
  cpuMsPerTask: Record<string, number>;
  profile?: ProfileSummary;
}

const cpuMs = (value: number | undefined): string => (value === undefined ? "n/a" : value >= 1 ? value.toFixed(1) : value.toFixed(2));

const BARE_QUEUE = "pool.tasks.default";

export async function tasksScenario(s: Suite): Promise<void> {
  s.log(`tasks: starting the bare BullMQ worker (concurrency ${SIZES.bareWorkerConcurrency})`);
  const bareWorker = (s.bareWorker = await s.run.startBareWorker(BARE_QUEUE, SIZES.bareWorkerConcurrency));
  const runs: Array<{ concurrency: number; switchyard: TasksRun; bullmq: TasksRun }> = [];
  const one = async (kind: "switchyard" | "bullmq", concurrency: number): Promise<TasksRun> => {
    const server = kind === "switchyard" ? s.nodeA! : bareWorker;
    const meter = s.cpuMeter(kind === "switchyard" ? { server } : { worker: server });
    const meterStart = now();
    meter.start();
    const loop = { concurrency, durationMs: SIZES.tasksMs, warmupMs: SIZES.tasksWarmupMs };
    const [result, profile] = await s.profiled(server, `tasks ${concurrency}`, () =>
      kind === "switchyard"
        ? s.publisher!.call<Omit<TasksRun, "concurrency" | "cpuPercent" | "cpuMsPerTask" | "profile">>("tasks", {
            url: s.nodeA!.url,
            token: s.tokens.tasks,
            ...loop,
          })
        : s.publisher!.call<Omit<TasksRun, "concurrency" | "cpuPercent" | "cpuMsPerTask" | "profile">>("bullmqTasks", {
            redisUrl: s.run.redisUrl,
            prefix: s.run.barePrefix,
            queue: BARE_QUEUE,
            ...loop,
          }),
    );
    const cpuPercent = meter.stop();
    const cpuWallMs = now() - meterStart;
    if (result.failed > 0) s.log(`  ${kind}: ${result.failed} tasks failed: ${result.errors.slice(0, 2).join("; ")}`);
    s.log(`  ${kind}: ${human(result.tasksPerSecond)} tasks/s, p50/p99/max ${lat(result.latency)} ms; cpu ${cpuText(cpuPercent)}`);
    const cpuMsPerTask = Object.fromEntries(
      Object.entries(cpuPercent)
        .filter(([k]) => k !== "machine" && k !== "loadClients")
        .map(([k, v]) => [k, Math.round(((v / 100) * cpuWallMs * 1000) / Math.max(1, result.completed)) / 1000]),
    );
    return { concurrency, ...result, cpuPercent, cpuMsPerTask, profile };
  };
  for (const concurrency of SIZES.tasksConcurrency) {
    s.log(
      `tasks: echo tasks, closed loop with ${concurrency} in flight, ${SIZES.tasksMs / 1000} s (+${SIZES.tasksWarmupMs / 1000} s warm-up) each, Switchyard then bare BullMQ`,
    );
    const sw = await one("switchyard", concurrency);
    const bare = await one("bullmq", concurrency);
    runs.push({ concurrency, switchyard: sw, bullmq: bare });
    const failed = sw.failed + bare.failed > 0 ? `; failed: sw ${sw.failed}, bullmq ${bare.failed}` : "";
    s.rows.push({
      scenario: `tasks, ${concurrency} in flight`,
      metric: "tasks/s",
      switchyard: human(sw.tasksPerSecond),
      baseline: human(bare.tasksPerSecond),
      ratio: ratio(sw.tasksPerSecond, bare.tasksPerSecond, 3),
      notes:
        `base = bare BullMQ; CPU ms/task: sw server ${cpuMs(sw.cpuMsPerTask.server)} + pg ${cpuMs(sw.cpuMsPerTask.postgres)} + redis ${cpuMs(sw.cpuMsPerTask.redis)}, ` +
        `bullmq worker ${cpuMs(bare.cpuMsPerTask.worker)} + producer ${cpuMs(bare.cpuMsPerTask.publisher)} + redis ${cpuMs(bare.cpuMsPerTask.redis)}${failed}` +
        busyNote(sw.cpuPercent, bare.cpuPercent),
    });
    s.rows.push({
      scenario: `tasks, ${concurrency} in flight`,
      metric: "p50/p99/max ms",
      switchyard: lat(sw.latency),
      baseline: lat(bare.latency),
      ratio: `p99 ${ratio(sw.latency.p99, bare.latency.p99, 1)}`,
      notes: "sw: POST /api/v1/tasks (echo) -> task.completed on a `tasks` subscriber",
    });
  }
  await bareWorker.stop();
  s.bareWorker = undefined;
  s.notes.push(
    "tasks: the same closed loop (N in flight, submit -> completion seen by the submitting process) through Switchyard " +
      "(REST submit, persisted task and its events, embedded worker in the server process, task.completed on a `tasks` " +
      "socket) and through bare BullMQ on the same Redis (Queue.add with the job options Switchyard uses for an echo task, " +
      `a Worker with concurrency ${SIZES.bareWorkerConcurrency} in its own process returning the payload, completion from QueueEvents).`,
  );
  s.writeResult("tasks", {
    durationMs: SIZES.tasksMs,
    warmupMs: SIZES.tasksWarmupMs,
    bareWorkerConcurrency: SIZES.bareWorkerConcurrency,
    runs,
  });
}
