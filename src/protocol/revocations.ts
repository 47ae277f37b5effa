import { z } from "zod";

/**
 * `POST /api/v1/tokens/revoke` (permission `admin`, the caller's own tenant): revoke one token by its `jti`, or
 * every token of a subject issued until now by its `sub`. Exactly one of the two.
 */
const claimValue = z.string().min(1).max(256);
export const RevokeRequestSchema = z.strictObject({ jti: claimValue.optional(), sub: claimValue.optional() }).superRefine((body, ctx) => {
  const given = (["jti", "sub"] as const).filter((field) => body[field] !== undefined);
  if (given.length === 1) return;
  const message = given.length === 0 ? "give jti or sub" : "give jti or sub, not both";
  for (const field of ["jti", "sub"]) ctx.addIssue({ code: "custom", path: [field], message });
});
export type RevokeRequest = z.infer<typeof RevokeRequestSchema>;

/** 202 `{ revoked }`: what was revoked, in which tenant, and when (ISO-8601). */
export type RevocationView = ({ jti: string } | { sub: string }) & { tenantId: string; at: string };
export interface RevokeResponse {
  revoked: RevocationView;
}
