/** A refused or failed REST call: the server's error code and message (UNAVAILABLE when no answer came). */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly status: number | undefined,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** Token errors: the sign-in screen takes over. */
export const SIGN_IN_CODES: ReadonlySet<string> = new Set([
  "TOKEN_MISSING",
  "TOKEN_INVALID",
  "TOKEN_EXPIRED",
  "CLAIMS_INVALID",
  "TOKEN_REVOKED",
  "UNAUTHORIZED",
]);

/** The node's REST API, same origin, with the tab's token. A 401 ends the session (the token is no good). */
export class Api {
  constructor(
    private readonly token: string,
    private readonly onUnauthorized: (error: ApiError) => void = () => undefined,
  ) {}

  get<T>(path: string): Promise<T> {
    return this.request<T>("GET", path);
  }

  post<T>(path: string, body: unknown, headers: Record<string, string> = {}): Promise<T> {
    return this.request<T>("POST", path, body, headers);
  }

  /** Any other method (PATCH, …). */
  async request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    let response: Response;
    try {
      response = await fetch(path, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
      });
    } catch (error) {
      throw new ApiError(`the node did not answer (${(error as Error).message})`, "UNAVAILABLE", undefined);
    }
    let answer: unknown;
    try {
      answer = await response.json();
    } catch {
      answer = undefined;
    }
    if (!response.ok) {
      const error = (answer as { error?: { code?: string; message?: string } } | undefined)?.error;
      const failure = new ApiError(error?.message ?? response.statusText, error?.code ?? "UNAVAILABLE", response.status);
      if (response.status === 401) this.onUnauthorized(failure);
      throw failure;
    }
    return answer as T;
  }
}
