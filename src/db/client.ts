import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "../generated/prisma/client.js";

export type { PrismaClient };
export type { Prisma } from "../generated/prisma/client.js";

/** The runtime client talks to PostgreSQL through node-postgres (no native Prisma engine is needed). */
export function createPrisma(databaseUrl: string): PrismaClient {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl }) });
}
