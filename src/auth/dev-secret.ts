import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

/**
 * Where a node without JWT_SECRET (development only) leaves the throwaway key it generated, relative to the
 * directory it runs in, so that `npm run token` there can sign with it. The key used to be printed in the log,
 * and logs are shipped and kept where keys must not be; a file readable only by its owner is not.
 */
export const DEV_SECRET_FILE = path.join(".switchyard", "dev-jwt-secret");

/** Writes the key (owner read/write only) and returns the file's path. */
export function writeDevSecret(secret: string, cwd = process.cwd()): string {
  const file = path.resolve(cwd, DEV_SECRET_FILE);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  // The mode of writeFileSync applies to a new file only: an existing one (an earlier run's) is narrowed too.
  chmodSync(file, 0o600);
  return file;
}

/** The key a development node left here, if any. */
export function readDevSecret(cwd = process.cwd()): string | undefined {
  try {
    return readFileSync(path.resolve(cwd, DEV_SECRET_FILE), "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}
