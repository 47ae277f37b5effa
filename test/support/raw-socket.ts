import WebSocket from "ws";

// On globalThis because mocha may load support modules twice (the --require hooks and the specs).
const registry = globalThis as typeof globalThis & { __switchyardRawSockets?: Set<{ terminate(): void }> };
const open = (registry.__switchyardRawSockets ??= new Set<{ terminate(): void }>());

/**
 * A Socket.IO client written by hand on one `ws` WebSocket (Engine.IO v4 / Socket.IO v5 text frames), so a test
 * controls exactly what goes on the wire and when the client stops reading:
 *
 *   <- 0{"sid":...}                              Engine.IO open
 *   -> 40/tasks,{"token":"<jwt>"}                namespace CONNECT with auth
 *   <- 40/tasks,{"sid":"..."}                    accepted (44/tasks,{...} refused)
 *   -> 42/tasks,7["subscribe",{"room":"tasks"}]  EVENT with ack id 7
 *   <- 43/tasks,7[{"ok":true,...}]               its ack
 *   <- 42/tasks,["task.created",{envelope}]      server events
 *   <- 2   -> 3                                  ping / pong (answered while the client reads)
 */
export class RawSocket {
  readonly ws: WebSocket;
  /** Every event frame's name and envelope cursor, in arrival order. */
  readonly events: Array<{ type: string; cursor: string }> = [];
  /** Resolves when the WebSocket is closed, whoever closed it. */
  readonly closed: Promise<void>;
  private nextAck = 1;
  private readonly acks = new Map<number, (value: unknown) => void>();
  private readonly prefix: string;

  private constructor(
    url: string,
    private readonly nsp: string,
  ) {
    this.prefix = `${nsp},`;
    this.ws = new WebSocket(`${url.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`, { perMessageDeflate: false });
    this.closed = new Promise((resolve) => this.ws.once("close", () => resolve()));
    this.ws.on("error", () => undefined);
    open.add(this);
    void this.closed.then(() => open.delete(this));
  }

  /** Opens the WebSocket, connects to `nsp` (e.g. "/tasks") with the token and waits for the namespace to accept. */
  static async connect(url: string, nsp: string, token: string): Promise<RawSocket> {
    const socket = new RawSocket(url, nsp);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("raw socket: no namespace connect within 10 s")), 10_000);
      socket.ws.on("message", (data: Buffer) => {
        const text = data.toString();
        if (text.startsWith("0")) socket.ws.send(`40${nsp},${JSON.stringify({ token })}`);
        else if (text.startsWith(`40${socket.prefix}`)) {
          clearTimeout(timer);
          resolve();
        } else if (text.startsWith(`44${socket.prefix}`)) {
          clearTimeout(timer);
          reject(new Error(`raw socket refused: ${text.slice(0, 200)}`));
        } else socket.onFrame(text);
      });
      void socket.closed.then(() => reject(new Error("raw socket closed before connecting")));
    });
    return socket;
  }

  private onFrame(text: string): void {
    if (text === "2") {
      this.ws.send("3");
    } else if (text.startsWith(`42${this.prefix}`)) {
      const [type, envelope] = JSON.parse(text.slice(2 + this.prefix.length)) as [string, { cursor?: string }];
      this.events.push({ type, cursor: String(envelope?.cursor) });
    } else if (text.startsWith(`43${this.prefix}`)) {
      const body = text.slice(2 + this.prefix.length);
      const bracket = body.indexOf("[");
      const resolve = this.acks.get(Number(body.slice(0, bracket)));
      if (resolve) {
        this.acks.delete(Number(body.slice(0, bracket)));
        resolve((JSON.parse(body.slice(bracket)) as unknown[])[0]);
      }
    }
  }

  /** Sends an event with an ack id; the promise resolves with the ack's first argument (if it ever comes). */
  emitWithAck(event: string, payload: unknown): Promise<unknown> {
    const id = this.nextAck++;
    const answered = new Promise<unknown>((resolve) => this.acks.set(id, resolve));
    this.ws.send(`42${this.nsp},${id}${JSON.stringify([event, payload])}`);
    return answered;
  }

  /** Stops reading from the TCP connection: the server's writes pile up in the kernel, then in the server. */
  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  terminate(): void {
    this.ws.terminate();
  }
}

/** Drops every raw socket a test left open. */
export function closeAllRawSockets(): void {
  for (const socket of open) socket.terminate();
  open.clear();
}

/** What `RawConnection.waitFor` saw first. */
export type RawOutcome = "frame" | "closed" | "timeout";

/**
 * A bare Engine.IO WebSocket connection, nothing on top: it sends any frame, text or binary, well formed or not,
 * records every frame the server sends, and answers pings so that only what a test sends can end it.
 */
export class RawConnection {
  readonly ws: WebSocket;
  /** Every frame received after the Engine.IO open packet, in order (text as strings, binary as Buffers). */
  readonly frames: Array<string | Buffer> = [];
  readonly closed: Promise<void>;
  isClosed = false;
  private readonly changed = new Set<() => void>();

  private constructor(url: string) {
    this.ws = new WebSocket(`${url.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`, { perMessageDeflate: false });
    this.closed = new Promise((resolve) =>
      this.ws.once("close", () => {
        this.isClosed = true;
        this.notify();
        resolve();
      }),
    );
    // A server that closes while a large frame is still being written makes the write fail: that is a close too.
    this.ws.on("error", () => undefined);
    open.add(this);
    void this.closed.then(() => open.delete(this));
  }

  /** Opens the WebSocket and waits for the Engine.IO open packet (`0{"sid":…}`). */
  static async open(url: string): Promise<RawConnection> {
    const connection = new RawConnection(url);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("raw connection: no Engine.IO open packet within 10 s")), 10_000);
      connection.ws.on("message", (data: Buffer, isBinary: boolean) => {
        const frame = isBinary ? data : data.toString();
        if (typeof frame === "string" && frame.startsWith("0{")) {
          clearTimeout(timer);
          resolve();
        } else if (frame === "2") connection.send("3");
        else {
          connection.frames.push(frame);
          connection.notify();
        }
      });
      void connection.closed.then(() => reject(new Error("raw connection closed before the Engine.IO open packet")));
    });
    return connection;
  }

  /** Sends a frame as it is (a Buffer as a binary frame unless `asText`: invalid UTF-8 in a text frame). Nothing once closed. */
  send(frame: string | Buffer, options: { asText?: boolean } = {}): void {
    if (this.isClosed || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(frame, { binary: typeof frame !== "string" && !options.asText }, () => undefined);
  }

  /** Resolves once a received frame (from index `from` on) matches, the connection is closed, or the time is up. */
  waitFor(match: (frame: string | Buffer) => boolean, timeoutMs: number, from = 0): Promise<RawOutcome> {
    return new Promise((resolve) => {
      const check = (): void => {
        const outcome: RawOutcome | undefined = this.frames.slice(from).some(match) ? "frame" : this.isClosed ? "closed" : undefined;
        if (!outcome) return;
        clearTimeout(timer);
        this.changed.delete(check);
        resolve(outcome);
      };
      const timer = setTimeout(() => {
        this.changed.delete(check);
        resolve("timeout");
      }, timeoutMs);
      this.changed.add(check);
      check();
    });
  }

  terminate(): void {
    this.ws.terminate();
  }

  private notify(): void {
    for (const check of [...this.changed]) check();
  }
}
