/*
 * Database setup: creates the database named by DATABASE_URL when it is missing and applies the migrations that
 * are pending (only those: `prisma migrate deploy` costs seconds even with nothing to do, so it runs only when a
 * migration in prisma/migrations is not yet recorded as applied). Used by `npm run migrate` (dist/migrate.js),
 * by `npm start`'s preparation, and by the test and bench harnesses (setupDatabase/dropDatabase).
 */
import { spawn } from "node:child_process";
import { readdirSync, existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { redactUrl } from "../observability/redact.js";

// src/db/setup.ts and dist/db/setup.js both sit two levels below the repository (or image) root.
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const migrationsDir = path.join(repoRoot, "prisma", "migrations");
const prismaBin = path.join(repoRoot, "node_modules", ".bin", process.platform === "win32" ? "prisma.cmd" : "prisma");

/** Databases that dropDatabase() refuses to touch. */
const PROTECTED_DATABASES = new Set(["postgres", "template0", "template1"]);

/** An expected failure whose message is one line fit for the console. */
export class DbSetupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DbSetupError";
  }
}

interface Target {
  /** Name of the database the URL points at. */
  database: string;
  /** Same server and credentials, `postgres` maintenance database. */
  maintenanceUrl: string;
}

function parseTarget(url: string): Target {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new DbSetupError("DATABASE_URL is not a valid URL");
  }
  if (u.protocol !== "postgresql:" && u.protocol !== "postgres:") {
    throw new DbSetupError(`DATABASE_URL must be a postgresql:// URL, got ${redactUrl(url)}`);
  }
  const database = decodeURIComponent(u.pathname.replace(/^\//, ""));
  if (!database) {
    throw new DbSetupError(`DATABASE_URL has no database name: ${redactUrl(url)}`);
  }
  const maintenance = new URL(u.toString());
  maintenance.pathname = "/postgres";
  // Prisma-only parameter; meaningless for the maintenance connection.
  maintenance.searchParams.delete("schema");
  return { database, maintenanceUrl: maintenance.toString() };
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

function errorMessage(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) {
    // e.g. ECONNREFUSED on both ::1 and 127.0.0.1 for "localhost"
    return err.errors.map((e) => errorMessage(e)).join("; ");
  }
  if (err instanceof Error) return err.message || errorCode(err) || err.name;
  return String(err);
}

/** Runs `fn` with a client connected to the maintenance database of `url`'s server. */
async function withMaintenanceClient<T>(url: string, fn: (client: pg.Client, target: Target) => Promise<T>): Promise<T> {
  const target = parseTarget(url);
  const client = new pg.Client({
    connectionString: target.maintenanceUrl,
    connectionTimeoutMillis: 10_000,
  });
  // An error on an idle client must not crash the process; the failing query reports it.
  client.on("error", () => {});
  try {
    await client.connect();
  } catch (err) {
    const code = errorCode(err);
    const reason = errorMessage(err);
    if (code === "28P01" || code === "28000") {
      throw new DbSetupError(`PostgreSQL rejected the login at ${redactUrl(url)}: ${reason}`, { cause: err });
    }
    throw new DbSetupError(`PostgreSQL is not reachable at ${redactUrl(url)} (${reason})`, { cause: err });
  }
  try {
    return await fn(client, target);
  } catch (err) {
    if (err instanceof DbSetupError) throw err;
    throw new DbSetupError(`PostgreSQL error at ${redactUrl(url)}: ${errorMessage(err)}`, { cause: err });
  } finally {
    await client.end().catch(() => {});
  }
}

async function databaseExists(client: pg.Client, database: string): Promise<boolean> {
  const res = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
  return (res.rowCount ?? 0) > 0;
}

/**
 * Creates the database named in `url` if it does not exist. Safe to run from several processes at once.
 * Returns true if this call created it.
 */
export async function createDatabaseIfMissing(url: string): Promise<boolean> {
  return withMaintenanceClient(url, async (client, { database }) => {
    if (await databaseExists(client, database)) return false;
    try {
      await client.query(`CREATE DATABASE ${quoteIdent(database)}`);
      return true;
    } catch (err) {
      const code = errorCode(err);
      // 42P04 duplicate_database: another process created it between our check and CREATE.
      if (code === "42P04") return false;
      // 23505 unique_violation on pg_database: the same race, caught at the catalog index instead.
      if (code === "23505" && (await databaseExists(client, database))) return false;
      throw err;
    }
  });
}

/** Terminates the database's connections and drops it (if it exists). For test cleanup. */
export async function dropDatabase(url: string): Promise<void> {
  await withMaintenanceClient(url, async (client, { database }) => {
    if (PROTECTED_DATABASES.has(database)) {
      throw new DbSetupError(`refusing to drop the ${database} database`);
    }
    await client.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [database]);
    const versionRes = await client.query<{ server_version_num: string }>("SHOW server_version_num");
    const version = Number(versionRes.rows[0]?.server_version_num ?? 0);
    // WITH (FORCE) (PostgreSQL 13+) also ends connections that arrive after the terminate above.
    const force = version >= 130000 ? " WITH (FORCE)" : "";
    await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(database)}${force}`);
  });
}

/** Runs the local Prisma CLI against `url`, inheriting stdio. */
function runPrisma(args: string[], url: string): Promise<void> {
  const what = `prisma ${args.join(" ")}`;
  return new Promise((resolve, reject) => {
    const child = spawn(prismaBin, args, {
      cwd: repoRoot,
      stdio: "inherit",
      env: {
        ...process.env,
        DATABASE_URL: url,
        // No update check against Prisma's servers (unreachable here; it would only add latency).
        CHECKPOINT_DISABLE: process.env.CHECKPOINT_DISABLE ?? "1",
      },
    });
    child.on("error", (err) => {
      reject(new DbSetupError(`could not start ${what} (${prismaBin}): ${errorMessage(err)}`, { cause: err }));
    });
    child.on("exit", (code, signal) => {
      if (code === 0) resolve();
      else {
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        reject(new DbSetupError(`${what} ${how} for ${redactUrl(url)}`));
      }
    });
  });
}

/** Migrations in prisma/migrations that the database has not applied yet, oldest first. */
export async function pendingMigrations(url: string): Promise<string[]> {
  const available = readdirSync(migrationsDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(path.join(migrationsDir, entry.name, "migration.sql")))
    .map((entry) => entry.name)
    .sort();
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  client.on("error", () => {});
  try {
    await client.connect();
  } catch (err) {
    throw new DbSetupError(`PostgreSQL is not reachable at ${redactUrl(url)} (${errorMessage(err)})`, { cause: err });
  }
  try {
    const applied = await client.query<{ migration_name: string }>(
      `SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`,
    );
    const done = new Set(applied.rows.map((row) => row.migration_name));
    return available.filter((name) => !done.has(name));
  } catch (err) {
    // 42P01 undefined_table: a database no migration has touched yet.
    if (errorCode(err) === "42P01") return available;
    throw new DbSetupError(`PostgreSQL error at ${redactUrl(url)}: ${errorMessage(err)}`, { cause: err });
  } finally {
    await client.end().catch(() => {});
  }
}

export interface SetupOptions {
  /** Run `prisma generate` first (default false). A checkout needs it once, and again after schema changes. */
  generate?: boolean;
}

export interface SetupResult {
  created: boolean;
  /** Migrations applied by this call (none when the database was up to date). */
  applied: string[];
}

/** Creates the database if missing, optionally generates the client, and applies the pending migrations. */
export async function setupDatabase(url: string, opts: SetupOptions = {}): Promise<SetupResult> {
  const created = await createDatabaseIfMissing(url);
  if (opts.generate ?? false) await runPrisma(["generate"], url);
  const pending = await pendingMigrations(url);
  if (pending.length > 0) await runPrisma(["migrate", "deploy"], url);
  return { created, applied: pending };
}

export { errorMessage };
