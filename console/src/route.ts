/**
 * The console's address: `#<view>` or `#<view>/<id>` (a task's detail, a workflow). Only the fragment: the server
 * never sees it, and a link or a reload lands on the same screen.
 */
export interface Route {
  view: string;
  id: string | undefined;
}

export function currentRoute(): Route {
  const [view = "", ...rest] = location.hash.slice(1).split("/");
  const id = rest.join("/");
  return { view, id: id ? decodeURIComponent(id) : undefined };
}

export function href(view: string, id?: string): string {
  return id === undefined ? `#${view}` : `#${view}/${encodeURIComponent(id)}`;
}

export function go(view: string, id?: string): void {
  location.hash = href(view, id);
}
