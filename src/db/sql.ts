import pg from "pg";
import type { Db } from "../events/publisher.js";

/**
 * A plain parameterised SQL query. The hot paths (task state changes, event numbering, replay reads) use
 * node-postgres directly: through Prisma's raw-query layer every statement also paid for its query compiler
 * and result mapping, about a sixth of a node's CPU under a task load (see docs/performance.md). Prisma keeps
 * the schema, the migrations and the cold CRUD; inside a Prisma transaction the same SQL runs on it.
 */
export interface Sql {
  /** `T` is the array of rows, as with Prisma's `$queryRawUnsafe<T>`. */
  query<T extends unknown[]>(text: string, values?: readonly unknown[]): Promise<T>;
}

// "timestamp without time zone" columns hold UTC (Prisma writes UTC): read them as UTC whatever the process's TZ.
const TIMESTAMP_OID = 1114;
const types = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === TIMESTAMP_OID ? (value: string) => new Date(`${value.replace(" ", "T")}Z`) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

export function pgSql(pool: pg.Pool): Sql {
  return {
    async query<T extends unknown[]>(text: string, values: readonly unknown[] = []): Promise<T> {
      return (await pool.query({ text, values: [...values], types })).rows as T;
    },
  };
}

/** The same interface over a Prisma transaction (or client), for SQL that must join a Prisma transaction. */
export function prismaSql(db: Db): Sql {
  return { query: <T extends unknown[]>(text: string, values: readonly unknown[] = []) => db.$queryRawUnsafe<T>(text, ...values) };
}
