import { createHmac } from "node:crypto";

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url");

/** Builds a JWT by hand, for attacks a JWT library refuses to produce (alg none, HS256 keyed with a public key). */
export function rawToken(header: Record<string, unknown>, payload: Record<string, unknown>, hmacKey?: string): string {
  const signingInput = `${b64(header)}.${b64(payload)}`;
  const signature = hmacKey ? createHmac("sha256", hmacKey).update(signingInput).digest("base64url") : "";
  return `${signingInput}.${signature}`;
}
