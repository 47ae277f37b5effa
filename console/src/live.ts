import type { ConnectionState, RoomEvent, SwitchyardClient } from "../../src/client/index.js";
import type { NamespaceName } from "../../src/protocol/namespaces.js";
import { Observable } from "./observable.js";

/** Worst first: the indicator shows the worst state of the session's clients. */
const SEVERITY: ConnectionState[] = ["disconnected", "reconnecting", "connecting", "catching-up", "live"];

/** The session's connection indicator: one state for every SwitchyardClient the console holds. */
export class ConnectionTracker extends Observable {
  private readonly clients = new Set<SwitchyardClient>();
  state: ConnectionState = "connecting";

  add(client: SwitchyardClient): void {
    this.clients.add(client);
    client.onStateChange(() => this.update());
    this.update();
  }

  remove(client: SwitchyardClient): void {
    this.clients.delete(client);
    this.update();
  }

  private update(): void {
    const states = [...this.clients].map((c) => c.state);
    const next = SEVERITY.find((s) => states.includes(s)) ?? "live";
    if (next === this.state) return;
    this.state = next;
    this.changed();
  }
}

/**
 * Follows a room from a REST snapshot on: subscribes first, holds the events that arrive while `load` reads the
 * snapshot, then applies them over it. Every event after the subscription's head is applied, in order, so the
 * last one applied to a resource is its latest state, whatever moment the snapshot caught. When the client
 * reports that the room's history was lost (`onReset`), the snapshot is read again the same way.
 */
export async function follow<N extends NamespaceName>(
  client: SwitchyardClient<N>,
  room: string,
  how: {
    load: () => Promise<void>;
    apply: (event: RoomEvent<N>) => void;
    /** A snapshot that could not be read is tried again (with backoff) while this says the session lives. */
    onLoadError: (error: Error) => void;
    alive: () => boolean;
  },
): Promise<void> {
  const { load, apply, onLoadError, alive } = how;
  let held: Array<RoomEvent<N>> | undefined = [];
  const reload = async (): Promise<void> => {
    held ??= [];
    for (let attempt = 0; ; attempt++) {
      try {
        await load();
        break;
      } catch (error) {
        if (!alive()) return;
        onLoadError(error as Error);
        await new Promise((resolve) => setTimeout(resolve, Math.min(10_000, 1000 * 2 ** attempt)));
      }
    }
    const events = held;
    held = undefined;
    for (const event of events) apply(event);
  };
  client.onReset((reset) => {
    if (reset === room) void reload();
  });
  await client.subscribe(room, (event) => (held ? held.push(event) : apply(event)));
  await reload();
}
