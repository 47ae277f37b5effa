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

// Same default as scripts/db-setup.ts. Set in process.env (not just used locally) so that the
// schema's `url = env("DATABASE_URL")` resolves too.
process.env.DATABASE_URL ??= "postgresql://postgres@127.0.0.1:5432/switchyard";
const databaseUrl = process.env.DATABASE_URL;

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  adapter: async () =>
    new PrismaPg(new CatalogTypesPool({ connectionString: databaseUrl, idleTimeoutMillis: 1000 }), {
      // The CLI owns this pool: end it when the schema engine disposes the adapter.
      disposeExternalPool: true,
    }),
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
});
