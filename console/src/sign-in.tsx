import { useState } from "preact/hooks";
import type { SessionEnd } from "./session.js";

/** Paste a token (or open `/dashboard/#token=<jwt>`); a refused one comes back here with the server's code. */
export function SignIn({ error, busy, onSubmit }: { error: SessionEnd | undefined; busy: boolean; onSubmit: (token: string) => void }) {
  const [token, setToken] = useState("");
  return (
    <main class="sign-in">
      <form
        class="sign-in-card"
        onSubmit={(event) => {
          event.preventDefault();
          if (token.trim()) onSubmit(token.trim());
        }}
      >
        <h1>
          Switchyard <span class="muted">console</span>
        </h1>
        <p class="muted">Pools, workers, tasks and workflows of one tenant, live. Sign in with a token of that tenant.</p>
        {error && (
          <div class="sign-in-error" role="alert" data-error-code={error.code}>
            <strong>{error.code}</strong> {error.message}
          </div>
        )}
        <label for="token">Token (JWT)</label>
        <textarea
          id="token"
          name="token"
          rows={5}
          spellcheck={false}
          autocomplete="off"
          placeholder="eyJhbGciOi…"
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
        />
        <button type="submit" disabled={busy || !token.trim()}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <p class="hint">
          Mint one with <code>npm run -s token -- --tenant acme --permissions admin</code>, or open{" "}
          <code>/dashboard/#token=&lt;jwt&gt;</code>. The token is kept in this tab only (sessionStorage) and removed from the address bar.
        </p>
      </form>
    </main>
  );
}
