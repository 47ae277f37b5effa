import type { Envelope, SwitchyardClient } from "../../src/client/index.js";
import type { NamespaceName } from "../../src/protocol/namespaces.js";
import type { ConnectionTracker } from "./live.js";
import { Observable } from "./observable.js";

const KEEP = 300;

/**
 * The event feed: one room of any namespace, followed by a client of its own, so that it can start from any
 * cursor without disturbing the views' subscriptions. Shows what the room delivers, exactly once and in order.
 */
export class EventFeed extends Observable {
  namespace: NamespaceName | undefined;
  room: string | undefined;
  /** Newest first. */
  events: Envelope[] = [];
  delivered = 0;
  error: string | undefined;
  private client: SwitchyardClient | undefined;

  constructor(
    private readonly open: (namespace: NamespaceName) => SwitchyardClient,
    private readonly connection: ConnectionTracker,
  ) {
    super();
  }

  /** Follows `room` of `namespace`, from `after` (a cursor) when given, else from now. */
  async start(namespace: NamespaceName, room: string, after: string | undefined): Promise<void> {
    this.stop();
    const client = this.open(namespace);
    this.client = client;
    this.connection.add(client);
    Object.assign(this, { namespace, room, events: [], delivered: 0, error: undefined });
    this.changed();
    try {
      await client.subscribe(
        room,
        (event) => {
          this.events.unshift(event);
          if (this.events.length > KEEP) this.events.length = KEEP;
          this.delivered++;
          this.changed();
        },
        { after },
      );
    } catch (error) {
      if (this.client !== client) return;
      this.stop();
      this.error = (error as Error).message;
    }
    this.changed();
  }

  /** The cursor of the last event delivered: start another feed (or a client) from it to continue. */
  cursor(): string | undefined {
    return this.room === undefined ? undefined : this.client?.cursor(this.room);
  }

  get following(): boolean {
    return this.client !== undefined;
  }

  stop(): void {
    if (!this.client) return;
    // Out of the indicator first: a feed closed on purpose is not a lost connection.
    this.connection.remove(this.client);
    this.client.close();
    this.client = undefined;
    this.changed();
  }
}
