import { useEffect, useState } from "preact/hooks";
import type { NodesResponse, NodeView } from "../../src/protocol/nodes.js";
import type { RevokeResponse } from "../../src/protocol/revocations.js";
import { age } from "./format.js";
import type { Session } from "./session.js";
import { Empty, ErrorLine, useNow } from "./ui.js";

const REFRESH_MS = 2000;

/** `GET /api/v1/nodes`, read again every 2 s while the view is open (each node publishes its reading that often). */
function useNodes(session: Session): { nodes: NodeView[] | undefined; error: string | undefined } {
  const [nodes, setNodes] = useState<NodeView[]>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    let alive = true;
    const read = (): void => {
      session.api.get<NodesResponse>("/api/v1/nodes").then(
        (answer) => {
          if (!alive) return;
          setNodes(answer.items);
          setError(undefined);
        },
        (failure: Error) => alive && setError(failure.message),
      );
    };
    read();
    const timer = setInterval(read, REFRESH_MS);
    return () => {
      alive = false;
      clearInterval(timer);
    };
  }, []);
  return { nodes, error };
}

/** The hub's nodes and this tenant's connections on each, and the tenant's tokens (revocation). */
export function NodesView({ session }: { session: Session }) {
  const { nodes, error } = useNodes(session);
  const now = useNow();
  return (
    <section class="nodes">
      <div class="card">
        <h2>Nodes and connections</h2>
        <p class="muted">Every live node of the hub; sockets and events/s are this tenant's own on each node.</p>
        <ErrorLine error={error} />
        {nodes === undefined && !error && <p class="muted">Loading…</p>}
        {nodes?.length === 0 && <Empty>No node has published a reading yet.</Empty>}
        {nodes && nodes.length > 0 && (
          <table class="node-table">
            <thead>
              <tr>
                <th scope="col">node</th>
                <th scope="col">version</th>
                <th scope="col">up</th>
                <th scope="col">/pools</th>
                <th scope="col">/tasks</th>
                <th scope="col">/workflows</th>
                <th scope="col">events/s</th>
                <th scope="col">all tenants' sockets</th>
              </tr>
            </thead>
            <tbody>
              {nodes.map((node) => (
                <tr
                  key={node.nodeId}
                  data-node-id={node.nodeId}
                  data-sockets={node.sockets.pools + node.sockets.tasks + node.sockets.workflows}
                >
                  <td class="mono">
                    {node.nodeId}
                    {node.self && <span class="chip chip-light"> this tab's node</span>}
                  </td>
                  <td class="mono">{node.version}</td>
                  <td>{age(node.startedAt, now)}</td>
                  <td class="num" data-namespace="pools">
                    {node.sockets.pools}
                  </td>
                  <td class="num" data-namespace="tasks">
                    {node.sockets.tasks}
                  </td>
                  <td class="num" data-namespace="workflows">
                    {node.sockets.workflows}
                  </td>
                  <td class="num" data-events-per-second>
                    {node.eventsPerSecond ?? "—"}
                  </td>
                  <td class="num muted">{node.totalSockets}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
      <RevokeToken session={session} />
    </section>
  );
}

/** `POST /api/v1/tokens/revoke`: one token by its jti, or every token of a subject issued until now. */
function RevokeToken({ session }: { session: Session }) {
  const [kind, setKind] = useState<"jti" | "sub">("jti");
  const [value, setValue] = useState("");
  const [error, setError] = useState<string>();
  const [done, setDone] = useState<RevokeResponse["revoked"]>();
  const [busy, setBusy] = useState(false);
  return (
    <form
      class="card revoke"
      onSubmit={async (event) => {
        event.preventDefault();
        setBusy(true);
        try {
          const { revoked } = await session.api.post<RevokeResponse>("/api/v1/tokens/revoke", { [kind]: value.trim() });
          setDone(revoked);
          setError(undefined);
          setValue("");
        } catch (failure) {
          setError((failure as Error).message);
          setDone(undefined);
        } finally {
          setBusy(false);
        }
      }}
    >
      <h2>Revoke a token</h2>
      <p class="muted">
        Every node refuses it from now on and ends its open sessions. A subject revokes every token of that subject issued until now.
      </p>
      <div class="toolbar">
        <label>
          by
          <select name="revokeKind" value={kind} onChange={(e) => setKind(e.currentTarget.value as "jti" | "sub")}>
            <option value="jti">token id (jti)</option>
            <option value="sub">subject (sub)</option>
          </select>
        </label>
        <label class="grow">
          {kind === "jti" ? "jti" : "sub"}
          <input name="revokeValue" class="mono" value={value} onInput={(e) => setValue(e.currentTarget.value)} />
        </label>
        <button type="submit" class="danger" data-action="revoke" disabled={busy || !value.trim()}>
          Revoke
        </button>
      </div>
      {done && (
        <p class="ok-line" role="status" data-revoked={"jti" in done ? done.jti : done.sub}>
          Revoked {"jti" in done ? `token ${done.jti}` : `subject ${done.sub}`} at{" "}
          {new Date(done.at).toLocaleTimeString([], { hour12: false })}.
        </p>
      )}
      <ErrorLine error={error} />
    </form>
  );
}
