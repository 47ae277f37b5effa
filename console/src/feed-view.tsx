import { useState } from "preact/hooks";
import { NAMESPACES, type NamespaceName } from "../../src/protocol/namespaces.js";
import type { PublishResponse } from "../../src/protocol/publish.js";
import { brief, clock } from "./format.js";
import { useObservable } from "./observable.js";
import type { Session } from "./session.js";
import { can } from "./token.js";
import { Empty, ErrorLine } from "./ui.js";

/** Rooms worth suggesting for a namespace: its collection and the resources the console knows. */
function suggestions(session: Session, namespace: NamespaceName): string[] {
  const pools = [...session.pools.byId.keys()].map((id) => `pool:${id}`);
  if (namespace === "pools") return ["pools", ...pools];
  if (namespace === "tasks") return ["tasks", ...pools, ...[...session.tasks.byId.keys()].slice(0, 20).map((id) => `task:${id}`)];
  return ["workflows", ...[...session.workflows.byId.keys()].slice(0, 20).map((id) => `workflow:${id}`)];
}

export function FeedView({ session }: { session: Session }) {
  const { feed } = session;
  useObservable(feed);
  const readable = NAMESPACES.filter((ns) => can(session.identity, `${ns}:read`));
  const [namespace, setNamespace] = useState<NamespaceName>(feed.namespace ?? readable[0] ?? "tasks");
  const [room, setRoom] = useState(feed.room ?? namespace);
  const [after, setAfter] = useState("");
  return (
    <section class="feed">
      <form
        class="card toolbar"
        onSubmit={(event) => {
          event.preventDefault();
          void feed.start(namespace, room.trim(), after.trim() || undefined);
        }}
      >
        <label>
          namespace{" "}
          <select
            name="namespace"
            value={namespace}
            onChange={(e) => {
              const next = e.currentTarget.value as NamespaceName;
              setNamespace(next);
              setRoom(next);
            }}
          >
            {readable.map((ns) => (
              <option key={ns} value={ns}>
                /{ns}
              </option>
            ))}
          </select>
        </label>
        <label class="grow">
          room <input name="room" class="mono" list="feed-rooms" value={room} onInput={(e) => setRoom(e.currentTarget.value)} />
          <datalist id="feed-rooms">
            {suggestions(session, namespace).map((r) => (
              <option key={r} value={r} />
            ))}
          </datalist>
        </label>
        <label class="grow">
          after cursor (optional){" "}
          <input name="after" class="mono" placeholder="replay from here" value={after} onInput={(e) => setAfter(e.currentTarget.value)} />
        </label>
        <button type="submit" disabled={!room.trim()}>
          Follow
        </button>
        {feed.following && (
          <button type="button" class="link" onClick={() => feed.stop()}>
            Stop
          </button>
        )}
      </form>
      <ErrorLine error={feed.error} />
      {can(session.identity, "events:publish") && (
        <PublishTestEvent session={session} namespace={feed.namespace ?? namespace} room={feed.room ?? room} />
      )}
      {feed.room !== undefined && (
        <p class="muted feed-status" data-feed-room={feed.room} data-feed-delivered={feed.delivered}>
          {feed.following ? "following" : "stopped"}{" "}
          <code>
            /{feed.namespace} {feed.room}
          </code>{" "}
          · {feed.delivered} event{feed.delivered === 1 ? "" : "s"} delivered · last cursor{" "}
          <code data-feed-cursor>{feed.cursor() ?? "—"}</code>
        </p>
      )}
      {feed.room === undefined && <Empty>Pick a room to follow its events live; give a cursor to replay what came after it first.</Empty>}
      {feed.events.length > 0 && (
        <table class="events">
          <thead>
            <tr>
              <th>cursor</th>
              <th>time</th>
              <th>type</th>
              <th>data</th>
            </tr>
          </thead>
          <tbody>
            {feed.events.map((event) => (
              <tr key={`${event.room}|${event.cursor}`} data-cursor={event.cursor} data-type={event.type}>
                <td class="mono">{event.cursor}</td>
                <td class="mono muted">{clock(event.ts)}</td>
                <td class="mono">{event.type}</td>
                <td class="mono data">{brief(event.data, 160)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/**
 * `POST /api/v1/events`: publishes an event of the operator's own into a room (by default the one followed), to
 * check that it reaches the feed, and any other subscriber, end to end.
 */
function PublishTestEvent({ session, namespace, room }: { session: Session; namespace: NamespaceName; room: string }) {
  const [type, setType] = useState("console.test");
  const [data, setData] = useState('{"hello":"from the console"}');
  const [published, setPublished] = useState<string>();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  return (
    <form
      class="card toolbar publish"
      aria-label="Publish a test event"
      onSubmit={async (event) => {
        event.preventDefault();
        let parsed: unknown;
        try {
          parsed = data.trim() === "" ? null : JSON.parse(data);
        } catch {
          return setError("the data is not JSON");
        }
        setBusy(true);
        try {
          const answer = await session.api.post<PublishResponse>("/api/v1/events", {
            namespace,
            room: room.trim(),
            type: type.trim(),
            data: parsed,
          });
          setPublished(answer.items[0]?.cursor);
          setError(undefined);
        } catch (failure) {
          setError((failure as Error).message);
          setPublished(undefined);
        } finally {
          setBusy(false);
        }
      }}
    >
      <span class="muted">
        Publish to{" "}
        <code>
          /{namespace} {room || "…"}
        </code>
      </span>
      <label>
        type <input name="publishType" class="mono" value={type} onInput={(e) => setType(e.currentTarget.value)} />
      </label>
      <label class="grow">
        data (JSON) <input name="publishData" class="mono" value={data} onInput={(e) => setData(e.currentTarget.value)} />
      </label>
      <button type="submit" data-action="publish" disabled={busy || !room.trim() || !type.trim()}>
        Publish test event
      </button>
      {published && (
        <span class="ok-line" role="status" data-published-cursor={published}>
          published at <code>{published}</code>
        </span>
      )}
      <ErrorLine error={error} />
    </form>
  );
}
