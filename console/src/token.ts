import type { Permission } from "../../src/protocol/permissions.js";

/**
 * The token stays in this tab only: sessionStorage (gone when the tab closes), never a cookie, and never in a URL
 * the server sees (a fragment is not sent, and the console removes it from the address bar at once).
 */
const STORAGE_KEY = "switchyard.token";

/** What the console shows about who is signed in; decoded here for display only: the server verifies the token. */
export interface Identity {
  tenant: string;
  sub: string;
  permissions: string[];
  /** Seconds since the epoch, when the token says. */
  expiresAt: number | undefined;
}

/** `#token=<jwt>`: stored for this tab and removed from the address bar (and from history). */
export function takeTokenFromFragment(): string | undefined {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token");
  if (token === null) return undefined;
  history.replaceState(null, "", location.pathname + location.search);
  return token.trim();
}

export function storedToken(): string | undefined {
  return sessionStorage.getItem(STORAGE_KEY) ?? undefined;
}

export function storeToken(token: string): void {
  sessionStorage.setItem(STORAGE_KEY, token);
}

export function forgetToken(): void {
  sessionStorage.removeItem(STORAGE_KEY);
}

/** The JWT's claims, or undefined when it is not a JWT at all (the server will say why). */
export function decodeIdentity(token: string): Identity | undefined {
  const payload = token.split(".")[1];
  if (!payload) return undefined;
  try {
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const bytes = Uint8Array.from(json, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
    return {
      tenant: typeof claims.tenant_id === "string" ? claims.tenant_id : "?",
      sub: typeof claims.sub === "string" ? claims.sub : "?",
      permissions: Array.isArray(claims.permissions) ? claims.permissions.filter((p): p is string => typeof p === "string") : [],
      expiresAt: typeof claims.exp === "number" ? claims.exp : undefined,
    };
  } catch {
    return undefined;
  }
}

/** Whether to offer what needs `permission` (`admin` grants every permission of the tenant, as on the server). */
export function can(identity: Identity, permission: Permission): boolean {
  return identity.permissions.includes(permission) || identity.permissions.includes("admin");
}
