import { Router } from "express";
import type { Revocation } from "../../auth/revocation-list.js";
import type { TokenRevocations } from "../../domains/token-revocations.js";
import type { RevocationView, RevokeResponse } from "../../protocol/revocations.js";
import { requirePermission } from "../authenticate.js";

function revocationView(revocation: Revocation): RevocationView {
  const target = revocation.kind === "jti" ? { jti: revocation.id } : { sub: revocation.id };
  return { ...target, tenantId: revocation.tenantId, at: new Date(revocation.at).toISOString() };
}

/** `POST /api/v1/tokens/revoke` `{ jti }` or `{ sub }`: 202 once stored; every node refuses the token(s) from then on. */
export function tokenRoutes(revocations: TokenRevocations): Router {
  const router = Router();
  router.post("/revoke", async (req, res) => {
    const principal = requirePermission(res, "admin");
    const revocation = await revocations.revoke(principal, req.body);
    res.status(202).json({ revoked: revocationView(revocation) } satisfies RevokeResponse);
  });
  return router;
}
