// `npm run bench`'s command line and the sizes of each scenario, quick and full.

const argv = process.argv.slice(2);
export const QUICK = argv.includes("--quick");
export const SIZE = QUICK ? "quick" : "full";
export const ALL_SCENARIOS = ["idle", "fanout", "latency", "publish", "sharding", "tasks", "replay"] as const;
export type Scenario = (typeof ALL_SCENARIOS)[number];
const scenariosArg = argv.find((a) => a.startsWith("--scenarios="))?.slice("--scenarios=".length) ?? argv[argv.indexOf("--scenarios") + 1];
export const SCENARIOS: Scenario[] =
  argv.some((a) => a.startsWith("--scenarios")) && scenariosArg
    ? (scenariosArg.split(",").filter((s) => (ALL_SCENARIOS as readonly string[]).includes(s)) as Scenario[])
    : [...ALL_SCENARIOS];
export const PROFILE = argv.includes("--profile");
export const COMMAND = `npm run bench${argv.length ? " -- " + argv.join(" ") : ""}`;
export const HELP = argv.includes("--help");
export const USAGE =
  "usage: npm run bench -- [--quick] [--scenarios idle,fanout,latency,publish,sharding,tasks,replay] [--profile] [--node-env K=V,...]\n" +
  "  --node-env every Switchyard node of the run gets these settings (e.g. WS_COMPRESSION=true); the bare peer does not\n" +
  "  --profile  CPU-profile the server under test during fan-out, latency, publish, tasks and replay seeding\n" +
  "             (V8 profiler through the inspector); .cpuprofile files go to bench/results/tmp/profiles-<run>/\n";

export const SIZES = {
  quick: {
    loadClients: 2,
    connectConcurrency: 100,
    idleSockets: [1000],
    fanoutOneRoom: 2000,
    fanoutRooms: 100,
    fanoutPerRoom: 10,
    fanoutMs: 3000,
    publishConcurrency: 32,
    loopBatch: 50,
    latencyRooms: 100,
    latencyPerRoom: 2,
    latencyRates: [100],
    latencyMs: 4000,
    tasksConcurrency: [1, 16, 64],
    tasksWarmupMs: 1000,
    tasksMs: 3000,
    bareWorkerConcurrency: 32,
    publishRooms: 100,
    publishPerRoom: 10,
    publishBatch: 50,
    publishConcurrencyBatches: 8,
    publishMaxBacklog: 2500,
    publishCapacityMs: 3000,
    publishMs: 3000,
    publishLatencyRate: 1000,
    publishLatencyMs: 4000,
    replayEvents: 1000,
    replayClients: 10,
  },
  full: {
    loadClients: 4,
    connectConcurrency: 100,
    idleSockets: [1000, 5000, 10_000],
    fanoutOneRoom: 10_000,
    fanoutRooms: 1000,
    fanoutPerRoom: 10,
    fanoutMs: 10_000,
    publishConcurrency: 32,
    loopBatch: 50,
    latencyRooms: 1000,
    latencyPerRoom: 2,
    latencyRates: [100, 1000],
    latencyMs: 10_000,
    tasksConcurrency: [1, 16, 64],
    tasksWarmupMs: 2000,
    tasksMs: 15_000,
    bareWorkerConcurrency: 32,
    publishRooms: 100,
    publishPerRoom: 10,
    publishBatch: 50,
    publishConcurrencyBatches: 8,
    publishMaxBacklog: 2500,
    publishCapacityMs: 10_000,
    publishMs: 10_000,
    publishLatencyRate: 1000,
    publishLatencyMs: 10_000,
    replayEvents: 10_000,
    replayClients: 50,
  },
}[SIZE];
export type Sizes = typeof SIZES;
