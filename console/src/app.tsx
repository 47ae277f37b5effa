import { useEffect, useState } from "preact/hooks";
import { Api, ApiError, SIGN_IN_CODES } from "./api.js";
import { ActivityCharts } from "./charts.js";
import { FeedView } from "./feed-view.js";
import { NodesView } from "./nodes-view.js";
import { useObservable } from "./observable.js";
import { PoolsView } from "./pools-view.js";
import { currentRoute, type Route } from "./route.js";
import { SchedulesView } from "./schedules-view.js";
import { Session, type SessionEnd } from "./session.js";
import { SignIn } from "./sign-in.js";
import { TasksView } from "./tasks-view.js";
import { can, decodeIdentity, forgetToken, storedToken, storeToken, takeTokenFromFragment, type Identity } from "./token.js";
import { ConnectionIndicator, OfflineBanner } from "./ui.js";
import { WorkflowsView } from "./workflows-view.js";

type View = "pools" | "tasks" | "schedules" | "workflows" | "events" | "activity" | "nodes";
const VIEWS: Array<{ view: View; label: string; needs: (identity: Identity) => boolean }> = [
  { view: "pools", label: "Pools & workers", needs: (i) => can(i, "pools:read") },
  { view: "tasks", label: "Tasks", needs: (i) => can(i, "tasks:read") },
  { view: "schedules", label: "Schedules", needs: (i) => can(i, "tasks:read") },
  { view: "workflows", label: "Workflows", needs: (i) => can(i, "workflows:read") },
  { view: "events", label: "Event feed", needs: (i) => can(i, "pools:read") || can(i, "tasks:read") || can(i, "workflows:read") },
  { view: "activity", label: "Activity", needs: (i) => can(i, "tasks:read") },
  { view: "nodes", label: "Nodes & access", needs: (i) => can(i, "admin") },
];

/**
 * Asks the node whether it takes the token before anything opens: a 401 carries the reason (TOKEN_EXPIRED, …).
 * Any route does; a 403 (the token lacks tasks:read) still means the token itself is good.
 */
async function verify(token: string): Promise<SessionEnd | undefined> {
  try {
    await new Api(token).get("/api/v1/tasks?limit=1");
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || SIGN_IN_CODES.has(error.code)))
      return { code: error.code, message: error.message };
    if (error instanceof ApiError && error.status === 403) return undefined;
    return { code: error instanceof ApiError ? error.code : "UNAVAILABLE", message: (error as Error).message };
  }
  return undefined;
}

export function App() {
  const [session, setSession] = useState<Session>();
  const [error, setError] = useState<SessionEnd>();
  const [busy, setBusy] = useState(false);

  /** A `#token=` link's token, waiting for the signed-in operator to accept it (it would replace their session). */
  const [offered, setOffered] = useState<string>();

  const signIn = async (token: string): Promise<boolean> => {
    setBusy(true);
    const refused = await verify(token);
    setBusy(false);
    if (refused) {
      forgetToken();
      setError(refused);
      return false;
    }
    storeToken(token);
    const identity = decodeIdentity(token) ?? { tenant: "?", sub: "?", permissions: [], expiresAt: undefined };
    const next = new Session(token, identity, (end) => {
      forgetToken();
      setSession(undefined);
      setError(end);
    });
    next.start();
    setError(undefined);
    setSession(next);
    return true;
  };

  useEffect(() => {
    const linked = takeTokenFromFragment();
    const stored = storedToken();
    // A link must not silently swap the tab's session for another identity (a crafted link would sign the operator
    // in as someone else, and what they then do would land there): keep the session and ask.
    if (linked && stored && linked !== stored) {
      void signIn(stored).then((kept) => {
        if (kept) setOffered(linked);
        else void signIn(linked);
      });
      return;
    }
    const token = linked ?? stored;
    if (token) void signIn(token);
  }, []);

  if (!session) return <SignIn error={error} busy={busy} onSubmit={(token) => void signIn(token)} />;
  const switchTo = offered;
  return (
    <Shell
      offer={
        switchTo === undefined
          ? undefined
          : {
              identity: decodeIdentity(switchTo),
              accept: () => {
                setOffered(undefined);
                session.close();
                setSession(undefined);
                void signIn(switchTo);
              },
              decline: () => setOffered(undefined),
            }
      }
      session={session}
      onSignOut={() => {
        session.close();
        forgetToken();
        setSession(undefined);
      }}
    />
  );
}

/** A `#token=` link offered while signed in: whose token it is, and the two answers. */
interface LinkOffer {
  identity: Identity | undefined;
  accept: () => void;
  decline: () => void;
}

function SwitchOffer({ offer, current }: { offer: LinkOffer; current: Identity }) {
  const who = offer.identity ? `tenant ${offer.identity.tenant} · ${offer.identity.sub}` : "a token that cannot be read";
  return (
    <div class="card switch-offer" role="alertdialog" aria-labelledby="switch-offer-text" data-switch-offer>
      <p id="switch-offer-text">
        A link asks to sign this tab in as <strong>{who}</strong>, in place of tenant <strong>{current.tenant}</strong> · {current.sub}.
      </p>
      <button type="button" data-action="accept-switch" onClick={offer.accept}>
        Sign in as {offer.identity?.sub ?? "the link's token"}
      </button>{" "}
      <button type="button" class="link" data-action="decline-switch" onClick={offer.decline}>
        Stay signed in as {current.sub}
      </button>
    </div>
  );
}

function Shell({ session, onSignOut, offer }: { session: Session; onSignOut: () => void; offer: LinkOffer | undefined }) {
  useObservable(session.connection, session.notices);
  const offered = VIEWS.filter((v) => v.needs(session.identity));
  const [route, setRoute] = useState<Route>(() => currentRoute());
  useEffect(() => {
    const onHash = (): void => setRoute(currentRoute());
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, []);
  const current = offered.find((v) => v.view === route.view) ?? offered[0];
  const routeId = current?.view === route.view ? route.id : undefined;
  const { identity } = session;
  return (
    <div class="shell">
      <header class="top">
        <span class="brand">Switchyard</span>
        <span class="identity" data-tenant={identity.tenant}>
          tenant <strong>{identity.tenant}</strong> · {identity.sub}
        </span>
        <span class="permissions">
          {identity.permissions.map((p) => (
            <span class="chip" key={p}>
              {p}
            </span>
          ))}
        </span>
        <span class="spacer" />
        <ConnectionIndicator state={session.connection.state} />
        <button class="link" type="button" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      {offer && <SwitchOffer offer={offer} current={identity} />}
      <nav class="tabs">
        {offered.map((v) => (
          <a
            key={v.view}
            href={`#${v.view}`}
            class={v === current ? "tab active" : "tab"}
            data-view={v.view}
            aria-current={v === current ? "page" : undefined}
          >
            {v.label}
          </a>
        ))}
      </nav>
      <OfflineBanner state={session.connection.state} />
      {session.notices.message && (
        <p class="notice" role="alert">
          {session.notices.message}
        </p>
      )}
      <main class="view" data-current-view={current?.view}>
        {!current && <p class="empty">This token may not read pools, tasks or workflows.</p>}
        {current?.view === "pools" && <PoolsView session={session} />}
        {current?.view === "tasks" && <TasksView session={session} openTaskId={routeId} />}
        {current?.view === "schedules" && <SchedulesView session={session} />}
        {current?.view === "workflows" && <WorkflowsView session={session} selectedId={routeId} />}
        {current?.view === "events" && <FeedView session={session} />}
        {current?.view === "activity" && <ActivityCharts session={session} />}
        {current?.view === "nodes" && <NodesView session={session} />}
      </main>
    </div>
  );
}
