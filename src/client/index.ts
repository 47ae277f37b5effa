/**
 * Switchyard's client helper: "every event of a room, in order, exactly once", across reconnects and node
 * failures. Works in Node and browsers (socket.io-client and fetch only).
 *
 * While a socket stays connected the server itself sends each room's events once, in cursor order (any Socket.IO
 * client gets that); the helper adds what a connection cannot: it resubscribes every room after a reconnect from
 * the last cursor it delivered, moves to another node when one dies, and tells the application when a room's
 * history can no longer be continued.
 *
 * @example
 * const client = new SwitchyardClient({ urls: ["https://a.example", "https://b.example"], namespace: "tasks", token });
 * client.on("task.completed", (event) => console.log(event.data.task.id, event.data.task.result));
 * await client.subscribe("tasks");
 */
import { io, type ManagerOptions, type Socket, type SocketOptions } from "socket.io-client";
import { decodeCursor, encodeCursor } from "../protocol/cursor.js";
import {
  isEvent,
  type Envelope,
  type EventEnvelope,
  type EventName,
  type EventsOf,
  type PoolsServerEvents,
  type RoomClientEvents,
  type RoomEvent,
  type SessionExpired,
  type SessionRevoked,
  type SubscribeAck,
  type TasksServerEvents,
  type WorkflowsServerEvents,
} from "../protocol/events.js";
import type { NamespaceName } from "../protocol/namespaces.js";
import type { BUILTIN_EVENT_PREFIXES, PublishedEvent, PublishEvent, PublishRequest, PublishResponse } from "../protocol/publish.js";

export { isEvent };
export { applyTaskEvent } from "../protocol/views.js";
export type { Envelope, EventEnvelope, EventName, EventsOf, NamespaceName, PublishedEvent, RoomEvent };
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
  /** @deprecated Ignored: the server sends each room's events in order and fills its own gaps. */
  reorderWindowMs?: number;
  fetch?: typeof fetch;
  socketOptions?: Partial<ManagerOptions & SocketOptions>;
}

/** Gets a room's events; narrow one to a built-in event's shape with `isEvent(event, "task.completed")`. */
export type EventHandler<N extends NamespaceName = NamespaceName> = (event: RoomEvent<N>) => void;
/**
 * An event name `on()` accepts in namespace N: a built-in event delivered in N, or a backend's own type (one
 * outside the built-in prefixes, e.g. `billing.invoice_paid`). Any other built-in-looking name, such as a
 * misspelt `task.complete` or `pool.created` on a /tasks client, resolves to N's event names, so passing it is
 * a compile error that lists them.
 */
export type ListenableEvent<N extends NamespaceName, K extends string> =
  K extends EventsOf<N> ? K : K extends `${(typeof BUILTIN_EVENT_PREFIXES)[number]}${string}` ? EventsOf<N> : K;
/** What an `on(type)` listener gets: a built-in event's typed envelope, or an envelope with `data: unknown`. */
export type ListenerEnvelope<K extends string> = K extends EventName ? EventEnvelope<K> : Envelope;
export interface SubscribeOptions {
  /**
   * Deliver the events after this cursor of the room first (one you saved from `cursor(room)` or an envelope), or
   * `"0"`: every event of the room from its first stored one (within the server's replay bound).
   */
  after?: string;
}
/** Where a room stands once the server acknowledged it, and how many missed events it replayed first. */
export interface Subscribed {
  cursor: string;
  replayed: number;
}
/** A room was (re)subscribed: on `subscribe()` and after every reconnect. */
export type SubscribedHandler = (room: string, subscribed: Subscribed) => void;
/** The client's socket: the server's events of every namespace, the room operations. */
export type ClientSocket = Socket<PoolsServerEvents & TasksServerEvents & WorkflowsServerEvents, RoomClientEvents>;
/** The room's log moved past what the client can recover (new epoch or beyond retention): reload state. */
export type ResetHandler = (room: string, reason: string) => void;
/**
 * Where the client stands, for a connection indicator:
 * - `connecting`: the first connection is not made yet;
 * - `catching-up`: connected, and a room's (re)subscribe is not acknowledged yet (missed events are being
 *   replayed);
 * - `live`: connected, every room acknowledged, nothing missing;
 * - `reconnecting`: the connection was lost and socket.io-client is trying again;
 * - `disconnected`: not trying any more (the server refused the token or ended the session, or `close()`).
 */
export type ConnectionState = "connecting" | "catching-up" | "live" | "reconnecting" | "disconnected";
/** The server ended the session because its token expired or was revoked; it disconnects the socket next. */
export type SessionEndHandler = (reason: SessionExpired["reason"] | SessionRevoked["reason"]) => void;

interface RoomState {
  /** The room's own handler, if subscribe() was given one; `on()` listeners get the room's events as well. */
  handler: EventHandler | undefined;
  epoch: string | undefined;
  /** Sequence number of the last event delivered to the handler. */
  lastSeq: number;
  /** Events that came before the first subscribe ack told where the room stands (delivered once it has). */
  early: Envelope[];
  /** Until the first subscribe ack tells where the room stands, events are only collected. */
  awaitingAck: boolean;
  /** Subscribed with `after: "0"` and not acknowledged yet: the first event collected is where the room starts. */
  fromStart: boolean;
  /** subscribe() is sending this room's first subscribe itself; a concurrent (re)connect must not send another. */
  subscribing: boolean;
}

// `out`: a client of one namespace may be kept where any client is expected (a list of the console's clients, a
// test helper); the conditional types of `on()` would otherwise make N invariant. Such a holder can only name
// events of every namespace, which is harmless: a listener for another namespace's event never fires.
export class SwitchyardClient<out N extends NamespaceName = NamespaceName> {
  readonly socket: ClientSocket;
  private readonly rooms = new Map<string, RoomState>();
  private readonly urls: string[];
  private urlIndex = 0;
  private readonly resetHandlers: ResetHandler[] = [];
  private readonly errorHandlers: Array<(error: Error) => void> = [];
  private readonly sessionEndHandlers: SessionEndHandler[] = [];
  private readonly stateHandlers: Array<(state: ConnectionState) => void> = [];
  private lastState: ConnectionState = "connecting";
  private everConnected = false;
  private closed = false;
  /** Subscribe acks under way: while there are any, the client is catching up. */
  private catchingUp = 0;
  private readonly subscribedHandlers: SubscribedHandler[] = [];
  /** `on()` listeners by event type. */
  private readonly listeners = new Map<string, Set<(event: Envelope) => void>>();

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
      this.updateState();
      if (this.urls.length < 2) return;
      this.urlIndex = (this.urlIndex + 1) % this.urls.length;
      (this.socket.io as unknown as { uri: string }).uri = this.urls[this.urlIndex]!;
    });
    this.socket.on("connect", () => {
      this.everConnected = true;
      for (const [room, state] of this.rooms) if (!state.subscribing) void this.resubscribe(room);
      this.updateState();
    });
    this.socket.on("connect_error", (error) => {
      this.fail(error);
      this.updateState();
    });
    this.socket.on("session.expired", ({ reason }) => this.endSession(reason));
    this.socket.on("session.revoked", ({ reason }) => this.endSession(reason));
    this.socket.on("disconnect", (reason) => {
      // The server ended the session (e.g. the token expired): socket.io-client does not reconnect by itself
      // then. With a token function there is a fresh token to come back with.
      if (reason === "io server disconnect" && typeof this.options.token === "function") this.socket.connect();
      this.updateState();
    });
    this.socket.onAny((_type: string, payload: unknown) => {
      if (isEnvelope(payload)) this.receive(payload);
    });
  }

  /** Called with the new state whenever it changes (see ConnectionState); `state` is the current one. */
  onStateChange(handler: (state: ConnectionState) => void): void {
    this.stateHandlers.push(handler);
  }

  get state(): ConnectionState {
    return this.lastState;
  }

  /** Called when a room had to restart from its current head because its history could not be recovered. */
  onReset(handler: ResetHandler): void {
    this.resetHandlers.push(handler);
  }

  onError(handler: (error: Error) => void): void {
    this.errorHandlers.push(handler);
  }

  /**
   * Called when the server ends the session: `token_expired`, or `token_revoked` (an admin revoked the token or
   * its subject). With a `token` function the helper reconnects at once with the token it returns next; a revoked
   * token is refused again (`connect_error` `TOKEN_REVOKED`, reported to onError) and not retried.
   */
  onSessionEnd(handler: SessionEndHandler): void {
    this.sessionEndHandlers.push(handler);
  }

  /** Called when a room's subscribe was acknowledged: the first time and after every reconnect (`replayed` missed events). */
  onSubscribed(handler: SubscribedHandler): void {
    this.subscribedHandlers.push(handler);
  }

  /**
   * Listens to one event type in every room this client subscribes, with the same guarantee as a room handler:
   * each room's events in cursor order, each once (an event of two subscribed rooms comes once per room).
   * The name is checked against the namespace's events at compile time. Returns a function that stops listening.
   * @example
   * client.on("task.completed", (event) => console.log(event.data.task.result));
   */
  on<K extends string>(type: ListenableEvent<N, K>, listener: (event: ListenerEnvelope<K>) => void): () => void {
    const listeners = this.listeners.get(type) ?? new Set();
    this.listeners.set(type, listeners);
    // The type parameter is erased at run time: the listener gets exactly the envelopes whose `type` is `type`.
    const untyped = listener as (event: Envelope) => void;
    listeners.add(untyped);
    return () => {
      listeners.delete(untyped);
      if (listeners.size === 0 && this.listeners.get(type) === listeners) this.listeners.delete(type);
    };
  }

  /** The base URL in use, or being tried while (re)connecting; history requests and `publish()` go there. */
  get url(): string {
    return this.urls[this.urlIndex]!;
  }

  /** The cursor of the last event delivered for a room. */
  cursor(room: string): string | undefined {
    const state = this.rooms.get(room);
    return state?.epoch === undefined ? undefined : encodeCursor({ epoch: state.epoch, seq: state.lastSeq });
  }

  /**
   * Subscribes to a room; `handler` (and the `on()` listeners) get its events in cursor order, each once. With
   * `after`, events after that cursor are delivered first.
   */
  subscribe(room: string, options?: SubscribeOptions): Promise<Subscribed>;
  subscribe(room: string, handler: EventHandler<N>, options?: SubscribeOptions): Promise<Subscribed>;
  async subscribe(
    room: string,
    handlerOrOptions?: EventHandler<N> | SubscribeOptions,
    maybeOptions: SubscribeOptions = {},
  ): Promise<Subscribed> {
    const handler = typeof handlerOrOptions === "function" ? handlerOrOptions : undefined;
    const options = typeof handlerOrOptions === "object" ? handlerOrOptions : maybeOptions;
    const fromStart = options.after === "0";
    const from = options.after === undefined || fromStart ? undefined : decodeCursor(options.after);
    // Refused here as the server would refuse it: ignoring it would silently start from the head instead.
    if (options.after !== undefined && !fromStart && !from)
      throw Object.assign(new Error(`subscribe ${room}: BAD_REQUEST after is not a cursor`), { code: "BAD_REQUEST" });
    this.rooms.set(room, {
      handler,
      epoch: from?.epoch,
      lastSeq: from?.seq ?? 0,
      early: [],
      awaitingAck: from === undefined,
      fromStart,
      subscribing: true,
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
      this.updateState();
    }
    if (!ack.ok) {
      this.rooms.delete(room);
      throw Object.assign(new Error(`subscribe ${room}: ${ack.error.code} ${ack.error.message}`), { code: ack.error.code });
    }
    return { cursor: this.cursor(room) ?? ack.cursor, replayed: ack.replayed ?? 0 };
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
      response = await doFetch(`${this.url}/api/v1/events`, {
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
    this.rooms.delete(room);
    if (this.socket.connected) await this.socket.timeout(10_000).emitWithAck("unsubscribe", { room });
  }

  close(): void {
    this.rooms.clear();
    this.closed = true;
    this.socket.close();
    this.updateState();
  }

  private async token(): Promise<string> {
    return typeof this.options.token === "function" ? this.options.token() : this.options.token;
  }

  /** (Re)subscribes a room from the last delivered cursor; on an unrecoverable cursor, starts over and says so. */
  private resubscribe(room: string, attempt = 0): Promise<SubscribeAck> {
    // Until the ack, the server is replaying what the room missed: the client is catching up.
    return this.catchingUpWhile(() => this.subscribeRoom(room, attempt));
  }

  private async subscribeRoom(room: string, attempt: number): Promise<SubscribeAck> {
    const state = this.rooms.get(room);
    if (!state) return { ok: true, room, cursor: "" };
    const after = this.cursor(room);
    let ack: SubscribeAck;
    try {
      const request = state.fromStart ? { room, after: "0" } : after === undefined || state.awaitingAck ? { room } : { room, after };
      ack = (await this.socket.timeout(10_000).emitWithAck("subscribe", request)) as SubscribeAck;
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
      // From its start is too far back too: start at the head, as for any cursor the server no longer serves.
      state.fromStart = false;
      state.early = [];
      return this.resubscribe(room);
    }
    if (ack.ok && state.awaitingAck) {
      const head = decodeCursor(ack.cursor);
      state.awaitingAck = false;
      if (head) {
        state.epoch = head.epoch;
        // From the start: the replayed events came before the ack, and the first of them is where the room begins
        // (retention may have removed earlier ones); a room with none starts after its head. Otherwise the events
        // that came before the ack are the first ones after its cursor.
        const first = state.early[0] ? decodeCursor(state.early[0].cursor) : null;
        state.lastSeq = state.fromStart && first ? first.seq - 1 : head.seq;
      }
      state.fromStart = false;
      const early = state.early;
      state.early = [];
      for (const envelope of early) this.receive(envelope);
    }
    if (ack.ok)
      for (const handler of this.subscribedHandlers)
        handler(room, { cursor: this.cursor(room) ?? ack.cursor, replayed: ack.replayed ?? 0 });
    return ack;
  }

  /**
   * One event of a subscribed room. The server sends a room's events once each, in cursor order, on a connection;
   * across a reconnect the resubscribe continues from the last cursor delivered here, so a copy is only dropped
   * in case, and a gap (the server's promise broken) is delivered and reported rather than waited for.
   */
  private receive(envelope: Envelope): void {
    const state = this.rooms.get(envelope.room);
    const position = decodeCursor(envelope.cursor);
    if (!state || !position) return;
    if (state.awaitingAck || state.epoch === undefined) {
      state.early.push(envelope);
      return;
    }
    if (position.epoch !== state.epoch) {
      // The room's log was reset under us: what we hold can no longer be continued.
      for (const reset of this.resetHandlers) reset(envelope.room, "the room's log was reset");
      state.epoch = position.epoch;
      state.lastSeq = position.seq - 1;
    }
    if (position.seq <= state.lastSeq) return;
    if (position.seq !== state.lastSeq + 1)
      this.fail(new Error(`room ${envelope.room}: events ${state.lastSeq + 1}-${position.seq - 1} did not arrive`));
    state.lastSeq = position.seq;
    this.deliver(state, envelope);
  }

  /** Hands one event to the room's handler and to the listeners of its type; their exceptions go to onError. */
  private deliver(state: RoomState, event: Envelope): void {
    const listeners = this.listeners.get(event.type);
    for (const receive of [state.handler, ...(listeners ?? [])]) {
      if (!receive) continue;
      try {
        receive(event);
      } catch (error) {
        this.fail(error);
      }
    }
  }

  private endSession(reason: Parameters<SessionEndHandler>[0]): void {
    for (const handler of this.sessionEndHandlers) {
      try {
        handler(reason);
      } catch (error) {
        this.fail(error);
      }
    }
  }

  /** Counts `work` as catching up (a subscribe ack or a gap fill outstanding) while it runs. */
  private async catchingUpWhile<T>(work: () => Promise<T>): Promise<T> {
    this.catchingUp++;
    this.updateState();
    try {
      return await work();
    } finally {
      this.catchingUp--;
      this.updateState();
    }
  }

  private updateState(): void {
    let state: ConnectionState;
    if (this.closed) state = "disconnected";
    // A room whose first subscribe waits for the connection is about to catch up too (no "live" blip between).
    else if (this.socket.connected)
      state = this.catchingUp > 0 || [...this.rooms.values()].some((r) => r.subscribing) ? "catching-up" : "live";
    // socket.io-client stays active while it retries; a refused handshake or a server disconnect ends that.
    else if (!this.socket.active) state = "disconnected";
    else state = this.everConnected ? "reconnecting" : "connecting";
    if (state === this.lastState) return;
    this.lastState = state;
    for (const handler of this.stateHandlers) {
      try {
        handler(state);
      } catch (error) {
        this.fail(error);
      }
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
