import { createHash } from "node:crypto";
import pg from "pg";

/**
 * A plain parameterised SQL query. The hot paths (task state changes, event numbering, replay reads) use
 * node-postgres directly: through Prisma's raw-query layer every statement also paid for its query compiler
 * and result mapping, about a sixth of a node's CPU under a task load (see docs/performance.md). Prisma keeps
 * the schema, the migrations and the cold CRUD; inside a Prisma transaction the same SQL runs on it.
 */
export interface Sql {
  /**
   * `T` is the array of rows, as with Prisma's `$queryRawUnsafe<T>`. A statement waits for its answer at most
   * DEPENDENCY_TIMEOUT_MS (the pool's deadline), or `timeoutMs` for background work that may legitimately take
   * longer (inside a Prisma transaction the transaction's own limits apply instead).
   */
  query<T extends unknown[]>(text: string, values?: readonly unknown[], options?: { timeoutMs?: number }): Promise<T>;
}

// "timestamp without time zone" columns hold UTC (Prisma writes UTC): read them as UTC whatever the process's TZ.
const TIMESTAMP_OID = 1114;
const types = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === TIMESTAMP_OID
      ? (value: string) => new Date(`${value.replace(" ", "T")}Z`)
      : (pg.types.getTypeParser(oid, format) as (value: string) => unknown)) as typeof pg.types.getTypeParser,
};

/**
 * Distinct statement texts prepared by name. The hot statements are a few dozen shapes (the SQL is built from the
 * kind of change, never from values), so this bound is never reached in practice; past it, statements simply run
 * unnamed, as before.
 */
const MAX_PREPARED = 256;

/**
 * Every statement runs as a named prepared statement (node-postgres prepares it once per connection): planning
 * these CTE statements took about a third of PostgreSQL's time per task when each was parsed and planned afresh
 * (pg_stat_statements, see docs/performance.md).
 */
export function pgSql(pool: pg.Pool): Sql {
  const names = new Map<string, string>();
  const nameOf = (text: string): string | undefined => {
    let name = names.get(text);
    if (name === undefined && names.size < MAX_PREPARED) {
      name = `sy_${createHash("sha1").update(text).digest("hex").slice(0, 16)}`;
      names.set(text, name);
    }
    return name;
  };
  return {
    async query<T extends unknown[]>(text: string, values: readonly unknown[] = [], options: { timeoutMs?: number } = {}): Promise<T> {
      const config = {
        name: nameOf(text),
        text,
        values: [...values],
        types,
        ...(options.timeoutMs ? { query_timeout: options.timeoutMs } : {}),
      };
      return (await pool.query(config)).rows as T;
    },
  };
}

/**
 * What prismaSql needs of a Prisma transaction or client. Structural, so this module stays free of Prisma's types:
 * the Prisma client (src/db/client.ts) builds on this module, not the other way round.
 */
export interface RawQueryRunner {
  $queryRawUnsafe<T = unknown>(query: string, ...values: unknown[]): Promise<T>;
}

/** The same interface over a Prisma transaction (or client), for SQL that must join a Prisma transaction. */
export function prismaSql(db: RawQueryRunner): Sql {
  return { query: <T extends unknown[]>(text: string, values: readonly unknown[] = []) => db.$queryRawUnsafe<T>(text, ...values) };
}
