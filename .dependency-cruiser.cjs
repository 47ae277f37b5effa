// The shape of src/, checked by `npm run lint:layers` (dependency-cruiser). docs/architecture.md ("Layers") explains
// the same table in prose; change both together.

/**
 * The layers of src/, bottom first. A module may import its own layer (peers, without a cycle: see no-circular)
 * and any layer below it, never one above: so each layer can be read, tested and changed knowing only what is
 * under it, and a change high up never ripples down.
 */
const LAYERS = [
  {
    name: "protocol",
    path: "^src/protocol/",
    why: "the wire format shared with clients: it ships in the client package and runs in browsers, so it stands on nothing of the server",
  },
  {
    name: "foundation",
    path: "^src/(config|settings|errors|every)[.]ts$",
    why: "the validated configuration (with the settings the server and the worker share), the error vocabulary and the periodic-task helper every layer above uses; they know only the protocol",
  },
  {
    name: "observability",
    path: "^src/observability/",
    why: "logger, metrics and request context: every layer above logs and counts, so these instruments must not depend on what they measure (a metric's label values are declared here and used above)",
  },
  {
    name: "dependencies",
    path: "^src/dependencies/",
    why: "deadlines and the up/down state of Redis and PostgreSQL, which the Redis and database plumbing above report to",
  },
  {
    name: "stores",
    path: "^src/(jobs|db|auth|generated)/",
    why: "Redis and BullMQ (jobs), PostgreSQL (db, and the Prisma client generated into src/generated), and token verification (auth): the I/O the domains are built on, knowing nothing of events or domains",
  },
  {
    name: "events",
    path: "^src/events/",
    why: "the event log, the outbox and publishing: the domains commit their events through it, so it must not know any domain",
  },
  {
    name: "domains",
    path: "^src/(domains|limits)/",
    why: "the rules of tasks, pools, workflows, schedules and tenants, and the per-tenant limits: what the edges call, never calling them back",
  },
  {
    name: "edges",
    path: "^src/(realtime|http|worker)/",
    why: "Socket.IO, Express and the pool workers: the ways in and out of a process, built on the domains",
  },
  {
    name: "root",
    path: "^src/((app|main|migrate)[.]ts$|wiring/)",
    why: "the composition root (app.ts, with one wiring function per domain in wiring/): the only place that knows every part and wires them together",
  },
];

const layerRules = LAYERS.slice(0, -1).map((layer, index) => {
  const above = LAYERS.slice(index + 1);
  return {
    name: `layer-${layer.name}`,
    comment: `${layer.name} is ${layer.why}. It may not import a higher layer (${above.map((l) => l.name).join(", ")}).`,
    severity: "error",
    from: { path: layer.path },
    to: { path: above.map((l) => l.path) },
  };
});

const CLIENT = "^src/client/";

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment:
        "Modules that import each other (type-only imports included) can only be understood, tested and changed together; a cycle also hides which one owns what they share. Move the shared part to the lowest module that needs it.",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    {
      name: "unplaced-module",
      comment:
        "Every module of src/ belongs to a layer (or is the client package), so a new folder gets a place in LAYERS (and in docs/architecture.md) before it gets imports.",
      severity: "error",
      from: { path: "^src/", pathNot: [...LAYERS.map((l) => l.path), CLIENT] },
      to: {},
    },
    {
      name: "to-unplaced-module",
      comment: "The other side of unplaced-module: an import of a module of src/ that no layer holds.",
      severity: "error",
      from: {},
      to: { path: "^src/", pathNot: [...LAYERS.map((l) => l.path), CLIENT] },
    },
    {
      name: "client-imports-only-protocol",
      comment:
        "src/client is the published client package (packages/client builds it with the protocol modules it imports, nothing else): an import of any other server module would not be in the package.",
      severity: "error",
      from: { path: CLIENT },
      to: { path: "^src/", pathNot: ["^src/protocol/", CLIENT] },
    },
    {
      name: "not-to-client",
      comment: "The client package is for backends and browsers talking to the server; the server itself speaks the protocol directly.",
      severity: "error",
      from: { pathNot: CLIENT },
      to: { path: CLIENT },
    },
    {
      name: "browser-safe-protocol-and-client",
      comment: "The protocol and the client run in browsers too: no Node built-in module.",
      severity: "error",
      from: { path: ["^src/protocol/", CLIENT] },
      to: { dependencyTypes: ["core"] },
    },
    {
      name: "prisma-client-only-through-db",
      comment:
        "src/db is the only door to the generated Prisma client (src/generated): the rest take its types from src/db/client.ts, so the driver setup stays in one place.",
      severity: "error",
      from: { path: "^src/", pathNot: ["^src/db/", "^src/generated/"] },
      to: { path: "^src/generated/" },
    },
    {
      name: "no-orphans",
      comment: "A module nothing imports and that imports nothing is dead code or a forgotten entry point.",
      severity: "error",
      from: { orphan: true, pathNot: ["[.]d[.]ts$", "^src/generated/"] },
      to: {},
    },
    {
      name: "not-to-unresolvable",
      comment: "An import that resolves to nothing fails at run time; it is usually a typo or a moved module.",
      severity: "error",
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    // Type-only imports count: a cycle or an upward arrow through `import type` couples modules just the same.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    // The generated Prisma client is checked only as a target (prisma-client-only-through-db), not cruised.
    doNotFollow: { path: ["node_modules", "^src/generated/"] },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
      mainFields: ["module", "main", "types", "typings"],
    },
    skipAnalysisNotInRules: true,
  },
};
