import { io, type Socket, type ManagerOptions, type SocketOptions } from "socket.io-client";
import type { Envelope } from "../../src/protocol/events.js";

// On globalThis because mocha may load support modules twice (the --require hooks and the specs).
const registry = globalThis as typeof globalThis & { __switchyardOpenSockets?: Set<Socket> };
const open = (registry.__switchyardOpenSockets ??= new Set<Socket>());

export interface ConnectOptions extends Partial<ManagerOptions & SocketOptions> {
  token?: string;
}

/** Opens a real socket.io-client connection to a namespace and waits for `connect`. */
export async function connect(baseUrl: string, namespace: string, options: ConnectOptions = {}): Promise<Socket> {
  const socket = openSocket(baseUrl, namespace, options);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("connect_error", (error) => reject(error));
  });
  return socket;
}

/** Opens a socket without waiting (to observe connect_error). */
export function openSocket(baseUrl: string, namespace: string, options: ConnectOptions = {}): Socket {
  const { token, ...rest } = options;
  const socket = io(`${baseUrl}/${namespace}`, {
    auth: token === undefined ? {} : { token },
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
    ...rest,
  });
  open.add(socket);
  return socket;
}

export interface ConnectFailure extends Error {
  data?: { code?: string; message?: string };
}

export async function connectError(baseUrl: string, namespace: string, options: ConnectOptions = {}): Promise<ConnectFailure> {
  const socket = openSocket(baseUrl, namespace, options);
  return new Promise((resolve, reject) => {
    socket.once("connect", () => reject(new Error("connected, but a connect_error was expected")));
    socket.once("connect_error", (error) => resolve(error));
  });
}

/** Emits with an acknowledgement and a timeout; resolves with the ack's value. */
export async function request<T = Record<string, unknown>>(socket: Socket, event: string, ...args: unknown[]): Promise<T> {
  return (await socket.timeout(5000).emitWithAck(event, ...args)) as T;
}

export interface SubscribeResult {
  ok: boolean;
  room?: string;
  cursor?: string;
  replayed?: number;
  error?: { code: string; message: string };
}

export async function subscribe(socket: Socket, room: string, after?: string): Promise<SubscribeResult> {
  return request<SubscribeResult>(socket, "subscribe", after === undefined ? { room } : { room, after });
}

/** Records every envelope a socket receives, in arrival order. */
export class EventRecorder {
  readonly events: Envelope[] = [];
  private waiters: Array<() => void> = [];

  constructor(socket: Socket) {
    socket.onAny((type: string, payload: unknown) => {
      if (payload && typeof payload === "object" && "cursor" in payload) {
        this.events.push(payload as Envelope);
        for (const wake of this.waiters.splice(0)) wake();
      }
    });
  }

  of(type: string, room?: string): Envelope[] {
    return this.events.filter((e) => e.type === type && (room === undefined || e.room === room));
  }

  /** Waits until `predicate` holds over the recorded events (or fails after `timeoutMs`). */
  async until(predicate: (events: Envelope[]) => boolean, timeoutMs = 10_000, what = "events"): Promise<Envelope[]> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.events)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out waiting for ${what}; saw: ${this.events.map((e) => `${e.type}@${e.room}`).join(", ") || "nothing"}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.events;
  }

  async next(type: string, room?: string, timeoutMs?: number): Promise<Envelope> {
    await this.until(
      (events) => events.some((e) => e.type === type && (room === undefined || e.room === room)),
      timeoutMs,
      `${type}${room ? ` in ${room}` : ""}`,
    );
    return this.of(type, room)[0]!;
  }
}

export function closeAllClients(): void {
  for (const socket of open) socket.close();
  open.clear();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
