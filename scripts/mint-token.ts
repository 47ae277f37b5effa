/**
 * Mints a development token.
 *   npm run token -- --tenant acme --permissions tasks:read,pools:read [--sub alice] [--ttl 3600] [--pool default] [--jti id]
 * Signs with JWT_SECRET (HS256), or with the PEM in JWT_PRIVATE_KEY (RS256) when that is set. Every token gets a
 * `jti` (random unless given), so that it can be revoked on its own (POST /api/v1/tokens/revoke).
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import jwt from "jsonwebtoken";
import { isPermission, TENANT_ID_PATTERN } from "../src/protocol/permissions.js";
import { DEV_SECRET_FILE, readDevSecret } from "../src/auth/dev-secret.js";
import { DEFAULT_JWT_MAX_LIFETIME_S, JWT_MAX_LIFETIME_S } from "../src/settings.js";

/** Seconds a token lives without --ttl: an hour, enough to try things out; workers and consoles ask for longer. */
const DEFAULT_TTL_S = 3600;

const usage =
  "usage: npm run token -- --tenant <id> [--permissions p1,p2] [--sub <id>] [--ttl <seconds>] [--pool <poolId>] [--jti <id>]\n" +
  "  --permissions  default admin\n" +
  `  --ttl          lifetime in seconds, default ${DEFAULT_TTL_S} (1 h); at most JWT_MAX_LIFETIME_S (default ${DEFAULT_JWT_MAX_LIFETIME_S} = 30 days),\n` +
  "                 since the server refuses longer-lived tokens\n" +
  "  --pool         the pool of a pools:work (worker) token\n" +
  "signs with JWT_SECRET, or JWT_PRIVATE_KEY for RS256 (without either: the key a development node left in .switchyard/);\n" +
  "JWT_ISSUER/JWT_AUDIENCE are added when set. The token alone goes to stdout: TOKEN=$(npm run -s token -- --tenant acme)";

function die(message: string): never {
  process.stderr.write(`${message}\n${usage}\n`);
  process.exit(2);
}

const { values } = parseArgs({
  options: {
    tenant: { type: "string" },
    permissions: { type: "string", default: "admin" },
    sub: { type: "string" },
    ttl: { type: "string", default: String(DEFAULT_TTL_S) },
    pool: { type: "string" },
    jti: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
const tenant = values.tenant ?? die("--tenant is required");
if (!TENANT_ID_PATTERN.test(tenant)) die("--tenant must match ^[A-Za-z0-9_-]{1,128}$");
const permissions = values.permissions
  .split(",")
  .map((p) => p.trim())
  .filter(Boolean);
const unknown = permissions.filter((p) => !isPermission(p));
if (unknown.length > 0) die(`unknown permission(s): ${unknown.join(", ")}`);
const ttl = Number(values.ttl);
if (!Number.isInteger(ttl) || ttl <= 0) die("--ttl must be a positive number of seconds");
// Read as the server reads it: a token it would refuse with CLAIMS_INVALID is better not minted at all. A bad value
// is the server's to refuse.
const maxLifetime = JWT_MAX_LIFETIME_S.safeParse(process.env.JWT_MAX_LIFETIME_S || undefined);
if (maxLifetime.success && ttl > maxLifetime.data) die(`--ttl must be at most JWT_MAX_LIFETIME_S (${maxLifetime.data} s)`);
const jti = values.jti ?? randomUUID();
if (jti.length === 0 || jti.length > 256) die("--jti must be 1-256 characters");
if (permissions.includes("pools:work") && !values.pool) die("a pools:work token needs --pool <poolId>");

const privateKey = process.env.JWT_PRIVATE_KEY;
// Without a key in the environment: the throwaway key a development node started here without JWT_SECRET left.
const devSecret = !privateKey && !process.env.JWT_SECRET ? readDevSecret() : undefined;
if (devSecret)
  process.stderr.write(`signing with the development node's throwaway key (${DEV_SECRET_FILE}); set JWT_SECRET for a lasting one\n`);
const secret = process.env.JWT_SECRET ?? devSecret;
const key = privateKey ? (privateKey.includes("-----BEGIN") ? privateKey : readFileSync(privateKey, "utf8")) : secret;
if (!key) die("set JWT_SECRET (the server's key) or JWT_PRIVATE_KEY");

const claims: Record<string, unknown> = {
  tenant_id: tenant,
  permissions,
  ...(values.pool ? { pool_id: values.pool } : {}),
};
const token = jwt.sign(claims, key, {
  algorithm: privateKey ? "RS256" : "HS256",
  subject: values.sub ?? (values.pool ? `worker-${values.pool}` : "dev-user"),
  expiresIn: ttl,
  jwtid: jti,
  ...(process.env.JWT_ISSUER ? { issuer: process.env.JWT_ISSUER } : {}),
  ...(process.env.JWT_AUDIENCE ? { audience: process.env.JWT_AUDIENCE } : {}),
});
process.stdout.write(`${token}\n`);
