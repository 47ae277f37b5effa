// Runs src/db/setup.ts' setupDatabase for the bench's own database in a child process, so that the
// Prisma CLI's output goes to the bench log instead of the bench's stdout (which carries only the table).
//
//   tsx scripts/bench/db.ts <DATABASE_URL> [--generate]

import { setupDatabase } from "../../src/db/setup.js";

const url = process.argv[2];
if (!url) {
  process.stderr.write("usage: tsx scripts/bench/db.ts <DATABASE_URL> [--generate]\n");
  process.exit(2);
}
try {
  await setupDatabase(url, { generate: process.argv.includes("--generate") });
} catch (error) {
  process.stderr.write(`db setup failed: ${(error as Error).message}\n`);
  process.exit(1);
}
