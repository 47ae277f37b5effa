import { randomBytes } from "node:crypto";

/** Settings shared by every server process one test run starts: a per-run database and Redis prefix. */
// Kept in process.env because mocha may load this module twice (once for --require hooks, once for specs).
process.env.SWITCHYARD_TEST_RUN ??= `${process.pid.toString(36)}${randomBytes(3).toString("hex")}`;
const runId = process.env.SWITCHYARD_TEST_RUN;

export const TEST_JWT_SECRET = `test-secret-${runId}-0123456789abcdef`;
export const TEST_REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
export const TEST_REDIS_PREFIX = `sytest-${runId}`;
const baseDatabaseUrl = new URL(process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/switchyard");
baseDatabaseUrl.pathname = `/switchyard_test_${runId}`;
export const TEST_DATABASE_URL = baseDatabaseUrl.toString();

/** A fresh tenant id per test: tests share the database but never each other's rows or rooms. */
export function freshTenant(label = "t"): string {
  return `${label}-${randomBytes(6).toString("hex")}`;
}
