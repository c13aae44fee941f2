/**
 * Registry authentication: anonymous, Basic, and the Bearer token flow of the distribution token spec
 * (challenge → token endpoint with Basic credentials or an identity token → cached per host and scope set).
 *
 * Where credentials go: the registry's own credentials go to the registry's origin and to the token
 * service its challenge names (the realm), nowhere else. A realm may be on another host (Docker Hub
 * sends clients to auth.docker.io), but when the registry speaks https the realm must too, unless the
 * user named the realm's host plain-HTTP or insecure. Redirects of token requests follow
 * net/follow.ts: no credential header crosses to another origin, a refresh-token POST is not
 * redirected to another origin at all.
 */
import { RemoteError } from "../../errors.js";
import type { CredentialLookup } from "./credentials.js";

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parse a WWW-Authenticate header into its challenges (scheme lowercased, parameter names lowercased). */
export function parseWWWAuthenticate(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const s = header;
  const skipWs = () => {
    while (i < s.length && (s[i] === " " || s[i] === "\t")) i++;
  };
  while (i < s.length) {
    skipWs();
    while (s[i] === ",") {
      i++;
      skipWs();
    }
    const schemeMatch = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+/.exec(s.slice(i));
    if (!schemeMatch) break;
    const challenge: Challenge = { scheme: schemeMatch[0].toLowerCase(), params: {} };
    i += schemeMatch[0].length;
    out.push(challenge);
    // parameters: name=value or name="quoted", separated by commas, until the next scheme
    for (;;) {
      skipWs();
      const save = i;
      const nameMatch = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+/.exec(s.slice(i));
      if (!nameMatch) break;
      i += nameMatch[0].length;
      skipWs();
      if (s[i] !== "=") {
        i = save; // a new scheme starts here
        break;
      }
      i++;
      skipWs();
      let value = "";
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === "\\" && i + 1 < s.length) i++;
          value += s[i];
          i++;
        }
        i++;
      } else {
        const v = /^[^,\s]*/.exec(s.slice(i));
        value = v ? v[0] : "";
        i += value.length;
      }
      challenge.params[nameMatch[0].toLowerCase()] = value;
      skipWs();
      if (s[i] === ",") i++;
    }
  }
  return out;
}

export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

export function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`;
}

/** Merge scopes: actions of the same resource are united, so a push scope covers a pull scope. */
export function mergeScopes(scopes: string[]): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const sc of scopes) {
    const last = sc.lastIndexOf(":");
    if (last < 0) {
      byResource.set(sc, byResource.get(sc) ?? new Set());
      continue;
    }
    const res = sc.slice(0, last);
    const set = byResource.get(res) ?? new Set<string>();
    for (const a of sc.slice(last + 1).split(",")) if (a) set.add(a);
    byResource.set(res, set);
  }
  return [...byResource.entries()]
    .map(([res, actions]) => (actions.size ? `${res}:${[...actions].sort().join(",")}` : res))
    .sort();
}

export interface HttpTextResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export type HttpText = (
  method: "GET" | "POST",
  url: string,
  headers: Record<string, string>,
  body: string | undefined,
  signal?: AbortSignal,
) => Promise<HttpTextResponse>;

export interface RealmRules {
  /** The registry's base URL (its scheme decides whether an http:// realm may be used). */
  registryUrl: URL;
  /** Hosts the user named plain-HTTP or insecure. */
  plainHttpAllowed: (host: string) => boolean;
}

/** The realm of a Bearer challenge as a URL, when credentials may be sent there; otherwise an error saying why. */
export function checkRealm(realm: string, registry: string, rules: RealmRules): URL {
  let u: URL;
  try {
    u = new URL(realm);
  } catch {
    throw new RemoteError(
      `registry ${registry} named a token realm that is not a URL: ${realm}`,
      401,
      "AUTH",
    );
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") {
    throw new RemoteError(
      `registry ${registry} named a token realm that is not http(s): ${u.origin}${u.pathname}`,
      401,
      "AUTH",
    );
  }
  if (u.username || u.password) {
    throw new RemoteError(`registry ${registry} named a token realm with user info; refused`, 401, "AUTH");
  }
  if (u.protocol === "http:" && rules.registryUrl.protocol === "https:" && !rules.plainHttpAllowed(u.host)) {
    throw new RemoteError(
      `registry ${registry} speaks https but sends clients to the token service ${u.origin}${u.pathname} over plain http; refused, credentials would travel in clear text. If ${u.host} really has no TLS, name it as a plain-HTTP host in the config (registries: - host: ${u.host}, plainHTTP: true)`,
      401,
      "AUTH",
    );
  }
  return u;
}

interface CachedToken {
  header: string;
  expiresAt: number;
}

/** Authentication state of one registry host, shared by all its repositories. */
export class HostAuth {
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly inflight = new Map<string, Promise<CachedToken>>();
  private creds: Promise<CredentialLookup> | undefined;

  constructor(
    readonly host: string,
    private readonly lookup: () => Promise<CredentialLookup>,
    private readonly http: HttpText,
    private readonly userAgent: string,
    private readonly realmRules?: RealmRules,
  ) {}

  credentials(): Promise<CredentialLookup> {
    this.creds ??= this.lookup();
    return this.creds;
  }

  /** Has the host asked for authentication yet? (Until it does, requests go anonymously.) */
  get known(): boolean {
    return this.challenge !== undefined;
  }

  /** The Authorization header for these scopes, fetching a token when the host uses Bearer; undefined when anonymous. */
  async header(scopes: string[], signal?: AbortSignal): Promise<string | undefined> {
    const ch = this.challenge;
    if (!ch) return undefined;
    if (ch.scheme === "basic") {
      const { credential } = await this.credentials();
      if (!credential?.username) return undefined;
      return `Basic ${Buffer.from(`${credential.username}:${credential.password ?? ""}`).toString("base64")}`;
    }
    if (ch.scheme === "bearer") {
      const all = mergeScopes(ch.params.scope ? [...scopes, ...ch.params.scope.split(" ")] : scopes);
      const asked = this.oneScopePerRequest ? this.firstScope(scopes, ch) : all;
      try {
        return await this.token(ch, asked, signal);
      } catch (err) {
        // Some token services refuse a request naming several scopes (they were written for one);
        // the request's own scope alone still serves everything but a cross-repository mount.
        const status = (err as { status?: unknown }).status;
        if (asked.length < 2 || !(status === 400 || status === 401 || status === 403)) throw err;
        this.oneScopePerRequest = true;
        return await this.token(ch, this.firstScope(scopes, ch), signal);
      }
    }
    return undefined;
  }

  /** The token service refused a request with several scopes: ask for one at a time. */
  private oneScopePerRequest = false;

  private firstScope(scopes: string[], ch: Challenge): string[] {
    const first = scopes[0] ?? ch.params.scope?.split(" ")[0];
    return first ? mergeScopes([first]) : [];
  }

  private async token(ch: Challenge, scopes: string[], signal?: AbortSignal): Promise<string> {
    const key = scopes.join(" ");
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > Date.now() + 5_000) return cached.header;
    let p = this.inflight.get(key);
    if (!p) {
      p = this.fetchToken(ch, scopes, signal).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    const tok = await p;
    this.tokens.set(key, tok);
    return tok.header;
  }

  /**
   * Learn from a 401. Returns true when a retry with (new) credentials can succeed; false when the same
   * request was already sent with what we have.
   */
  async onUnauthorized(wwwAuthenticate: string | undefined, sentAuth: string | undefined): Promise<boolean> {
    const chs = wwwAuthenticate ? parseWWWAuthenticate(wwwAuthenticate) : [];
    const ch = chs.find((c) => c.scheme === "bearer") ?? chs.find((c) => c.scheme === "basic");
    if (!ch) return false;
    const prev = this.challenge;
    this.challenge = ch;
    if (!sentAuth) return true;
    if (ch.scheme === "bearer") {
      // A new realm or scope invalidates every token; otherwise only the refused one (it may have
      // expired or been revoked). The caller retries once, so a refused fresh token ends in an error.
      const changed = !prev || prev.scheme !== ch.scheme || prev.params.realm !== ch.params.realm;
      if (changed) this.tokens.clear();
      for (const [k, t] of this.tokens) if (t.header === sentAuth) this.tokens.delete(k);
      return true;
    }
    // Basic credentials that were sent and refused will be refused again.
    return false;
  }

  private async fetchToken(ch: Challenge, scopes: string[], signal?: AbortSignal): Promise<CachedToken> {
    if (!ch.params.realm)
      throw new RemoteError(`registry ${this.host} asked for a Bearer token but named no realm`, 401, "AUTH");
    const realmUrl = this.realmRules
      ? checkRealm(ch.params.realm, this.host, this.realmRules)
      : new URL(ch.params.realm);
    const realm = realmUrl.toString();
    const { credential } = await this.credentials();
    const now = Date.now();
    if (credential?.registryToken) {
      return { header: `Bearer ${credential.registryToken}`, expiresAt: now + 3600_000 };
    }
    let res: HttpTextResponse;
    if (credential?.identityToken) {
      const form = new URLSearchParams();
      form.set("grant_type", "refresh_token");
      form.set("refresh_token", credential.identityToken);
      form.set("client_id", "cinc-airgap");
      if (ch.params.service) form.set("service", ch.params.service);
      if (scopes.length) form.set("scope", scopes.join(" "));
      res = await this.http(
        "POST",
        realm,
        { "content-type": "application/x-www-form-urlencoded", "user-agent": this.userAgent },
        form.toString(),
        signal,
      );
    } else {
      const u = new URL(realm);
      if (ch.params.service) u.searchParams.set("service", ch.params.service);
      for (const sc of scopes) u.searchParams.append("scope", sc);
      const headers: Record<string, string> = { "user-agent": this.userAgent };
      if (credential?.username) {
        headers.authorization = `Basic ${Buffer.from(`${credential.username}:${credential.password ?? ""}`).toString("base64")}`;
        u.searchParams.set("account", credential.username);
      }
      res = await this.http("GET", u.toString(), headers, undefined, signal);
    }
    if (res.status === 401 || res.status === 403) {
      throw await this.authFailed(
        `the token service ${new URL(realm).host} answered ${res.status}`,
        res.status,
      );
    }
    if (res.status < 200 || res.status >= 300) {
      throw new RemoteError(
        `token request to ${new URL(realm).origin}${new URL(realm).pathname} for registry ${this.host} failed with ${res.status}: ${res.text.slice(0, 200)}`,
        res.status,
        "AUTH",
      );
    }
    let json: { token?: string; access_token?: string; expires_in?: number };
    try {
      json = JSON.parse(res.text) as typeof json;
    } catch (err) {
      throw new RemoteError(
        `the token service of registry ${this.host} answered no JSON`,
        res.status,
        "AUTH",
        { cause: err },
      );
    }
    const token = json.token ?? json.access_token;
    if (!token)
      throw new RemoteError(
        `the token service of registry ${this.host} answered no token`,
        res.status,
        "AUTH",
      );
    const ttl = typeof json.expires_in === "number" && json.expires_in > 0 ? json.expires_in : 60;
    return { header: `Bearer ${token}`, expiresAt: now + ttl * 1000 };
  }

  /** The error for refused credentials: says where credentials were looked up, never what they are. */
  async authFailed(why: string, status = 401): Promise<RemoteError> {
    const lookup = await this.credentials();
    const where = lookup.credential
      ? `credentials from ${lookup.source} were refused`
      : `no credentials were found for ${this.host}; looked in: ${lookup.searched.join(", ")}`;
    return new RemoteError(
      `authentication failed for ${this.host} (${why}): ${where}. Log in with \`docker login ${this.host}\` or set DOCKER_CONFIG / REGISTRY_AUTH_FILE`,
      status,
      "UNAUTHORIZED",
    );
  }
}
