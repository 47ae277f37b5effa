import { useState } from "preact/hooks";
import type { WorkerView } from "../../src/client/index.js";
import { age, shortId } from "./format.js";
import { useObservable } from "./observable.js";
import type { PoolEntry } from "./pools-store.js";
import type { Session } from "./session.js";
import type { TaskStore } from "./tasks-store.js";
import { can } from "./token.js";
import { Badge, Empty, ErrorLine, useAction, useNow } from "./ui.js";

const WORKER_ORDER: Record<WorkerView["status"], number> = { busy: 0, idle: 1, draining: 2, error: 3, offline: 4 };

export function PoolsView({ session }: { session: Session }) {
  useObservable(session.pools, session.tasks);
  const now = useNow();
  const pools = session.pools.list();
  const mayScale = can(session.identity, "pools:write");
  return (
    <section class="pools">
      {pools.length === 0 && <Empty>No pools yet.</Empty>}
      {pools.map((entry) => (
        <PoolCard
          key={entry.pool.id}
          entry={entry}
          tasks={session.tasks}
          now={now}
          session={mayScale ? session : undefined}
          onScale={mayScale ? (n) => scale(session, entry.pool.id, n) : undefined}
        />
      ))}
    </section>
  );
}

async function scale(session: Session, poolId: string, desiredWorkers: number): Promise<void> {
  await session.api.post(`/api/v1/pools/${encodeURIComponent(poolId)}/scale`, { desiredWorkers });
}

function PoolCard({
  entry,
  tasks,
  now,
  session,
  onScale,
}: {
  entry: PoolEntry;
  tasks: TaskStore;
  now: number;
  /** Given when the token may change pools (pause, resume, concurrency). */
  session: Session | undefined;
  onScale: ((n: number) => Promise<void>) | undefined;
}) {
  const { pool, status } = entry;
  const workers = [...entry.workers.values()].sort((a, b) => WORKER_ORDER[a.status] - WORKER_ORDER[b.status] || a.id.localeCompare(b.id));
  // Counted from the workers themselves: pool.status_changed is coalesced, so it can lag a change behind.
  const counts = countByStatus(workers);
  return (
    <article class="card pool" data-pool-id={pool.id} data-status={pool.status} data-paused={String(pool.paused ?? false)}>
      <header class="card-head">
        <div>
          <h2>{pool.name}</h2>
          <span class="muted mono" title={pool.id}>
            {pool.id}
          </span>
        </div>
        <span class="badges">
          {pool.paused && <Badge status="paused" />}
          <Badge status={pool.status} />
        </span>
      </header>
      <div class="pool-facts">
        <span>
          desired <strong data-desired-workers>{pool.desiredWorkers}</strong>
        </span>
        <span>
          idle <strong>{counts.idle}</strong> · busy <strong>{counts.busy}</strong> · offline <strong>{counts.offline}</strong>
        </span>
        <span>
          queued <strong>{status?.queueDepth ?? "—"}</strong>
        </span>
        <span>
          at most <strong data-max-concurrency={pool.maxConcurrency ?? ""}>{pool.maxConcurrency ?? "∞"}</strong> running
        </span>
        {onScale && <ScaleControl current={pool.desiredWorkers} onScale={onScale} />}
      </div>
      {session && (
        <PoolControls session={session} poolId={pool.id} paused={pool.paused ?? false} maxConcurrency={pool.maxConcurrency ?? null} />
      )}
      {workers.length === 0 ? (
        <Empty>
          No workers have connected. Start one with <code>npm run worker -- --pool {pool.id}</code>.
        </Empty>
      ) : (
        <table class="workers">
          <thead>
            <tr>
              <th>worker</th>
              <th>status</th>
              <th>current task</th>
              <th>heartbeat</th>
              <th>node</th>
            </tr>
          </thead>
          <tbody>
            {workers.map((worker) => {
              const current = worker.status === "offline" ? undefined : tasks.currentOf(worker.id);
              return (
                <tr
                  key={worker.id}
                  data-worker-id={worker.id}
                  data-status={worker.status}
                  class={worker.status === "offline" ? "offline" : undefined}
                >
                  <td class="mono">{worker.id}</td>
                  <td>
                    <Badge status={worker.status} />
                    {worker.detail && <span class="muted"> {worker.detail}</span>}
                  </td>
                  <td class="mono" data-current-task={current?.task.id ?? ""}>
                    {current ? (
                      <span title={current.task.id}>
                        {shortId(current.task.id)} {current.task.type}
                      </span>
                    ) : (
                      <span class="muted">—</span>
                    )}
                  </td>
                  <td>
                    {worker.status === "offline" ? (
                      <span class="muted">offline since {age(worker.lastHeartbeatAt, now)}</span>
                    ) : (
                      `${age(worker.lastHeartbeatAt, now)} ago`
                    )}
                  </td>
                  <td class="muted">{worker.node ?? "—"}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </article>
  );
}

function countByStatus(workers: WorkerView[]): Record<WorkerView["status"], number> {
  const counts: Record<WorkerView["status"], number> = { idle: 0, busy: 0, error: 0, draining: 0, offline: 0 };
  for (const worker of workers) counts[worker.status]++;
  return counts;
}

function ScaleControl({ current, onScale }: { current: number; onScale: (n: number) => Promise<void> }) {
  const [value, setValue] = useState(String(current));
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  return (
    <form
      class="scale"
      onSubmit={async (event) => {
        event.preventDefault();
        const desired = Number(value);
        if (!Number.isInteger(desired) || desired < 0) return setError("a whole number of workers, 0 or more");
        setBusy(true);
        try {
          await onScale(desired);
          setError(undefined);
        } catch (failure) {
          setError((failure as Error).message);
        } finally {
          setBusy(false);
        }
      }}
    >
      <input type="number" min={0} aria-label="desired workers" value={value} onInput={(e) => setValue(e.currentTarget.value)} />
      <button type="submit" disabled={busy}>
        Scale
      </button>
      <ErrorLine error={error} />
    </form>
  );
}

/**
 * Pause or resume the pool (`POST /api/v1/pools/:id/pause|resume`: a paused pool starts no new task, running ones
 * finish) and bound how many of its tasks run at once (`PATCH /api/v1/pools/:id { maxConcurrency }`, empty for
 * unbounded). The card changes when the pool's `pool.updated` event arrives.
 */
function PoolControls({
  session,
  poolId,
  paused,
  maxConcurrency,
}: {
  session: Session;
  poolId: string;
  paused: boolean;
  maxConcurrency: number | null;
}) {
  const [limit, setLimit] = useState(maxConcurrency === null ? "" : String(maxConcurrency));
  const { busy, error, setError, run } = useAction();
  const path = `/api/v1/pools/${encodeURIComponent(poolId)}`;
  return (
    <form
      class="pool-controls toolbar"
      onSubmit={(event) => {
        event.preventDefault();
        const value = limit.trim() === "" ? null : Number(limit);
        if (value !== null && (!Number.isInteger(value) || value < 1))
          return setError("a whole number of tasks, 1 or more (empty: no limit)");
        void run(() => session.api.request("PATCH", path, { maxConcurrency: value }));
      }}
    >
      {paused ? (
        <button
          type="button"
          class="secondary"
          data-action="resume"
          disabled={busy}
          onClick={() => void run(() => session.api.post(`${path}/resume`, {}))}
        >
          Resume
        </button>
      ) : (
        <button
          type="button"
          class="secondary danger-text"
          data-action="pause"
          disabled={busy}
          onClick={() => void run(() => session.api.post(`${path}/pause`, {}))}
        >
          Pause
        </button>
      )}
      <label>
        max running
        <input
          type="number"
          min={1}
          name="maxConcurrency"
          class="narrow"
          placeholder="no limit"
          value={limit}
          onInput={(e) => setLimit(e.currentTarget.value)}
        />
      </label>
      <button type="submit" class="secondary" data-action="set-concurrency" disabled={busy}>
        Set
      </button>
      <ErrorLine error={error} />
    </form>
  );
}
