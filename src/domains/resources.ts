import type { PrismaClient } from "../db/client.js";
import type { TenantDirectory } from "./tenants.js";

export type ResourceKind = "pool" | "task" | "workflow";

/** Answers "does this tenant own this resource?" for room subscriptions; another tenant's id is simply absent. */
export class ResourceDirectory {
  /** Pools, tasks and workflows are never deleted: once seen, a resource needs no second lookup. */
  private readonly known = new Set<string>();

  constructor(
    private readonly prisma: PrismaClient,
    private readonly tenants: TenantDirectory,
  ) {}

  async exists(tenantId: string, kind: ResourceKind, id: string): Promise<boolean> {
    const key = `${tenantId}|${kind}|${id}`;
    if (this.known.has(key)) return true;
    const found = await this.lookup(tenantId, kind, id);
    if (found) {
      if (this.known.size >= 100_000) this.known.clear();
      this.known.add(key);
    }
    return found;
  }

  private async lookup(tenantId: string, kind: ResourceKind, id: string): Promise<boolean> {
    switch (kind) {
      case "pool": {
        await this.tenants.ensure(tenantId);
        const pool = await this.prisma.pool.findUnique({ where: { tenantId_id: { tenantId, id } }, select: { id: true } });
        return pool !== null;
      }
      case "task": {
        const task = await this.prisma.task.findFirst({ where: { id, tenantId }, select: { id: true } });
        return task !== null;
      }
      case "workflow": {
        const workflow = await this.prisma.workflow.findFirst({ where: { id, tenantId }, select: { id: true } });
        return workflow !== null;
      }
    }
  }
}
