import { z } from "zod";
import { ID_PATTERN } from "../../protocol/rooms.js";

// Apart from the service so that the store, which inserts what was submitted, and schedules, which keep a task
// template, can know its shape without importing the service that uses them.

export const TYPE_PATTERN = /^[A-Za-z0-9_.:-]{1,100}$/;

export const SubmitTaskSchema = z.strictObject({
  type: z.string().regex(TYPE_PATTERN, "must be 1-100 letters, digits, '_', '.', ':' or '-'"),
  payload: z.json().optional(),
  poolId: z.string().regex(ID_PATTERN, "must be a pool id").optional(),
  priority: z.number().int().min(0).max(100).default(50),
  maxAttempts: z.number().int().min(1).max(25).default(1),
  timeoutMs: z
    .number()
    .int()
    .min(1)
    .max(24 * 3600 * 1000)
    .optional(),
});
export type SubmitTaskInput = z.infer<typeof SubmitTaskSchema>;
