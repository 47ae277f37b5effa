import { createPublicKey, createSecretKey, type KeyObject } from "node:crypto";
import jwt from "jsonwebtoken";
import { z } from "zod";
import type { Config } from "../config.js";
import { AuthError } from "../errors.js";
import { isPermission, TENANT_ID_PATTERN } from "../protocol/permissions.js";
import { ID_PATTERN } from "../protocol/rooms.js";
import type { Principal } from "./principal.js";

const ClaimsSchema = z.object({
  sub: z.string().min(1).max(256),
  tenant_id: z.string().regex(TENANT_ID_PATTERN),
  exp: z.number().int(),
  iat: z.number().optional(),
  jti: z.string().min(1).max(256).optional(),
  permissions: z.array(z.string().max(64)).max(64).default([]),
  pool_id: z.string().regex(ID_PATTERN).optional(),
});

export type TokenVerifier = (token: string | undefined) => Principal;

/** Where the verifier learns which tokens were revoked (a synchronous lookup: see RevocationList). */
export interface RevocationCheck {
  isRevoked(principal: Principal): boolean;
}

/**
 * Builds the verifier for the configured keys. The algorithm is chosen by which key is configured,
 * never by the token alone: an HS256 token is checked only with JWT_SECRET and an RS256 token only with
 * JWT_PUBLIC_KEY, which rules out `alg: none` and RS/HS key confusion.
 */
export function createTokenVerifier(jwtConfig: Config["jwt"], revocations?: RevocationCheck): TokenVerifier {
  // Key objects built once: given a string, jsonwebtoken first tries to parse it as a public key on every
  // verify (and throws inside), which cost ~350 µs per token against ~7 µs with a prebuilt key.
  const keys: Partial<Record<"HS256" | "RS256", KeyObject>> = {};
  if (jwtConfig.secret) keys.HS256 = createSecretKey(Buffer.from(jwtConfig.secret));
  if (jwtConfig.publicKey) keys.RS256 = createPublicKey(jwtConfig.publicKey);

  // Verified tokens, by their exact text: a backend or dashboard sends the same token with every request and
  // handshake, and decoding, checking the signature and validating the claims again cost about a twentieth of a
  // node's CPU under a REST load. Only what does not change is cached: expiry and revocation are checked on
  // every use. Bounded; the oldest entry goes first.
  const verified = new Map<string, Principal>();
  const verify = (token: string): Principal => {
    const known = verified.get(token);
    if (known) {
      if (Date.now() / 1000 > known.expiresAt + jwtConfig.clockToleranceS) {
        verified.delete(token);
        throw new AuthError("TOKEN_EXPIRED", "token expired");
      }
      return known;
    }
    const principal = verifyFully(token);
    if (verified.size >= VERIFIED_TOKENS_KEPT) verified.delete(verified.keys().next().value!);
    verified.set(token, principal);
    return principal;
  };

  const verifyFully = (token: string): Principal => {
    const decoded = jwt.decode(token, { complete: true });
    if (!decoded || typeof decoded.payload === "string") throw new AuthError("TOKEN_INVALID", "token is malformed");
    const alg = decoded.header.alg;
    const key = alg === "HS256" || alg === "RS256" ? keys[alg] : undefined;
    if (!key) throw new AuthError("TOKEN_INVALID", `token algorithm ${alg} is not accepted`);
    let payload: jwt.JwtPayload | string;
    try {
      payload = jwt.verify(token, key, {
        algorithms: [alg as jwt.Algorithm],
        issuer: jwtConfig.issuer,
        audience: jwtConfig.audience,
        // Issuers' clocks and ours drift: exp and nbf get this leeway (iat below gets the same).
        clockTolerance: jwtConfig.clockToleranceS,
      });
    } catch (error) {
      if (error instanceof jwt.TokenExpiredError) throw new AuthError("TOKEN_EXPIRED", "token expired");
      if (error instanceof jwt.JsonWebTokenError && /jwt (issuer|audience) invalid/.test(error.message)) {
        throw new AuthError("CLAIMS_INVALID", error.message);
      }
      throw new AuthError("TOKEN_INVALID", error instanceof Error ? error.message : "token rejected");
    }
    const claims = ClaimsSchema.safeParse(payload);
    if (!claims.success) {
      const fields = [...new Set(claims.error.issues.map((i) => i.path.join(".") || "payload"))].join(", ");
      throw new AuthError("CLAIMS_INVALID", `invalid or missing claims: ${fields}`);
    }
    const c = claims.data;
    if (c.permissions.includes("pools:work") && !c.pool_id) {
      throw new AuthError("CLAIMS_INVALID", "a pools:work token needs a pool_id claim");
    }
    checkLifetime(c, jwtConfig);
    const principal: Principal = {
      tenantId: c.tenant_id,
      subject: c.sub,
      // Unknown permissions are ignored rather than rejected, so newer token issuers keep working.
      permissions: new Set(c.permissions.filter(isPermission)),
      poolId: c.pool_id,
      expiresAt: c.exp,
      issuedAt: c.iat,
      tokenId: c.jti,
    };
    return principal;
  };

  return (token) => {
    if (!token) throw new AuthError("TOKEN_MISSING", "no token given");
    const principal = verify(token);
    if (revocations?.isRevoked(principal)) throw new AuthError("TOKEN_REVOKED", "token revoked");
    return principal;
  };
}

/** Verified tokens a node remembers (see createTokenVerifier). */
const VERIFIED_TOKENS_KEPT = 10_000;

/**
 * Refuses an `iat` in the future and a lifetime over JWT_MAX_LIFETIME_S. Without a bound, a leaked token minted
 * with `exp` centuries ahead would stay valid forever, and revocations would have to be kept as long. A token
 * without `iat` is measured from now: it can never be accepted for longer than the maximum from any moment.
 */
function checkLifetime(claims: { iat?: number; exp: number }, jwtConfig: Config["jwt"]): void {
  const now = Math.floor(Date.now() / 1000);
  if (claims.iat !== undefined && claims.iat > now + jwtConfig.clockToleranceS) {
    throw new AuthError("CLAIMS_INVALID", "iat is in the future");
  }
  const lifetime = claims.exp - (claims.iat ?? now);
  if (lifetime > jwtConfig.maxLifetimeS) {
    const from = claims.iat === undefined ? "exp - now" : "exp - iat";
    throw new AuthError(
      "CLAIMS_INVALID",
      `token lifetime (${from}) of ${lifetime} s is longer than the accepted maximum of ${jwtConfig.maxLifetimeS} s`,
    );
  }
}

/** Extracts the token from `Authorization: Bearer <jwt>`. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}
