/**
 * A kind of state change that commits in the event log's own statement together with the events announcing it,
 * numbered and stored at once: no outbox row is written, moved and deleted, and concurrent changes of a node are
 * group-committed, one statement per tick, with every other append waiting (see EventLogWriter.write).
 *
 * The domain that owns the state (tasks) writes the SQL; the event log composes it into its statement. `build`
 * returns common table expressions (comma-separated, without `WITH`) for a batch of changes, which must define:
 *
 * - `<name>_events (item int, sub int, tenant text, event_id text, type text, data jsonb, ts timestamp, targets text[])`:
 *   the events of each change, `item` its index in `changes`, `sub` its order within the change (0, 1, …, fewer
 *   than MAX_EVENTS_PER_CHANGE), `targets` its rooms as `<namespace>|<room>` (built with `targetSql`, src/events/outbox.ts);
 * - `<name>_rows (item int, row jsonb)`: the new state of each change that was made (a refused change has none).
 *
 * The SQL text must depend only on the shape of the batch, never on values (they go through `param`), so that
 * the statement is prepared once per shape.
 */
export interface StateChangeKind<C, R> {
  /** A SQL identifier that prefixes the kind's expressions. */
  readonly name: string;
  build(changes: readonly C[], param: (value: unknown) => string): string;
  /** Reads one `<name>_rows` row back. */
  parse(row: unknown): R;
  /**
   * Two changes with the same key never share a statement (the second waits for the next one): a statement sees
   * one snapshot, so a second change of the same row would not see the first.
   */
  key(change: C): string;
}

/** Collects a statement's parameters; `add` returns the placeholder of the value it was given (`param` above). */
export class Params {
  readonly values: unknown[] = [];
  add = (value: unknown): string => {
    this.values.push(value);
    return `$${this.values.length}`;
  };
}

/** Events one change may announce (a task claim announces two). */
export const MAX_EVENTS_PER_CHANGE = 4;
