/**
 * Load and chaos for the fault-injection tests: node settings, a submitter that keeps going while nodes die, a
 * fleet whose nodes are killed -9 and replaced, and a client helper that records a room.
 */
import { randomBytes } from "node:crypto";
import type { Envelope, SwitchyardClient } from "../../src/client/index.js";
import type { NamespaceName } from "../../src/protocol/namespaces.js";
import { decodeCursor } from "../../src/protocol/cursor.js";
import { startServer, type ServerProcess } from "./server.js";
import { openClient, track } from "./tracked.js";

/**
 * Settings of every node in these tests. RECONCILE_* and OUTBOX_RELAY_AFTER_MS are read by the crash-safe core
 * (a node without them ignores them): the reconciler runs every second and touches tasks unchanged for 2 s;
 * events a crashed node staged are relayed by another node after 2 s.
 */
export const FAULT_NODE_ENV: Readonly<Record<string, string>> = {
  EMBEDDED_WORKER: "true",
  RECONCILE_INTERVAL_MS: "1000",
  RECONCILE_MIN_AGE_MS: "2000",
  OUTBOX_RELAY_AFTER_MS: "2000",
  TASK_LOCK_MS: "3000",
};

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls until `predicate` holds; false (not an exception) after `timeoutMs`. */
export async function eventually(predicate: () => boolean | Promise<boolean>, timeoutMs: number, pollMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return true;
    if (Date.now() > deadline) return false;
    await sleep(pollMs);
  }
}

// ----------------------------------------------------------------------------------------------- submitter

export interface SubmitJob {
  /** The Idempotency-Key: every retry of this job sends the same one (same key = same task). */
  key: string;
  body: Record<string, unknown>;
}

/**
 * Submits tasks the way a careful client does while nodes fail: a network error, a timeout or a 5xx is retried
 * on the next live node with the same Idempotency-Key, until a 202 or `perTaskTimeoutMs`. The list of live node
 * URLs is asked for on every attempt, so replacements are picked up.
 */
export class Submitter {
  /** Idempotency-Key → task id of its 202. */
  readonly accepted = new Map<string, string>();
  /** A 4xx other than 429: the request was refused, so the task does not exist as far as the client knows. */
  readonly rejected: Array<{ key: string; status: number; body: string }> = [];
  /** Still no 202 when the per-task time ran out. */
  readonly unaccepted: Array<{ key: string; lastError: string }> = [];
  /** The same key answered with two different task ids (idempotency broken). */
  readonly conflicting: Array<{ key: string; ids: string[] }> = [];
  attempts = 0;
  networkErrors = 0;
  serverErrors = 0;
  private turn = 0;
  private aborted = false;
  private readonly inFlight = new Map<string, number>();
  private readonly latencies: number[] = [];

  constructor(
    private readonly options: {
      token: string;
      urls: () => string[];
      perTaskTimeoutMs?: number;
      requestTimeoutMs?: number;
    },
  ) {
    track(this, "Submitter", (submitter) => submitter.abort());
  }

  /** Stops every submission still going (a failed test must not leave a submitter retrying in the background). */
  abort(): void {
    this.aborted = true;
  }

  /** Requests sent to `url` that have not been answered yet. */
  inFlightTo(url: string): number {
    return this.inFlight.get(url) ?? 0;
  }

  /** Median time of the answered requests so far (ms), or `fallback` before there are any. */
  medianLatencyMs(fallback = 30): number {
    if (this.latencies.length === 0) return fallback;
    const sorted = [...this.latencies].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
  }

  acceptedIds(): string[] {
    return [...this.accepted.values()];
  }

  /** Submits one job; resolves with its task id, or undefined if it was never accepted. */
  async submit(job: SubmitJob): Promise<string | undefined> {
    const deadline = Date.now() + (this.options.perTaskTimeoutMs ?? 45_000);
    let lastError = "no live node";
    let lastUrl: string | undefined;
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      if (this.aborted) {
        lastError = "aborted";
        break;
      }
      const urls = this.options.urls();
      if (urls.length === 0) {
        await sleep(100);
        continue;
      }
      // Round robin; a retry avoids the node that just failed when there is another.
      let url = urls[this.turn++ % urls.length]!;
      if (url === lastUrl && urls.length > 1) url = urls[this.turn++ % urls.length]!;
      lastUrl = url;
      if (attempt >= 2) await sleep(Math.min(1000, 50 * 2 ** Math.min(attempt - 2, 5)));
      this.attempts++;
      let status: number;
      let text: string;
      this.inFlight.set(url, (this.inFlight.get(url) ?? 0) + 1);
      const sentAt = Date.now();
      try {
        const response = await fetch(`${url}/api/v1/tasks`, {
          method: "POST",
          headers: { authorization: `Bearer ${this.options.token}`, "content-type": "application/json", "idempotency-key": job.key },
          body: JSON.stringify(job.body),
          signal: AbortSignal.timeout(this.options.requestTimeoutMs ?? 10_000),
        });
        status = response.status;
        text = await response.text();
        this.latencies.push(Date.now() - sentAt);
      } catch (error) {
        this.networkErrors++;
        lastError = `${url}: ${(error as Error).message}${(error as { cause?: Error }).cause ? ` (${(error as { cause: Error }).cause.message})` : ""}`;
        continue;
      } finally {
        this.inFlight.set(url, (this.inFlight.get(url) ?? 1) - 1);
      }
      if (status === 202) {
        let id: string | undefined;
        try {
          id = (JSON.parse(text) as { task?: { id?: string } }).task?.id;
        } catch {
          // handled below
        }
        if (!id) {
          lastError = `${url}: 202 without a task id: ${text.slice(0, 200)}`;
          continue;
        }
        const earlier = this.accepted.get(job.key);
        if (earlier !== undefined && earlier !== id) this.conflicting.push({ key: job.key, ids: [earlier, id] });
        this.accepted.set(job.key, id);
        return id;
      }
      if (status >= 500 || status === 429) {
        this.serverErrors++;
        lastError = `${url}: ${status} ${text.slice(0, 300)}`;
        continue;
      }
      this.rejected.push({ key: job.key, status, body: text.slice(0, 300) });
      return undefined;
    }
    this.unaccepted.push({ key: job.key, lastError });
    return undefined;
  }

  /**
   * Submits `jobs` with at most `concurrency` requests in flight. With `intervalMs`, the burst is stretched over
   * jobs × intervalMs (so it lasts as long as the chaos needs) in waves: every concurrency × intervalMs, the next
   * `concurrency` jobs are sent at once, so that `concurrency` requests really are in flight together.
   */
  async burst(jobs: SubmitJob[], options: { concurrency: number; intervalMs?: number }): Promise<void> {
    const started = Date.now();
    const waveEveryMs = options.concurrency * (options.intervalMs ?? 0);
    let next = 0;
    await Promise.all(
      Array.from({ length: options.concurrency }, async () => {
        while (next < jobs.length && !this.aborted) {
          const index = next++;
          const due = started + Math.floor(index / options.concurrency) * waveEveryMs;
          if (due > Date.now()) await sleep(due - Date.now());
          await this.submit(jobs[index]!);
        }
      }),
    );
  }

  /** Problems on the submitting side (none expected: one live node is always there to take the request). */
  problems(): string[] {
    const problems: string[] = [];
    if (this.conflicting.length)
      problems.push(
        `same Idempotency-Key, different task: ${this.conflicting
          .slice(0, 3)
          .map((c) => `${c.key} → ${c.ids.join(" / ")}`)
          .join("; ")}`,
      );
    if (this.rejected.length)
      problems.push(
        `${this.rejected.length} submission(s) refused: ${this.rejected
          .slice(0, 3)
          .map((r) => `${r.status} ${r.body}`)
          .join("; ")}`,
      );
    if (this.unaccepted.length)
      problems.push(
        `${this.unaccepted.length} submission(s) never accepted: ${this.unaccepted
          .slice(0, 3)
          .map((u) => u.lastError)
          .join("; ")}`,
      );
    return problems;
  }

  summary(): string {
    return `${this.accepted.size} accepted in ${this.attempts} request(s) (${this.networkErrors} network error(s)/timeouts, ${this.serverErrors} 5xx/429, ${this.rejected.length} refused, ${this.unaccepted.length} never accepted)`;
  }
}

/** A unique Idempotency-Key per job of a run. */
export function idempotencyKeys(prefix: string, count: number): string[] {
  const run = randomBytes(4).toString("hex");
  return Array.from({ length: count }, (_, i) => `${prefix}-${run}-${i}`);
}

// ---------------------------------------------------------------------------------------------------- fleet

/** Nodes that can be killed -9 and replaced (each replacement on a new port, with a new node id). */
export class NodeFleet {
  readonly live: ServerProcess[] = [];
  /** Every node ever started, with what happened to it. */
  readonly history: Array<{ nodeId: string; url: string; startedAt: number; killedAt?: number; exit?: string }> = [];
  kills = 0;
  private started = 0;

  constructor(
    private readonly label: string,
    private readonly env: Record<string, string>,
  ) {}

  urls(): string[] {
    return this.live.map((n) => n.url);
  }

  async add(): Promise<ServerProcess> {
    const node = await startServer({ ...this.env, NODE_ID: `${this.label}-${++this.started}` });
    this.live.push(node);
    const entry: (typeof this.history)[number] = { nodeId: node.nodeId, url: node.url, startedAt: Date.now() };
    this.history.push(entry);
    void node.exited.then((code) => {
      entry.exit = entry.killedAt !== undefined ? "killed -9" : `exited on its own with ${code}`;
    });
    return node;
  }

  /** Kills that landed while `busy` said the victim was in the middle of something (a request in flight). */
  busyKills = 0;

  /**
   * kill -9 of a random live node, then a replacement. With `busy`, the kill waits (polling, at most `maxWaitMs`)
   * for a moment the victim is in the middle of something, e.g. has submissions in flight, then `jitterMs` more:
   * a kill between two requests tests much less. The victim leaves the live list at the kill, so no new request
   * goes to it.
   */
  async killRandomAndReplace(
    options: { busy?: (url: string) => boolean; maxWaitMs?: number; jitterMs?: () => number } = {},
  ): Promise<void> {
    if (this.live.length === 0) {
      await this.add();
      return;
    }
    const candidate = this.live[Math.floor(Math.random() * this.live.length)]!;
    if (options.busy) {
      const deadline = Date.now() + (options.maxWaitMs ?? 1000);
      while (!options.busy(candidate.url) && Date.now() < deadline) await sleep(1);
      if (options.busy(candidate.url)) this.busyKills++;
    }
    // Seen busy the moment a request was sent; a random delay lands the kill anywhere in the server's handling.
    const jitter = options.jitterMs?.() ?? 0;
    if (jitter > 0) await sleep(jitter);
    const victim = this.live.splice(this.live.indexOf(candidate), 1)[0]!;
    const entry = this.history.find((h) => h.nodeId === victim.nodeId);
    if (entry) entry.killedAt = Date.now();
    await victim.kill();
    this.kills++;
    await this.add();
  }

  /** Nodes that died without being killed by the test (a crash of the node under test). */
  unexpectedExits(): string[] {
    return this.history.filter((h) => h.exit !== undefined && h.killedAt === undefined).map((h) => `${h.nodeId}: ${h.exit}`);
  }

  async killAll(): Promise<void> {
    const nodes = this.live.splice(0);
    for (const node of nodes) {
      const entry = this.history.find((h) => h.nodeId === node.nodeId);
      if (entry) entry.killedAt ??= Date.now();
    }
    await Promise.all(nodes.map((n) => n.kill()));
  }
}

/** Node processes among `nodes` that exited while the test still needed them, with their last log lines. */
export function deadNodes(nodes: ServerProcess[]): string[] {
  return nodes
    .filter((n) => n.process.exitCode !== null || n.process.signalCode !== null)
    .map(
      (n) =>
        `${n.nodeId} exited (${n.process.exitCode ?? n.process.signalCode}); last log: ${n.logs().trim().split("\n").slice(-3).join(" | ").slice(0, 600)}`,
    );
}

// --------------------------------------------------------------------------------------------------- client

export interface RoomWatch {
  client: SwitchyardClient;
  delivered: Envelope[];
  resets: string[];
  errors: string[];
  /** The sequence number the subscription started after. */
  startSeq: number;
  close(): void;
}

/** A SwitchyardClient (the project's client helper) subscribed to one room, recording what it delivers. */
export async function watchRoom(urls: string[], token: string, namespace: NamespaceName, room: string): Promise<RoomWatch> {
  const client = openClient({ urls, namespace, token, socketOptions: { transports: ["websocket"] } });
  const delivered: Envelope[] = [];
  const resets: string[] = [];
  const errors: string[] = [];
  client.onReset((r, reason) => resets.push(`${r}: ${reason}`));
  client.onError((error) => errors.push(error.message));
  try {
    const { cursor } = await client.subscribe(room, (event) => delivered.push(event));
    return { client, delivered, resets, errors, startSeq: decodeCursor(cursor)?.seq ?? 0, close: () => client.close() };
  } catch (error) {
    client.close();
    throw error;
  }
}

// -------------------------------------------------------------------------------------------------- metrics

/** `switchyard_reconciled_total` by action from a node's /metrics (undefined if the node is unreachable). */
export async function reconciledTotals(url: string): Promise<Record<string, number> | undefined> {
  try {
    const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
    const totals: Record<string, number> = {};
    for (const match of text.matchAll(/^switchyard_reconciled_total\{([^}]*)\}\s+([0-9.eE+-]+)$/gm)) {
      const action = /action="([^"]*)"/.exec(match[1]!)?.[1] ?? "?";
      totals[action] = (totals[action] ?? 0) + Number(match[2]);
    }
    return totals;
  } catch {
    return undefined;
  }
}

/** Sums reconciled_total over nodes and formats it for a log line ("metric absent" when no node has it). */
export async function reconciledSummary(urls: string[]): Promise<string> {
  const sum: Record<string, number> = {};
  let reachable = 0;
  for (const url of urls) {
    const totals = await reconciledTotals(url);
    if (!totals) continue;
    reachable++;
    for (const [action, n] of Object.entries(totals)) sum[action] = (sum[action] ?? 0) + n;
  }
  if (reachable === 0) return "switchyard_reconciled_total: no node reachable";
  const entries = Object.entries(sum);
  return entries.length === 0
    ? `switchyard_reconciled_total: no series on ${reachable} live node(s) (nothing reconciled there, or no reconciler)`
    : `switchyard_reconciled_total (live nodes): ${entries.map(([a, n]) => `${a}=${n}`).join(", ")}`;
}
