/**
 * What of a request may follow it to another URL (a redirect, or a retry after one). One rule for
 * every HTTP client of airgap, so a credential meant for one server never reaches another:
 *
 * - Same origin (scheme, host and port): everything follows.
 * - Another origin: headers that carry credentials are dropped. A request whose body is a credential
 *   (a form with a refresh token) is not followed there at all: the redirect is refused.
 * - https → http is refused: nothing learnt over TLS is sent in clear text, and a man in the middle
 *   cannot turn a TLS request into a plain one. Only a host the user named plain-HTTP may be
 *   redirected to over http.
 * - Only http and https targets are followed.
 */
import { type Dispatcher, request } from "undici";
import { RemoteError } from "../errors.js";

/** Request headers that authenticate the caller. Compared lower-case. */
export const CREDENTIAL_HEADERS: ReadonlySet<string> = new Set([
  "authorization",
  "proxy-authorization",
  "cookie",
  "x-amz-security-token",
  "x-auth-token",
  "x-api-key",
  "private-token",
  "x-registry-auth",
]);

export function isCredentialHeader(name: string): boolean {
  return CREDENTIAL_HEADERS.has(name.toLowerCase());
}

/** The headers without any that carry credentials. */
export function withoutCredentials(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (!isCredentialHeader(k)) out[k] = v;
  return out;
}

export interface Hop<B> {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body?: B | undefined;
  /** The body itself is a credential (a refresh-token form): it never goes to another origin. */
  credentialBody?: boolean;
}

export interface FollowRules {
  /** Hosts (host:port) the user configured for plain HTTP: the only http:// targets of an https request. */
  plainHttpAllowed?: (host: string) => boolean;
}

/** A redirect that airgap refuses to follow; the message names both ends and why. */
export class RedirectRefused extends RemoteError {
  constructor(
    message: string,
    readonly from: string,
    readonly to: string,
  ) {
    super(message, undefined, "REDIRECT_REFUSED");
  }
}

export function sameOrigin(a: URL, b: URL): boolean {
  return a.origin === b.origin;
}

function shown(u: URL): string {
  return `${u.origin}${u.pathname}`;
}

/**
 * The request to send to `to` after `status` redirected `from` there. Throws RedirectRefused when
 * the rules above forbid it. 303 (and 301/302 after a POST, as browsers and curl do) becomes a GET
 * without a body.
 */
export function followRedirect<B>(from: Hop<B>, to: URL, status: number, rules: FollowRules = {}): Hop<B> {
  if (to.protocol !== "https:" && to.protocol !== "http:") {
    throw new RedirectRefused(
      `${from.method} ${shown(from.url)} redirected to ${to.protocol} URL ${shown(to)}; only http and https are followed`,
      from.url.toString(),
      to.toString(),
    );
  }
  if (from.url.protocol === "https:" && to.protocol === "http:" && !rules.plainHttpAllowed?.(to.host)) {
    throw new RedirectRefused(
      `${from.method} ${shown(from.url)} redirected from https to plain http (${shown(to)}); refused: nothing sent over TLS is sent in clear text. Name ${to.host} as a plain-HTTP host only if it really has no TLS`,
      from.url.toString(),
      to.toString(),
    );
  }
  const toGet = status === 303 || ((status === 301 || status === 302) && from.method === "POST");
  const crossOrigin = !sameOrigin(from.url, to);
  if (crossOrigin && from.credentialBody) {
    throw new RedirectRefused(
      `${from.method} ${shown(from.url)} redirected to another origin (${shown(to)}); refused: its body carries a credential that is only for ${from.url.host}`,
      from.url.toString(),
      to.toString(),
    );
  }
  const next: Hop<B> = {
    method: toGet && from.method !== "HEAD" ? "GET" : from.method,
    url: to,
    headers: crossOrigin ? withoutCredentials(from.headers) : { ...from.headers },
  };
  if (toGet) {
    for (const k of Object.keys(next.headers)) {
      if (/^content-(type|length|encoding)$/i.test(k)) delete next.headers[k];
    }
  } else if (from.body !== undefined) {
    next.body = from.body;
    if (from.credentialBody) next.credentialBody = true;
  }
  return next;
}

export interface FollowingRequest {
  dispatcher: Dispatcher;
  method?: "GET" | "HEAD";
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
  /** Redirects followed at most (default 10). */
  maxRedirects?: number;
  rules?: FollowRules;
}

/**
 * A GET or HEAD that follows redirects by the rules above (undici's own redirect handling would
 * also strip credentials across origins, but follows https → http). Resolves with the final
 * response and the URL that gave it.
 */
export async function requestFollowing(
  url: string,
  init: FollowingRequest,
): Promise<{ res: Dispatcher.ResponseData; url: string }> {
  const max = init.maxRedirects ?? 10;
  let hop: Hop<never> = { method: init.method ?? "GET", url: new URL(url), headers: { ...init.headers } };
  for (let redirects = 0; ; redirects++) {
    const res = await request(hop.url, {
      dispatcher: init.dispatcher,
      method: hop.method as "GET" | "HEAD",
      headers: hop.headers,
      signal: init.signal,
    });
    const location = res.headers.location;
    if (![301, 302, 303, 307, 308].includes(res.statusCode) || typeof location !== "string") {
      return { res, url: hop.url.toString() };
    }
    await res.body.dump();
    if (redirects >= max) {
      throw new RemoteError(
        `${shown(new URL(url))}: more than ${max} redirects`,
        res.statusCode,
        "REDIRECT_LOOP",
      );
    }
    hop = followRedirect(hop, new URL(location, hop.url), res.statusCode, init.rules);
  }
}
