/**
 * Skips the current test (or, in a `before` hook, its suite), printing the reason first: mocha lists a skipped test
 * as pending without one, so a CI log would not say what was missing.
 */
export function skipBecause(context: Mocha.Context, reason: string): never {
  process.stdout.write(`      skipped: ${reason}\n`);
  context.skip();
}
