import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import type { ConnectionState } from "../../src/client/index.js";

/** The current time, ticking every second: ages ("heartbeat 3 s ago") move on their own. */
export function useNow(): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  return now;
}

export function Badge({ status }: { status: string }) {
  return <span class={`badge badge-${status}`}>{status}</span>;
}

/** `value` null: no progress reported yet for this attempt. */
export function ProgressBar({ value, detail }: { value: number | null; detail?: string | null }) {
  const percent = value === null ? 0 : Math.max(0, Math.min(100, value));
  return (
    <div class="progress" title={detail ?? undefined} data-progress={value === null ? "" : String(percent)}>
      <div class="progress-fill" style={{ width: `${percent}%` }} />
      <span class="progress-text">{value === null ? "—" : `${Math.round(percent)}%`}</span>
    </div>
  );
}

const CONNECTION_LABELS: Record<ConnectionState, string> = {
  connecting: "connecting",
  "catching-up": "catching up",
  live: "live",
  reconnecting: "reconnecting",
  disconnected: "offline",
};

export function ConnectionIndicator({ state }: { state: ConnectionState }) {
  return (
    <span class={`connection connection-${state}`} data-connection={state} role="status" aria-live="polite">
      <span class="connection-dot" />
      {CONNECTION_LABELS[state]}
    </span>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>;
}

/** A one-line error under a form or an action. */
export function ErrorLine({ error }: { error: string | undefined }) {
  return error ? (
    <p class="error-line" role="alert">
      {error}
    </p>
  ) : null;
}

/**
 * Said at the top of every view while the node is not reachable: what is shown may be stale, and what the
 * operator does now may not go through. The indicator in the header says the same in one word.
 */
export function OfflineBanner({ state }: { state: ConnectionState }) {
  if (state !== "disconnected" && state !== "reconnecting") return null;
  return (
    <div class="offline-banner" role="alert" data-offline={state}>
      <strong>Offline.</strong> The node is not answering; {state === "reconnecting" ? "reconnecting by itself" : "reload to try again"}.
      What is shown may be out of date, and actions may fail until it is back.
    </div>
  );
}

/**
 * A control's request to the node: `busy` while it runs (its buttons disabled), and the refusal's message kept
 * in `error` until the next request succeeds. `run` never throws.
 */
export function useAction(): {
  busy: boolean;
  error: string | undefined;
  setError: (error: string | undefined) => void;
  run: (request: () => Promise<unknown>) => Promise<void>;
} {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const run = async (request: () => Promise<unknown>): Promise<void> => {
    setBusy(true);
    try {
      await request();
      setError(undefined);
    } catch (failure) {
      setError((failure as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, setError, run };
}
