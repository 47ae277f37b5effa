/**
 * zod schemas for what arrives over the wire: task reports from pool workers and events a backend publishes.
 * Kept apart from the protocol's types so that the client package, which ships those types, needs no zod.
 */
import { z } from "zod";
import { isStorableText } from "./json-safety.js";
import { NAMESPACES } from "./namespaces.js";
import { BUILTIN_EVENT_PREFIXES, isBuiltinEventType, MAX_PUBLISHED_TYPE_LENGTH, PUBLISHED_TYPE_PATTERN } from "./publish.js";
import { leaseLockToken, MAX_PROGRESS_DETAIL, MAX_TASK_ERROR_MESSAGE, MAX_TASK_ERROR_STACK, type TaskReport } from "./tasks.js";

/**
 * Text PostgreSQL can store (no NUL, no lone surrogate). Payloads from the wire have met these rules already
 * (json-safety.ts); the schema states them too, for reports that do not come over the wire.
 */
export const storableText = (max: number) =>
  z.string().max(max).refine(isStorableText, "must not contain NUL characters or lone UTF-16 surrogates");

const TaskErrorSchema = z.object({
  message: storableText(MAX_TASK_ERROR_MESSAGE),
  code: storableText(64),
  retryable: z.boolean(),
  stack: storableText(MAX_TASK_ERROR_STACK).optional(),
});
const taskId = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/);
const attempt = z.number().int().min(1).max(1000);
const lease = z
  .string()
  .min(3)
  .max(300)
  .refine((value) => leaseLockToken(value) !== null, "must be <lock token>#<attempt>");

/** Validates a report arriving over the wire from a standalone pool worker. */
export const TaskReportSchema: z.ZodType<TaskReport> = z.discriminatedUnion("kind", [
  z.object({ taskId, lease, kind: z.literal("assigned"), attempt, workerId: z.string().min(1).max(200) }),
  z.object({ taskId, lease, kind: z.literal("started"), attempt, workerId: z.string().min(1).max(200).optional() }),
  z.object({
    taskId,
    lease,
    kind: z.literal("progress"),
    progress: z.number().min(0).max(100),
    detail: storableText(MAX_PROGRESS_DETAIL).optional(),
  }),
  z.object({ taskId, lease, kind: z.literal("retrying"), attempt, error: TaskErrorSchema, nextAttemptInMs: z.number().int().min(0) }),
  z.object({ taskId, lease, kind: z.literal("completed"), result: z.json() }),
  z.object({ taskId, lease, kind: z.literal("failed"), attempt, error: TaskErrorSchema }),
  z.object({ taskId, lease, kind: z.literal("cancelled") }),
]);

/** The shape of one event; the room grammar, `data`'s size and the room's existence are checked after it. */
export const PublishEventSchema = z.strictObject({
  namespace: z.enum(NAMESPACES),
  room: z.string(),
  type: z
    .string()
    .max(MAX_PUBLISHED_TYPE_LENGTH)
    .regex(PUBLISHED_TYPE_PATTERN, "must be dotted lowercase words, e.g. billing.invoice_paid")
    .refine((type) => !isBuiltinEventType(type), `must not start with a built-in prefix (${BUILTIN_EVENT_PREFIXES.join(", ")})`),
  data: z.unknown().optional(),
});
