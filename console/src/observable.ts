import { useEffect, useState } from "preact/hooks";

/**
 * State that changes outside Preact (socket events, REST answers): views re-render when it says it changed.
 * The stores mutate in place and bump `version`, so an event costs no copy of a whole collection.
 */
export class Observable {
  version = 0;
  private readonly listeners = new Set<() => void>();

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  protected changed(): void {
    this.version++;
    for (const listener of this.listeners) listener();
  }
}

/** Re-renders the calling component whenever one of the observables changes. */
export function useObservable(...observables: Observable[]): void {
  const [, setTick] = useState(0);
  const rendered = observables.map((o) => o.version);
  useEffect(() => {
    const rerender = (): void => setTick((n) => n + 1);
    const unsubscribe = observables.map((o) => o.subscribe(rerender));
    // Effects run after the browser paints: a change in between (a socket connecting, an ack) reached no
    // listener, and the view would show the stale state until the next change, possibly forever.
    if (observables.some((o, i) => o.version !== rendered[i])) rerender();
    return () => unsubscribe.forEach((u) => u());
    // The observables of a session never change while it is shown.
  }, observables);
}
