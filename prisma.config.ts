// Prisma CLI configuration (Prisma 6.19).
//
// Prisma's native engines cannot be downloaded here, so the CLI uses the JS (Wasm) schema engine
// through a driver adapter (`engine: "js"`). The adapter gets a pg.Pool subclass that works around
// prisma/orm#27403 (see scripts/prisma-cli-pool.ts); the application's runtime client does not need it.
//
// Note: with a prisma.config.ts present, Prisma does not load `.env` by itself.

import { defineConfig } from "prisma/config";
import { PrismaPg } from "@prisma/adapter-pg";
import { CatalogTypesPool } from "./scripts/prisma-cli-pool.js";

// Same default as src/db/setup.ts. The schema's datasource has no URL of its own (see prisma/schema.prisma):
// this adapter is the CLI's only way to the database.
const databaseUrl = process.env.DATABASE_URL || "postgresql://postgres@127.0.0.1:5432/switchyard";

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  adapter: async () =>
    new PrismaPg(
      new CatalogTypesPool({
        connectionString: databaseUrl,
        // `migrate deploy` takes its advisory lock (pg_advisory_lock) on a pooled connection and never
        // unlocks it: the lock lasts until that connection closes. The schema engine does not dispose the
        // adapter, so with pg's default 10 s idle timeout a second, concurrent `migrate deploy` (two
        // replicas starting, two setups) waits out its own 10 s lock timeout and fails with P1002.
        // Closing idle connections after 1 s releases the lock right after the work is done.
        idleTimeoutMillis: 1_000,
      }),
    ),
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
});
