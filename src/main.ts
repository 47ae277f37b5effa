import { App } from "./app.js";
import { writeDevSecret } from "./auth/dev-secret.js";
import { ConfigError, loadConfig, type Config } from "./config.js";

function readConfig(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      for (const problem of error.problems) process.stderr.write(`config error: ${problem}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
}

const config = readConfig();
const app = new App(config);

if (config.jwt.generatedSecret && config.jwt.secret) {
  // The key itself never goes to the log: it is left in a file only this user can read.
  let where: string;
  try {
    where = writeDevSecret(config.jwt.secret);
  } catch (error) {
    where = `(not written: ${(error as Error).message})`;
  }
  app.logger.warn(
    { keyFile: where },
    "JWT_SECRET is not set: generated a throwaway key for this process only, in keyFile (owner-only). Tokens die " +
      "with it, and other nodes will not accept them. Mint one here with: npm run token -- --tenant acme --permissions admin",
  );
}

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  app.logger.info({ signal }, "signal received");
  const deadline = setTimeout(() => {
    app.logger.error("shutdown took too long, exiting");
    process.exit(1);
  }, config.shutdownTimeoutMs + 2000);
  deadline.unref();
  await app.stop();
  process.exit(0);
}
// A lost connection or a bug in one request must not take the node down with every other client on it.
process.on("unhandledRejection", (reason) => app.logger.error({ err: reason }, "unhandled rejection"));
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));

/**
 * "switchyard listening" alone reads as "all is well" even when Redis or PostgreSQL is down (the node starts anyway,
 * so that it serves once they are back instead of crash-looping): say at once what is not ready. DependencyStatus
 * says "… available again" when it is back.
 */
async function reportReadiness(): Promise<void> {
  const [redis, postgres] = await Promise.all([app.checks.redis(), app.checks.postgres()]);
  const down = [...(redis === "ok" ? [] : ["redis"]), ...(postgres === "ok" ? [] : ["postgresql"])];
  if (down.length === 0 || stopping) return;
  const them = down.length > 1 ? "them" : "it";
  app.logger.warn(
    { unavailable: down },
    `listening, but not ready: ${down.join(" and ")} unavailable; /ready answers 503, and requests that need ${them} get 503 UNAVAILABLE, until ${down.length > 1 ? "they answer" : "it answers"}`,
  );
}

try {
  await app.start();
} catch (error) {
  app.logger.fatal({ err: error }, "could not start");
  process.exit(1);
}
await reportReadiness();
