import { DependencyUnavailableError, type Dependency } from "../errors.js";

/**
 * Settles as `work` does, or rejects with "<dependency> unavailable" once `ms` have passed. For calls whose driver
 * sets no deadline of its own: BullMQ waits for its connection to become ready for as long as that takes, and
 * `quit()` waits for the server's answer. `work` is left to settle on its own (its outcome is then ignored).
 */
export async function withDeadline<T>(work: Promise<T>, ms: number, dependency: Dependency): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DependencyUnavailableError(dependency)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
