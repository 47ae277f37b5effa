/** Query parameters that carry a credential in connection URLs (libpq's `password`, a `sslpassword`, tokens). */
const SECRET_PARAMETER = /pass|secret|token|(^|_)key$/i;

/**
 * The URL without its credentials, for logs and messages (any scheme: postgresql://, redis://, rediss://): the
 * password of its user part and the value of every parameter that names one (`?password=` is as valid a place
 * for PostgreSQL's password as the user part).
 */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    for (const name of [...u.searchParams.keys()]) if (SECRET_PARAMETER.test(name)) u.searchParams.set(name, "***");
    return u.toString();
  } catch {
    return "<unparseable URL>";
  }
}
