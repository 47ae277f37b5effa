/** Tiny JSON-over-fetch helper for the REST API. */

/**
 * A response body as tests read it: whatever JSON.parse returned (or the text of a non-JSON body). Tests assert
 * bodies whole with deepEqual or read the fields they expect; `unknown` would need a cast at each of some 260 reads
 * in 33 files, which adds no safety (eslint.config.js turns the no-unsafe-* rules off in test/ for the same reason).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- deliberate: see the comment above
export type JsonBody = any;

export interface ApiResponse<T = JsonBody> {
  status: number;
  body: T;
  headers: Headers;
}

export async function api<T = JsonBody>(
  baseUrl: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; rawBody?: string; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.rawBody !== undefined) body = options.rawBody;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined && !headers["content-type"]) headers["content-type"] = "application/json";
  // A timeout turns a request that never answers into a failure that says so (AbortSignal's TimeoutError).
  const signal = options.timeoutMs === undefined ? undefined : AbortSignal.timeout(options.timeoutMs);
  const response = await fetch(`${baseUrl}${path}`, { method, headers, body, signal });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Non-JSON bodies (e.g. /metrics) stay text.
  }
  return { status: response.status, body: parsed as T, headers: response.headers };
}

/** `POST /api/v1/pools { name }`: the new pool's id (throws unless 201). */
export async function createPool(baseUrl: string, token: string, name: string): Promise<string> {
  const response = await api(baseUrl, "POST", "/api/v1/pools", { token, body: { name } });
  if (response.status !== 201) throw new Error(`creating pool ${name}: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body.pool.id as string;
}

/**
 * Every stored event of a room after `after` (from its start without one), following `nextCursor` while the
 * history says `hasMore`: a page stops early at MAX_RESPONSE_BYTES of event data.
 */
export async function roomHistory<E = { cursor: string }>(
  baseUrl: string,
  token: string,
  namespace: string,
  room: string,
  after?: string,
): Promise<E[]> {
  const events: E[] = [];
  let cursor = after;
  for (;;) {
    const page = await api(
      baseUrl,
      "GET",
      `/api/v1/events?namespace=${namespace}&room=${encodeURIComponent(room)}&limit=1000${cursor ? `&after=${cursor}` : ""}`,
      { token },
    );
    if (page.status !== 200) throw new Error(`history of ${room}: ${page.status} ${JSON.stringify(page.body).slice(0, 300)}`);
    events.push(...(page.body.items as E[]));
    if (!page.body.hasMore) return events;
    cursor = page.body.nextCursor as string;
  }
}
