import type { PrismaClient } from "../db/client.js";

export const DEFAULT_POOL_ID = "default";

/**
 * Tenants are implicit: they exist because a verified token names them. The first time this node sees a
 * tenant it makes sure the tenant row and its `default` pool exist (idempotent, safe across nodes).
 */
export class TenantDirectory {
  private readonly known = new Set<string>();

  constructor(private readonly prisma: PrismaClient) {}

  async ensure(tenantId: string): Promise<void> {
    if (this.known.has(tenantId)) return;
    await this.prisma.$executeRawUnsafe(`INSERT INTO "Tenant" ("id") VALUES ($1) ON CONFLICT ("id") DO NOTHING`, tenantId);
    await this.prisma.$executeRawUnsafe(
      `INSERT INTO "Pool" ("tenantId", "id", "name", "updatedAt") VALUES ($1, $2, $2, now())
       ON CONFLICT DO NOTHING`,
      tenantId,
      DEFAULT_POOL_ID,
    );
    this.known.add(tenantId);
  }
}
