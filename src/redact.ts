/**
 * The one place secrets are taken out of text before it is written into a bundle, printed, or put
 * in an error: URL userinfo (`https://user:token@host/…` → `https://host/…`), secret-looking query
 * parameters (`?token=…`, `access_token=…`, `X-Amz-Signature=…`, `X-Amz-Credential=…`,
 * `X-Goog-Signature=…`, `sig=…`, `api_key=…` → `REDACTED`), and HTTP `Authorization` values.
 *
 * Credentials written into a config URL are still used for fetching (the sources read the original
 * URL); everything recorded or shown goes through here, so no secret crosses the gap.
 */

export const REDACTED = "REDACTED";

/** scheme://userinfo@ — greedy up to the last `@` of the authority, so an unescaped `@` in a password is covered. */
const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^/?#\s"'<>`]*@/gi;

/**
 * Query or fragment parameters whose value is a secret. Matched by name, case-insensitively:
 * anything with token, secret, password, signature or credential in it, api keys, and `sig`/`auth`.
 */
const QUERY_SECRET =
  /([?&#;](?:[\w.-]*(?:token|secret|passw(?:or)?d|signature|credential|api[_-]?key)[\w.-]*|sig|auth|key|code))=([^&#\s"'<>`]*)/gi;

const AUTHORIZATION = /\b(authorization\s*[:=]\s*"?)(basic|bearer|token)\s+[^\s"',;]+/gi;

/** Text with every secret this module knows of replaced; text without secrets is returned unchanged. */
export function redactSecrets(text: string): string {
  if (!text) return text;
  return text
    .replace(USERINFO, (m, scheme: string) =>
      // an ssh user name (ssh://git@host) is an address, not a secret; a password always is
      /ssh/i.test(scheme) && !m.slice(scheme.length).includes(":") ? m : scheme,
    )
    .replace(QUERY_SECRET, (_m, name: string, value: string) => (value ? `${name}=${REDACTED}` : `${name}=`))
    .replace(AUTHORIZATION, (_m, head: string, scheme: string) => `${head}${scheme} ${REDACTED}`);
}

/** A copy of a JSON-like value with every string (values, not keys) passed through redactSecrets. */
export function redactDeep<T>(value: T): T {
  if (typeof value === "string") return redactSecrets(value) as T;
  if (Array.isArray(value)) return value.map((v) => redactDeep(v)) as T;
  if (value !== null && typeof value === "object" && !Buffer.isBuffer(value) && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = redactDeep(v);
    return out as T;
  }
  return value;
}

/** The message of an error with secrets removed (for errors built from foreign text such as stderr). */
export function redactError(err: unknown): string {
  return redactSecrets(err instanceof Error ? err.message : String(err));
}
