import type { Principal } from "./principal.js";

/** One token (`jti`) or every token of a subject (`sub`) issued up to `at`, within one tenant. */
export interface Revocation {
  kind: "jti" | "sub";
  tenantId: string;
  /** The revoked `jti` or `sub`. */
  id: string;
  /** When it was revoked, in milliseconds since the epoch. */
  at: number;
}

/**
 * The name a revocation has in Redis and in this list. Tenant ids cannot contain ':' (TENANT_ID_PATTERN), so the
 * first two separators are unambiguous whatever the id holds.
 */
export function revocationMember(revocation: Pick<Revocation, "kind" | "tenantId" | "id">): string {
  return `${revocation.kind}:${revocation.tenantId}:${revocation.id}`;
}

export function parseRevocationMember(member: string, at: number): Revocation | undefined {
  const match = /^(jti|sub):([^:]+):([\s\S]+)$/.exec(member);
  if (!match || !Number.isFinite(at)) return undefined;
  return { kind: match[1] as Revocation["kind"], tenantId: match[2]!, id: match[3]!, at };
}

/**
 * Whether a token issued at `issuedAt` (seconds) predates a subject revocation made at `revokedAtMs`. `iat` has
 * whole seconds, so a token issued in the revocation's own second counts as before it: it may have been, and
 * letting it through would let a token issued just before the revocation survive it. A token without `iat`
 * cannot prove it is newer.
 */
function issuedBefore(issuedAt: number | undefined, revokedAtMs: number): boolean {
  return issuedAt === undefined || Math.floor(issuedAt) <= Math.floor(revokedAtMs / 1000);
}

/** Whether the revocation refuses the token behind `principal`. */
export function revokes(revocation: Revocation, principal: Principal): boolean {
  if (revocation.tenantId !== principal.tenantId) return false;
  if (revocation.kind === "jti") return principal.tokenId === revocation.id;
  return principal.subject === revocation.id && issuedBefore(principal.issuedAt, revocation.at);
}

/**
 * This process's copy of the cluster's revocations, so that verifying a token stays a synchronous lookup:
 * at most two map reads per token, however many revocations there are.
 */
export class RevocationList {
  /** revocationMember() → when it was revoked (ms). */
  private readonly entries = new Map<string, number>();
  /** Revocations held per tenant: what MAX_REVOCATIONS_PER_TENANT is checked against. */
  private readonly perTenant = new Map<string, number>();

  /** Records a revocation; false when the list already knew it (with the same or a later time), so nothing new is refused. */
  add(revocation: Revocation): boolean {
    const member = revocationMember(revocation);
    const known = this.entries.get(member);
    if (known !== undefined && known >= revocation.at) return false;
    this.entries.set(member, revocation.at);
    if (known === undefined) this.perTenant.set(revocation.tenantId, this.countFor(revocation.tenantId) + 1);
    return true;
  }

  /** Whether this exact revocation (kind, tenant, id) is held, whatever its time. */
  has(revocation: Pick<Revocation, "kind" | "tenantId" | "id">): boolean {
    return this.entries.has(revocationMember(revocation));
  }

  countFor(tenantId: string): number {
    return this.perTenant.get(tenantId) ?? 0;
  }

  isRevoked(principal: Principal): boolean {
    const { tenantId } = principal;
    if (principal.tokenId !== undefined && this.entries.has(revocationMember({ kind: "jti", tenantId, id: principal.tokenId })))
      return true;
    const subjectRevokedAt = this.entries.get(revocationMember({ kind: "sub", tenantId, id: principal.subject }));
    return subjectRevokedAt !== undefined && issuedBefore(principal.issuedAt, subjectRevokedAt);
  }

  /** Forgets revocations made before `cutoffMs`: every token they could refuse has expired since. */
  forgetBefore(cutoffMs: number): void {
    for (const [member, at] of this.entries) {
      if (at >= cutoffMs) continue;
      this.entries.delete(member);
      const tenantId = parseRevocationMember(member, at)?.tenantId;
      if (tenantId === undefined) continue;
      const left = this.countFor(tenantId) - 1;
      if (left > 0) this.perTenant.set(tenantId, left);
      else this.perTenant.delete(tenantId);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
