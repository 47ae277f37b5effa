/** The URL without its password, for logs and messages (any scheme: postgresql://, redis://, rediss://). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "<unparseable URL>";
  }
}
