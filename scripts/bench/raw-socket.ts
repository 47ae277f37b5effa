// A deliberately cheap Socket.IO client: one `ws` WebSocket speaking Engine.IO v4 / Socket.IO v5 directly,
// so that one load-generator process can hold thousands of subscribed sockets. It does what a dashboard's
// socket.io-client does on the wire, and nothing else:
//
//   ws://host/socket.io/?EIO=4&transport=websocket      Engine.IO open:    0{"sid":...,"pingInterval":...}
//   -> 40/pools,{"token":"<jwt>"}                       namespace CONNECT with auth
//   <- 40/pools,{"sid":"..."}  |  44/pools,{"message":"unauthorized","data":{...}}
//   -> 42/pools,1["subscribe",{"room":"pools"}]         EVENT with ack id 1
//   <- 43/pools,1[{"ok":true,"room":"pools","cursor":"..."}]
//   <- 42/pools,["pool.scaling",{envelope}]             server events
//   <- 2   -> 3                                         Engine.IO ping / pong
//
// Frames are inspected byte-wise; only the frames a scenario needs are JSON-parsed.

import WebSocket from "ws";

const CH_0 = 0x30;
const CH_1 = 0x31;
const CH_2 = 0x32;
const CH_3 = 0x33;
const CH_4 = 0x34;

export type EventHandler = (frame: Buffer, socket: RawSocket) => void;

export interface RawSocketOptions {
  /** http://host:port */
  url: string;
  /** "/pools", "/tasks" or "/workflows" */
  nsp: string;
  token: string;
  onEvent: EventHandler;
  /** Milliseconds allowed for the whole open + namespace connect. */
  timeoutMs?: number;
}

export class RawSocket {
  readonly ws: WebSocket;
  private nextAck = 1;
  private pending: Map<number, (value: unknown) => void> | undefined;
  private readonly prefixLength: number;
  private connectResolve: (() => void) | undefined;
  private connectReject: ((error: Error) => void) | undefined;
  /** Resolves once the namespace accepted the socket. */
  readonly connected: Promise<void>;
  closed = false;

  constructor(private readonly options: RawSocketOptions) {
    this.prefixLength = 2 + options.nsp.length + 1; // "43" + nsp + ","
    const wsUrl = options.url.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket";
    this.connected = new Promise<void>((resolve, reject) => {
      this.connectResolve = resolve;
      this.connectReject = reject;
    });
    this.connected.catch(() => undefined);
    const timer = setTimeout(() => this.fail(new Error("connect timeout")), options.timeoutMs ?? 30_000);
    void this.connected.then(
      () => clearTimeout(timer),
      () => clearTimeout(timer),
    );
    this.ws = new WebSocket(wsUrl, { perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: options.timeoutMs ?? 30_000 });
    this.ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (!isBinary) this.onFrame(data);
    });
    this.ws.on("error", (error: Error) => this.fail(error));
    this.ws.on("close", () => {
      this.closed = true;
      this.fail(new Error("closed"));
      if (this.pending) {
        for (const resolve of this.pending.values()) resolve({ ok: false, error: { code: "CLOSED" } });
        this.pending = undefined;
      }
    });
  }

  private fail(error: Error): void {
    const reject = this.connectReject;
    this.connectReject = undefined;
    this.connectResolve = undefined;
    reject?.(error);
  }

  private onFrame(data: Buffer): void {
    const c0 = data[0];
    if (c0 === CH_4) {
      const c1 = data[1];
      if (c1 === CH_2) {
        this.options.onEvent(data, this);
      } else if (c1 === CH_3) {
        this.onAck(data);
      } else if (c1 === CH_0) {
        const resolve = this.connectResolve;
        this.connectResolve = undefined;
        this.connectReject = undefined;
        resolve?.();
      } else if (c1 === CH_4) {
        this.fail(new Error(`connect_error ${data.toString("utf8", this.prefixLength).slice(0, 200)}`));
      } else if (c1 === CH_1) {
        this.fail(new Error("disconnected by server"));
      }
    } else if (c0 === CH_2) {
      this.ws.send("3");
    } else if (c0 === CH_0) {
      this.ws.send(`40${this.options.nsp},${JSON.stringify({ token: this.options.token })}`);
    } else if (c0 === CH_1) {
      this.ws.terminate();
    }
  }

  private onAck(data: Buffer): void {
    const text = data.toString("utf8", this.prefixLength);
    const bracket = text.indexOf("[");
    const id = Number(text.slice(0, bracket));
    const resolve = this.pending?.get(id);
    if (!resolve) return;
    this.pending!.delete(id);
    let args: unknown[] = [];
    try {
      args = JSON.parse(text.slice(bracket)) as unknown[];
    } catch {
      // a malformed ack resolves as undefined
    }
    resolve(args[0]);
  }

  /** Emits `event` with an acknowledgement and resolves with the ack's first argument. */
  emitWithAck(event: string, payload: unknown, timeoutMs = 30_000): Promise<unknown> {
    const id = this.nextAck++;
    this.pending ??= new Map();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (this.pending?.delete(id)) resolve({ ok: false, error: { code: "ACK_TIMEOUT" } });
      }, timeoutMs);
      this.pending!.set(id, (value) => {
        clearTimeout(timer);
        resolve(value);
      });
      this.ws.send(`42${this.options.nsp},${id}${JSON.stringify([event, payload])}`);
    });
  }

  /** Drops the connection at once (no close handshake): cheapest way to tear down thousands of sockets. */
  terminate(): void {
    this.closed = true;
    this.ws.terminate();
  }
}

/** The event name and JSON payload of an EVENT frame `42/nsp,["name",payload]`. */
export function parseEvent(frame: Buffer, nspLength: number): [string, unknown] | undefined {
  try {
    const args = JSON.parse(frame.toString("utf8", 2 + nspLength + 1)) as unknown[];
    return [String(args[0]), args[1]];
  } catch {
    return undefined;
  }
}

/** The event name of an EVENT frame without parsing the payload. */
export function eventName(frame: Buffer, nspLength: number): string {
  const start = 2 + nspLength + 1 + 2; // 42/nsp,["
  const end = frame.indexOf(0x22, start); // closing quote
  return frame.toString("latin1", start, end);
}

export interface OpenResult {
  sockets: RawSocket[];
  connected: number;
  subscribed: number;
  failed: number;
  errors: string[];
  acks: unknown[];
  ms: number;
}

/**
 * Opens `count` sockets with at most `concurrency` handshakes in flight; socket i subscribes to
 * `roomOf(i)` (with `after` when given). Failures are counted, not thrown.
 */
export async function openMany(options: {
  url: string;
  nsp: string;
  token: string;
  count: number;
  concurrency: number;
  roomOf: (i: number) => string | undefined;
  after?: string;
  onEvent: EventHandler;
  keepAcks?: number;
}): Promise<OpenResult> {
  const started = performance.now();
  const result: Omit<OpenResult, "ms"> = { sockets: [], connected: 0, subscribed: 0, failed: 0, errors: [], acks: [] };
  let next = 0;
  const one = async (i: number): Promise<void> => {
    const socket = new RawSocket({ url: options.url, nsp: options.nsp, token: options.token, onEvent: options.onEvent });
    try {
      await socket.connected;
      result.connected++;
      const room = options.roomOf(i);
      if (room !== undefined) {
        const ack = (await socket.emitWithAck("subscribe", options.after ? { room, after: options.after } : { room })) as {
          ok?: boolean;
          error?: unknown;
        };
        if (!ack?.ok) throw new Error(`subscribe ${room} refused: ${JSON.stringify(ack).slice(0, 200)}`);
        result.subscribed++;
        if (result.acks.length < (options.keepAcks ?? 1)) result.acks.push(ack);
      }
      result.sockets.push(socket);
    } catch (error) {
      result.failed++;
      if (result.errors.length < 5) result.errors.push((error as Error).message);
      socket.terminate();
    }
  };
  const lanes = Array.from({ length: Math.min(options.concurrency, options.count) }, async () => {
    while (next < options.count) await one(next++);
  });
  await Promise.all(lanes);
  return { ...result, ms: performance.now() - started };
}
