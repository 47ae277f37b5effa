import { CronExpressionParser } from "cron-parser";

/*
 * When a schedule is due. Cron expressions are read by cron-parser, the same package (and version) BullMQ's job
 * schedulers use to compute their next run, so what is validated and announced here is what fires.
 */

/** The shortest interval: a schedule faster than once a second is a stream, not a schedule. */
export const MIN_EVERY_MS = 1000;
/** The longest interval the `every` column (a 32-bit integer) holds, about 24.8 days; longer periods are cron's. */
export const MAX_EVERY_MS = 2_147_483_647;

/** A time zone as clients may name it, before Intl decides whether it exists. */
const TIME_ZONE_SHAPE = /^[A-Za-z0-9_+\-/]{1,64}$/;

/** The canonical name of an IANA time zone (`europe/berlin` → `Europe/Berlin`), or undefined when there is none. */
export function canonicalTimeZone(name: string): string | undefined {
  if (!TIME_ZONE_SHAPE.test(name)) return undefined;
  try {
    return new Intl.DateTimeFormat("en-US", { timeZone: name }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

/**
 * Why a cron expression cannot be used, or undefined when it can: it must have exactly five fields (minute, hour,
 * day of month, month, day of week; no seconds, no `@daily`), parse, and have a next time in `timezone`.
 */
export function cronProblem(expression: string, timezone: string | null): string | undefined {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5 || expression.length > 200)
    return "must be a cron expression of 5 fields: minute hour day-of-month month day-of-week";
  try {
    CronExpressionParser.parse(expression, { currentDate: new Date(), ...(timezone ? { tz: timezone } : {}) }).next();
    return undefined;
  } catch (error) {
    return `is not a valid cron expression: ${error instanceof Error ? error.message.slice(0, 120) : "unreadable"}`;
  }
}

/** How a schedule repeats: exactly one of `every` and `cron` is set; `timezone` only with `cron` (UTC when null). */
export interface Timing {
  every: number | null;
  cron: string | null;
  timezone: string | null;
}

/** The first due time of a timing that starts (or restarts) at `now`: one interval on, or the cron's next time after now. */
export function firstRunAt(timing: Timing, now = Date.now()): number {
  if (timing.every !== null) return now + timing.every;
  return CronExpressionParser.parse(timing.cron!, { currentDate: new Date(now), ...(timing.timezone ? { tz: timing.timezone } : {}) })
    .next()
    .getTime();
}
