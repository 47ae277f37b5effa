import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaClient } from "../generated/prisma/client.js";
import { pgSql, type Sql } from "./sql.js";

export type { PrismaClient };
export type { Prisma } from "../generated/prisma/client.js";

export interface Database {
  prisma: PrismaClient;
  /** Plain SQL on the same connections (hot paths). */
  sql: Sql;
  pool: pg.Pool;
  close(): Promise<void>;
}

/**
 * One node-postgres pool shared by Prisma (through its driver adapter: no native engine is needed) and the
 * plain SQL of the hot paths, so both use the same connections.
 */
export function createDatabase(databaseUrl: string, onPoolError: (error: Error) => void = () => undefined): Database {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
  // An idle connection that PostgreSQL drops (restart, admin shutdown) errors here: log it, the pool replaces it.
  pool.on("error", onPoolError);
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  return {
    prisma,
    sql: pgSql(pool),
    pool,
    async close() {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

/** A Prisma client with its own connections (scripts and tests). */
export function createPrisma(databaseUrl: string): PrismaClient {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl }) });
}
