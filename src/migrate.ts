// `npm run migrate` (node dist/migrate.js): creates the database named by DATABASE_URL when missing and applies
// the pending migrations, then exits. Its own step, so that a container start never migrates: compose and
// Kubernetes run it once, as a job or an init container, before the nodes start.
import { errorMessage, setupDatabase } from "./db/setup.js";
import { DEFAULT_DATABASE_URL } from "./settings.js";
import { redactUrl } from "./observability/redact.js";

const url = process.env.DATABASE_URL || DEFAULT_DATABASE_URL;
try {
  const started = performance.now();
  const { created, applied } = await setupDatabase(url);
  const took = `${Math.round(performance.now() - started)} ms`;
  const what = applied.length === 0 ? "up to date, nothing to apply" : `applied ${applied.length} migration(s): ${applied.join(", ")}`;
  console.log(`migrate: ${redactUrl(url)}${created ? " created," : ""} ${what} (${took})`);
} catch (err) {
  console.error(`migrate: ${errorMessage(err)}`);
  process.exitCode = 1;
}
