import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import type { DependencyStatus } from "../dependencies/status.js";
import { PrismaClient, type Prisma } from "../generated/prisma/client.js";
import { pgSql, type Sql } from "./sql.js";

export type { PrismaClient };
export type { Prisma };

/** A database handle inside a transaction (or the client itself, for single statements). */
export type Db = Prisma.TransactionClient;

/**
 * A value stored in a JSON column. Prisma's input type wants an index signature that interfaces (such as a
 * schedule's task template) do not declare; their fields are JSON by construction, checked where they were parsed.
 */
export function jsonColumn(value: object): Prisma.InputJsonObject {
  // The rule asks the checker's assignability API, which accepts `object` here where the compiler itself does not.
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion
  return value as Prisma.InputJsonObject;
}

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
 *
 * Every statement has a deadline: waiting for a connection (a free one from the pool, or a new one) and waiting
 * for a statement's answer each give up after `deadlineMs`, so a caller gets "postgresql unavailable" instead of
 * hanging on a server that is down, unreachable or frozen. The pool drops a connection whose statement timed out.
 */
export function createDatabase(databaseUrl: string, options: { deadlineMs: number; status: DependencyStatus }): Database {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: 10,
    connectionTimeoutMillis: options.deadlineMs,
    query_timeout: options.deadlineMs,
  });
  // Also the pool's `error` listener: an idle connection that PostgreSQL drops (restart, admin shutdown) errors
  // there, and the pool replaces it.
  options.status.watchPool(pool);
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
