/**
 * Switchyard's client helper: "every event of a room, in order, exactly once", across reconnects and node
 * failures. Works in Node and browsers (socket.io-client and fetch only).
 *
 * @example
 * const client = new SwitchyardClient({ urls: ["https://a.example", "https://b.example"], namespace: "tasks", token });
 * await client.subscribe("tasks", (event) => console.log(event.type, event.data));
 */
import { io, type ManagerOptions, type Socket, type SocketOptions } from "socket.io-client";
import { decodeCursor, encodeCursor } from "../protocol/cursor.js";
import {
  isEvent,
  type Envelope,
  type EventEnvelope,
  type EventName,
  type PoolsServerEvents,
  type RoomClientEvents,
  type RoomEvent,
  type SubscribeAck,
  type TasksServerEvents,
  type WorkflowsServerEvents,
} from "../protocol/events.js";
import type { NamespaceName } from "../protocol/namespaces.js";
import type { PublishedEvent, PublishEvent, PublishRequest, PublishResponse } from "../protocol/publish.js";

export { isEvent };
export type { Envelope, EventEnvelope, EventName, PublishedEvent, RoomEvent };
export type * from "../protocol/views.js";

/** An event for `publish()`: `namespace` defaults to the client's own. */
export type ClientPublishEvent<T = unknown> = Omit<PublishEvent<T>, "namespace"> & { namespace?: NamespaceName };

/** A refused or failed `publish()`: the server's error code (or UNAVAILABLE without an answer), HTTP status and details. */
export class PublishError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly status: number | undefined,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = "PublishError";
  }
}

export interface SwitchyardClientOptions<N extends NamespaceName = NamespaceName> {
  /** One or more server base URLs; each reconnection attempt moves to the next, so a dead node is left behind. */
  urls: string | string[];
  namespace: N;
  /** The JWT, or a function returning a fresh one (called on every (re)connection and history request). */
  token: string | (() => string | Promise<string>);
  /** How long an out-of-order event waits for the ones before it before they are fetched from history. */
  reorderWindowMs?: number;
  fetch?: typeof fetch;
  socketOptions?: Partial<ManagerOptions & SocketOptions>;
}

/** Gets a room's events; narrow one to a built-in event's shape with `isEvent(event, "task.completed")`. */
export type EventHandler<N extends NamespaceName = NamespaceName> = (event: RoomEvent<N>) => void;
/** The client's socket: the server's events of every namespace, the room operations. */
export type ClientSocket = Socket<PoolsServerEvents & TasksServerEvents & WorkflowsServerEvents, RoomClientEvents>;
/** The room's log moved past what the client can recover (new epoch or beyond retention): reload state. */
export type ResetHandler = (room: string, reason: string) => void;

interface RoomState {
  handler: EventHandler;
  epoch: string | undefined;
  /** Sequence number of the last event delivered to the handler. */
  lastSeq: number;
  /** Events that arrived ahead of a gap, by sequence number. */
  pending: Map<number, Envelope>;
  /** Until the first subscribe ack tells where the room stands, events are only collected. */
  awaitingAck: boolean;
  /** subscribe() is sending this room's first subscribe itself; a concurrent (re)connect must not send another. */
  subscribing: boolean;
  gapTimer: ReturnType<typeof setTimeout> | undefined;
  filling: Promise<void> | undefined;
}

export class SwitchyardClient<N extends NamespaceName = NamespaceName> {
  readonly socket: ClientSocket;
  private readonly rooms = new Map<string, RoomState>();
  private readonly urls: string[];
  private urlIndex = 0;
  private readonly resetHandlers: ResetHandler[] = [];
  private readonly errorHandlers: Array<(error: Error) => void> = [];

  constructor(private readonly options: SwitchyardClientOptions<N>) {
    this.urls = Array.isArray(options.urls) ? options.urls : [options.urls];
    if (this.urls.length === 0) throw new Error("SwitchyardClient needs at least one URL");
    this.socket = io(`${this.urls[0]}/${options.namespace}`, {
      transports: ["websocket", "polling"],
      reconnectionDelay: 250,
      reconnectionDelayMax: 2000,
      ...options.socketOptions,
      auth: (cb) => {
        void this.token().then((token) => cb({ token }));
      },
    });
    this.socket.io.on("reconnect_attempt", () => {
      if (this.urls.length < 2) return;
      this.urlIndex = (this.urlIndex + 1) % this.urls.length;
      (this.socket.io as unknown as { uri: string }).uri = this.urls[this.urlIndex]!;
    });
    this.socket.on("connect", () => {
      for (const [room, state] of this.rooms) if (!state.subscribing) void this.resubscribe(room);
    });
    this.socket.on("connect_error", (error) => this.fail(error));
    this.socket.on("disconnect", (reason) => {
      // The server ended the session (e.g. the token expired): socket.io-client does not reconnect by itself
      // then. With a token function there is a fresh token to come back with.
      if (reason === "io server disconnect" && typeof this.options.token === "function") this.socket.connect();
    });
    this.socket.onAny((_type: string, payload: unknown) => {
      if (isEnvelope(payload)) this.receive(payload);
    });
  }

  /** Called when a room had to restart from its current head because its history could not be recovered. */
  onReset(handler: ResetHandler): void {
    this.resetHandlers.push(handler);
  }

  onError(handler: (error: Error) => void): void {
    this.errorHandlers.push(handler);
  }

  /** The cursor of the last event delivered for a room. */
  cursor(room: string): string | undefined {
    const state = this.rooms.get(room);
    return state?.epoch === undefined ? undefined : encodeCursor({ epoch: state.epoch, seq: state.lastSeq });
  }

  /**
   * Subscribes to a room; `handler` gets its events in cursor order, each once. With `after`, events after that
   * cursor are delivered first.
   */
  async subscribe(room: string, handler: EventHandler<N>, options: { after?: string } = {}): Promise<{ cursor: string }> {
    const from = options.after === undefined ? undefined : decodeCursor(options.after);
    this.rooms.set(room, {
      handler,
      epoch: from?.epoch,
      lastSeq: from?.seq ?? 0,
      pending: new Map(),
      awaitingAck: from === undefined,
      subscribing: true,
      gapTimer: undefined,
      filling: undefined,
    });
    let ack: SubscribeAck;
    try {
      if (!this.socket.connected) {
        await new Promise<void>((resolve, reject) => {
          const onConnect = (): void => {
            this.socket.off("connect_error", onError);
            resolve();
          };
          const onError = (error: Error): void => {
            // Keep trying while socket.io-client retries; give up when it stops (e.g. the token is refused).
            if (!this.socket.active) {
              this.socket.off("connect", onConnect);
              reject(error);
            }
          };
          this.socket.once("connect", onConnect);
          this.socket.on("connect_error", onError);
        });
      }
      ack = await this.resubscribe(room);
    } catch (error) {
      this.rooms.delete(room);
      throw error;
    } finally {
      const state = this.rooms.get(room);
      if (state) state.subscribing = false;
    }
    if (!ack.ok) {
      this.rooms.delete(room);
      throw Object.assign(new Error(`subscribe ${room}: ${ack.error.code} ${ack.error.message}`), { code: ack.error.code });
    }
    return { cursor: this.cursor(room) ?? ack.cursor };
  }

  /**
   * Publishes events into rooms of the token's tenant (`POST /api/v1/events` on the URL in use; the token needs
   * `events:publish`). One event, or an array of 1 to 500 stored together or not at all. Resolves with where each
   * event was stored, in input order. Rejects with a PublishError; a request that got no answer is not sent
   * again (it may have been stored), so retry only if a duplicate event is acceptable.
   * @example
   * const [item] = await client.publish({ room: "tasks", type: "billing.invoice_paid", data: { invoice: "in_42" } });
   */
  async publish(events: ClientPublishEvent | readonly ClientPublishEvent[]): Promise<PublishedEvent[]> {
    const withNamespace = (event: ClientPublishEvent): PublishEvent => ({ ...event, namespace: event.namespace ?? this.options.namespace });
    const body: PublishRequest = isEventList(events) ? { events: events.map(withNamespace) } : withNamespace(events);
    const doFetch = this.options.fetch ?? fetch;
    let response: Response;
    try {
      response = await doFetch(`${this.baseUrl}/api/v1/events`, {
        method: "POST",
        headers: { authorization: `Bearer ${await this.token()}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    } catch (error) {
      throw new PublishError(`publish: ${(error as Error).message}`, "UNAVAILABLE", undefined);
    }
    let answer: Partial<PublishResponse> & { error?: { code: string; message: string; details?: unknown } };
    try {
      answer = (await response.json()) as typeof answer;
    } catch {
      answer = {};
    }
    if (!response.ok || !Array.isArray(answer.items)) {
      const error = answer.error ?? { code: response.ok ? "INTERNAL" : "UNAVAILABLE", message: response.statusText };
      throw new PublishError(`publish: ${response.status} ${error.code} ${error.message}`, error.code, response.status, error.details);
    }
    return answer.items;
  }

  async unsubscribe(room: string): Promise<void> {
    const state = this.rooms.get(room);
    if (state) clearTimeout(state.gapTimer);
    this.rooms.delete(room);
    if (this.socket.connected) await this.socket.timeout(10_000).emitWithAck("unsubscribe", { room });
  }

  close(): void {
    for (const state of this.rooms.values()) clearTimeout(state.gapTimer);
    this.rooms.clear();
    this.socket.close();
  }

  private async token(): Promise<string> {
    return typeof this.options.token === "function" ? this.options.token() : this.options.token;
  }

  private get baseUrl(): string {
    return this.urls[this.urlIndex]!;
  }

  /** (Re)subscribes a room from the last delivered cursor; on an unrecoverable cursor, starts over and says so. */
  private async resubscribe(room: string, attempt = 0): Promise<SubscribeAck> {
    const state = this.rooms.get(room);
    if (!state) return { ok: true, room, cursor: "" };
    const after = this.cursor(room);
    let ack: SubscribeAck;
    try {
      ack = (await this.socket.timeout(10_000).emitWithAck("subscribe", after === undefined || state.awaitingAck ? { room } : { room, after })) as SubscribeAck;
    } catch (error) {
      this.fail(error);
      return { ok: false, error: { code: "UNAVAILABLE", message: "no acknowledgement" } };
    }
    if (!ack.ok && ack.error.code === "RATE_LIMITED" && this.socket.connected && attempt < 20) {
      // Many rooms resubscribing at once on a reconnect can exceed the server's per-socket rate: wait, retry.
      await new Promise((resolve) => setTimeout(resolve, 250 + Math.random() * 750));
      return this.resubscribe(room, attempt + 1);
    }
    if (!ack.ok && ack.error.code !== "CURSOR_EXPIRED") this.fail(new Error(`subscribe ${room}: ${ack.error.code} ${ack.error.message}`));
    if (!ack.ok && ack.error.code === "CURSOR_EXPIRED") {
      for (const reset of this.resetHandlers) reset(room, ack.error.message);
      state.awaitingAck = true;
      state.pending.clear();
      return this.resubscribe(room);
    }
    if (ack.ok && state.awaitingAck) {
      const head = decodeCursor(ack.cursor);
      state.awaitingAck = false;
      if (head) {
        state.epoch = head.epoch;
        state.lastSeq = head.seq;
      }
      this.drain(room, state);
    }
    return ack;
  }

  private receive(envelope: Envelope): void {
    const state = this.rooms.get(envelope.room);
    const position = decodeCursor(envelope.cursor);
    if (!state || !position) return;
    if (state.awaitingAck || state.epoch === undefined) {
      state.pending.set(position.seq, envelope);
      return;
    }
    if (position.epoch !== state.epoch) {
      // The room's log was reset under us: what we hold can no longer be continued.
      for (const reset of this.resetHandlers) reset(envelope.room, "the room's log was reset");
      state.epoch = position.epoch;
      state.lastSeq = position.seq - 1;
      state.pending.clear();
    }
    if (position.seq <= state.lastSeq) return; // already delivered (replay and live can overlap)
    state.pending.set(position.seq, envelope);
    this.drain(envelope.room, state);
  }

  /** Delivers every pending event that continues the sequence; on a gap, waits briefly, then fills it. */
  private drain(room: string, state: RoomState): void {
    for (const seq of [...state.pending.keys()]) if (seq <= state.lastSeq) state.pending.delete(seq);
    this.deliverConsecutive(state);
    if (state.pending.size === 0) {
      clearTimeout(state.gapTimer);
      state.gapTimer = undefined;
    } else if (!state.gapTimer && !state.filling) {
      state.gapTimer = setTimeout(() => {
        state.gapTimer = undefined;
        state.filling = this.fillGap(room, state).finally(() => {
          state.filling = undefined;
          if (this.rooms.get(room) === state) this.drain(room, state);
        });
      }, this.options.reorderWindowMs ?? 200);
    }
  }

  /** Fetches the missing events from the room's history (GET /api/v1/events). */
  private async fillGap(room: string, state: RoomState): Promise<void> {
    const doFetch = this.options.fetch ?? fetch;
    try {
      while (state.pending.size > 0 && !state.pending.has(state.lastSeq + 1)) {
        const after = encodeCursor({ epoch: state.epoch!, seq: state.lastSeq });
        const url = `${this.baseUrl}/api/v1/events?namespace=${this.options.namespace}&room=${encodeURIComponent(room)}&after=${after}&limit=500`;
        const response = await doFetch(url, { headers: { authorization: `Bearer ${await this.token()}` } });
        const body = (await response.json()) as { items?: Envelope[]; error?: { code: string; message: string } };
        if (!response.ok || !body.items) {
          if (body.error?.code === "CURSOR_EXPIRED") {
            for (const reset of this.resetHandlers) reset(room, body.error.message);
            const lowest = Math.min(...state.pending.keys());
            state.lastSeq = lowest - 1;
            return;
          }
          throw new Error(`history of ${room}: ${response.status} ${body.error?.message ?? ""}`);
        }
        if (body.items.length === 0) return;
        for (const envelope of body.items) {
          const position = decodeCursor(envelope.cursor);
          if (position && position.seq > state.lastSeq) state.pending.set(position.seq, envelope);
        }
        this.deliverConsecutive(state);
      }
    } catch (error) {
      this.fail(error);
    }
  }

  private deliverConsecutive(state: RoomState): void {
    let next = state.pending.get(state.lastSeq + 1);
    while (next) {
      state.pending.delete(state.lastSeq + 1);
      state.lastSeq += 1;
      try {
        state.handler(next);
      } catch (error) {
        this.fail(error);
      }
      next = state.pending.get(state.lastSeq + 1);
    }
  }

  private fail(error: unknown): void {
    const err = error instanceof Error ? error : new Error(String(error));
    for (const handler of this.errorHandlers) handler(err);
  }
}

function isEventList(value: ClientPublishEvent | readonly ClientPublishEvent[]): value is readonly ClientPublishEvent[] {
  return Array.isArray(value);
}

function isEnvelope(value: unknown): value is Envelope {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as Envelope).room === "string" &&
    typeof (value as Envelope).cursor === "string" &&
    typeof (value as Envelope).type === "string"
  );
}
