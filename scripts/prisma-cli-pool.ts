// A pg.Pool for the Prisma CLI's JS (Wasm) schema engine only (used by prisma.config.ts).
//
// Why: upstream bug prisma/orm#27403. The JS schema engine introspects PostgreSQL's catalogs, whose
// columns use the internal types `name` (OID 19) and `"char"` (OID 18). @prisma/adapter-pg does not
// map those OIDs, so `prisma migrate deploy` / `migrate diff` fail with
// "Column type 'name' could not be deserialized" (and `'char'` for `db pull`). pg already returns
// both as JS strings, so reporting the columns as `text` (OID 25) is all the adapter needs.
//
// The application's runtime client does NOT need this: it uses a plain `new PrismaPg({ connectionString })`.
// Remove this file (and its use in prisma.config.ts) once the upstream fix is in the installed Prisma.

import pg from "pg";
import type { FieldDef, PoolClient, PoolConfig } from "pg";

const PG_CHAR_OID = 18;
const PG_NAME_OID = 19;
const PG_TEXT_OID = 25;

type ConnectCallback = (err: Error | undefined, client: PoolClient | undefined, done: PoolClient["release"]) => void;

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === "object" && value !== null && typeof (value as { then?: unknown }).then === "function";
}

/** Rewrites `name`/`"char"` result columns to `text` in a query result (or an array of results). */
function rewriteCatalogFieldTypes<T>(result: T): T {
  const results: unknown[] = Array.isArray(result) ? result : [result];
  for (const r of results) {
    const fields = (r as { fields?: unknown } | null | undefined)?.fields;
    if (!Array.isArray(fields)) continue;
    for (const field of fields as FieldDef[]) {
      if (field.dataTypeID === PG_NAME_OID || field.dataTypeID === PG_CHAR_OID) {
        field.dataTypeID = PG_TEXT_OID;
      }
    }
  }
  return result;
}

/** Any of query()'s overloads, called with whatever arguments the caller gave. */
type AnyQuery = (this: unknown, ...args: unknown[]) => unknown;

/** What query() returned: a promise resolves to a result with rewritten field types; anything else passes through. */
function rewriteWhenPromise(out: unknown): unknown {
  return isThenable(out) ? out.then(rewriteCatalogFieldTypes) : out;
}

const patchedClients = new WeakSet<PoolClient>();

/**
 * pg.Pool whose promise-returning `query()` reports `name`/`"char"` columns as `text`.
 * Clients checked out with `await pool.connect()` (the adapter does this for transactions) are
 * patched the same way. Callback-style calls are passed through untouched.
 */
export class CatalogTypesPool extends pg.Pool {
  constructor(config?: PoolConfig) {
    super(config);
  }

  override connect(): Promise<PoolClient>;
  override connect(callback: ConnectCallback): void;
  override connect(callback?: ConnectCallback): Promise<PoolClient> | void {
    if (callback) {
      // pg-pool's own query() uses this form internally; our query() override covers it.
      super.connect(callback);
      return;
    }
    return super.connect().then((client) => {
      if (!patchedClients.has(client)) {
        const original = client.query.bind(client) as AnyQuery;
        client.query = function (...args: unknown[]): unknown {
          return rewriteWhenPromise(original(...args));
        } as PoolClient["query"];
        patchedClients.add(client);
      }
      return client;
    });
  }
}

// query() has overloads for promises, callbacks and Submittables, and one pass-through serves them all. As a class
// method it would have to return `any` to match every overload, so it is set here, typed as pg's own query() like the
// patched client's above, and calls pg.Pool's query() with the same `this`, as `super.query(...)` would.
CatalogTypesPool.prototype.query = function (this: CatalogTypesPool, ...args: unknown[]): unknown {
  return rewriteWhenPromise((pg.Pool.prototype.query as AnyQuery).apply(this, args));
} as pg.Pool["query"];
