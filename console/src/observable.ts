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
  useEffect(() => {
    const unsubscribe = observables.map((o) => o.subscribe(() => setTick((n) => n + 1)));
    return () => unsubscribe.forEach((u) => u());
    // The observables of a session never change while it is shown.
  }, observables);
}
