/**
 * One registry host: its undici agent (built once from its TLS settings), its authentication state,
 * and the request loop shared by every repository on it (auth challenge, redirects, retries).
 */
import { isIP } from "node:net";
import type { Readable, Writable } from "node:stream";
import { connect as tlsConnect } from "node:tls";
import { Agent, type Dispatcher } from "undici";
import { readCapped } from "../../net/body.js";
import { followRedirect, type Hop, RedirectRefused } from "../../net/follow.js";
import type { HostTrust, Trust } from "../../net/trust.js";
import { HostAuth, type HttpText } from "./auth.js";
import { type CredentialOptions, lookupCredential } from "./credentials.js";
import {
  errorFromNetwork,
  errorFromResponse,
  NO_REGISTRY_API,
  RegistryError,
  type RequestContext,
  where,
} from "./errors.js";
import { resumeInto } from "./resume.js";
import {
  backoffDelay,
  isRetryableError,
  isRetryableStatus,
  parseRetryAfter,
  type RetryPolicy,
  sleep,
} from "./retry.js";

export type Method = "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface SendOptions {
  method: Method;
  /** Absolute URL, or an absolute path on this registry (build API paths with `RegistryHost.api`). */
  url: string;
  headers?: Record<string, string>;
  /** A Buffer or string can be replayed (retries, auth); a stream cannot. */
  body?: Buffer | string | Readable;
  /** Token scopes this request needs. */
  scopes: string[];
  ctx: Omit<RequestContext, "method" | "url">;
  signal?: AbortSignal | undefined;
  /** Statuses that are answers, not errors (default: 2xx). Others throw a RegistryError. */
  ok?: (status: number) => boolean;
  /**
   * Follow redirects (default true) by the rules of net/follow.ts: a redirect to another origin
   * carries no credential header, https never turns into http.
   */
  followRedirects?: boolean;
  /** Send without registry auth (token service requests). */
  noAuth?: boolean;
  /** The body is a credential (a refresh-token form): never sent to another origin. */
  credentialBody?: boolean;
}

export interface SendResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData["body"];
  /** The URL that answered (after redirects). */
  url: string;
}

export const MAX_REDIRECTS = 5;
/** Kept-alive connections per host: more than the default 8 concurrent transfers, so none waits. */
export const MAX_CONNECTIONS_PER_HOST = 16;
/** A token answer is a few KiB; anything past this is refused rather than held in memory. */
export const MAX_TOKEN_RESPONSE = 1024 * 1024;

export interface HostSharedOptions extends CredentialOptions {
  userAgent: string;
  retry: RetryPolicy;
  stats: { requests: number; retries: number; resumes: number; restarts: number };
}

/** Docker Hub's registry API lives on another host than its name. */
export function endpointHost(registry: string): string {
  return registry === "docker.io" || registry === "index.docker.io" ? "registry-1.docker.io" : registry;
}

export function header(h: SendResult["headers"], name: string): string | undefined {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Agents for every host this run talks to (registries, token services, redirect targets), built once
 * each; their TLS (one SecureContext per trust setting) comes from the run's Trust.
 */
export class AgentPool {
  private readonly agents = new Map<string, { agent: Agent; tls: HostTrust }>();

  constructor(
    readonly trust: Trust,
    /** Longest wait for response headers, and longest silence inside a body, before an attempt fails. */
    readonly timeoutMs = 30_000,
  ) {}

  get(host: string): { agent: Agent; tls: HostTrust } {
    let a = this.agents.get(host);
    if (!a) {
      const tls = this.trust.host(host);
      const agent = new Agent({
        // TLS context built on the first https connection; the proxy, when one applies.
        connect: this.trust.connector(host),
        keepAliveTimeout: 30_000,
        keepAliveMaxTimeout: 120_000,
        connections: MAX_CONNECTIONS_PER_HOST,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
      a = { agent, tls };
      this.agents.set(host, a);
    }
    return a;
  }

  hint(host: string): string {
    return this.trust.hint(host);
  }

  async close(): Promise<void> {
    const all = [...this.agents.values()];
    this.agents.clear();
    await Promise.all(all.map((a) => a.agent.close().catch(() => undefined)));
  }
}

function isStream(b: SendOptions["body"]): b is Readable {
  return b !== undefined && typeof b !== "string" && !Buffer.isBuffer(b);
}

function anySignal(a: AbortSignal | undefined, b: AbortSignal | undefined): AbortSignal | undefined {
  if (a && b) return AbortSignal.any([a, b]);
  return a ?? b;
}

export class RegistryHost {
  readonly endpoint: string;
  readonly baseUrl: string;
  /**
   * The path the registry's API lives under, before `/v2/` ("" at the root): Artifactory's
   * repository-path access (`/artifactory/api/docker/REPO`), a reverse proxy at a sub-path.
   */
  readonly pathPrefix: string;
  readonly auth: HostAuth;
  /** Which repositories of this registry are known to hold a blob: the candidates for a cross-repo mount. */
  readonly blobRepos = new Map<string, Set<string>>();
  /** Whether GET /v2/<name>/referrers/ works here; undefined until tried. */
  referrersApi: boolean | undefined;

  constructor(
    readonly registry: string,
    private readonly agents: AgentPool,
    private readonly shared: HostSharedOptions,
    private readonly clientSignal?: AbortSignal,
  ) {
    this.endpoint = endpointHost(registry);
    const tls = agents.get(this.endpoint).tls.plainHTTP || agents.get(registry).tls.plainHTTP;
    this.baseUrl = `${tls ? "http" : "https"}://${this.endpoint}`;
    this.pathPrefix = agents.get(registry).tls.pathPrefix || agents.get(this.endpoint).tls.pathPrefix;
    this.auth = new HostAuth(
      registry,
      () => lookupCredential(registry, shared),
      this.tokenHttp,
      shared.userAgent,
      { registryUrl: new URL(this.baseUrl), plainHttpAllowed: this.plainHttpAllowed },
    );
  }

  /**
   * Whether a request under the API was answered (2xx) in this run: the API is where we look for
   * it, and a 404 means the item is missing, not the registry.
   */
  private apiAnswered = false;
  private apiMissing: Promise<string | undefined> | undefined;

  /**
   * Why a 404 may mean that the registry API is not where we look for it: when no request under
   * the API has been answered yet, no pathPrefix is configured and the base endpoint `/v2/`
   * answers 404 too (asked once per host), the hint to configure `pathPrefix:`; else undefined.
   * Every caller that turns a 404 into an error asks this, so the hint reads the same for
   * create (pull) and import (push and pre-flight).
   */
  async pathPrefixHint(signal?: AbortSignal): Promise<string | undefined> {
    if (this.pathPrefix || this.apiAnswered) return undefined;
    this.apiMissing ??= this.send({
      method: "GET",
      url: this.api(""),
      scopes: [],
      ctx: { registry: this.registry, subject: "base endpoint" },
      signal,
      ok: () => true,
      noAuth: true,
    }).then(
      async (res) => {
        await res.body.dump().catch(() => undefined);
        if (res.status !== 404) return undefined;
        return (
          `${this.registry} answers 404 at its API base ${this.api("")} too, so its registry API is not at the root of the host. ` +
          `If it is served under a path (Artifactory repository-path access: /artifactory/api/docker/REPOSITORY-KEY, or a reverse proxy at a sub-path), ` +
          `set that path as \`pathPrefix:\` on the \`registries:\` entry of host ${this.registry} (the bundle config for create, --config for import)`
        );
      },
      () => undefined,
    );
    return this.apiMissing;
  }

  /** The path of an API endpoint: `rest` is what follows `/v2/` ("" for the base endpoint). */
  api(rest: string): string {
    return `${this.pathPrefix}/v2/${rest}`;
  }

  private readonly locks = new Map<string, Promise<unknown>>();

  /** Run fn after every earlier fn of the same key (read-modify-write of one tag). */
  async withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    this.locks.set(key, next);
    try {
      return await next;
    } finally {
      if (this.locks.get(key) === next) this.locks.delete(key);
    }
  }

  /**
   * Blobs an existence check found missing, per repository, until they land: the upload that
   * follows such a check takes the answer instead of asking again. A blob that another client
   * pushed in between is at worst uploaded again, which the registry accepts.
   */
  private readonly knownAbsent = new Set<string>();

  /**
   * Manifests known to be in a repository (`repo@digest`: answered 200 or pushed in this run) and
   * what tags are known to name (`repo:tag` → digest): content-addressed facts a run does not ask
   * the registry twice.
   */
  private readonly knownManifests = new Set<string>();
  private readonly knownTags = new Map<string, string>();

  noteManifest(repository: string, digest: string): void {
    this.knownManifests.add(`${repository}@${digest}`);
  }

  hasManifest(repository: string, digest: string): boolean {
    return this.knownManifests.has(`${repository}@${digest}`);
  }

  noteTag(repository: string, tag: string, digest: string): void {
    this.knownTags.set(`${repository}:${tag}`, digest);
  }

  tagTarget(repository: string, tag: string): string | undefined {
    return this.knownTags.get(`${repository}:${tag}`);
  }

  noteAbsent(repository: string, digest: string): void {
    this.knownAbsent.add(`${repository}@${digest}`);
  }

  /** Whether an existence check of this blob found it missing since the last call; forgets it. */
  takeAbsent(repository: string, digest: string): boolean {
    return this.knownAbsent.delete(`${repository}@${digest}`);
  }

  /** The repository holds this blob (seen, uploaded or mounted): a mount source from now on. */
  noteBlob(digest: string, repository: string): void {
    this.knownAbsent.delete(`${repository}@${digest}`);
    let s = this.blobRepos.get(digest);
    if (!s) {
      s = new Set();
      this.blobRepos.set(digest, s);
    }
    s.add(repository);
  }

  /** A host the user named plain-HTTP or insecure: the only http:// target an https request may reach. */
  private readonly plainHttpAllowed = (host: string): boolean => {
    const t = this.agents.trust.host(host);
    return t.plainHTTP || t.insecure;
  };

  private readonly tokenHttp: HttpText = async (method, url, headers, body, signal) => {
    const res = await this.send({
      method,
      url,
      headers,
      ...(body !== undefined ? { body, credentialBody: true } : {}),
      scopes: [],
      ctx: { registry: this.registry, subject: "token request" },
      signal,
      ok: () => true,
      noAuth: true,
    });
    const from = new URL(res.url);
    const text = await readCapped(
      res.body,
      MAX_TOKEN_RESPONSE,
      `the token answer of ${from.origin}${from.pathname} for registry ${this.registry}`,
    );
    return { status: res.status, headers: res.headers, text };
  };

  private async dispatch(
    url: URL,
    method: Method,
    headers: Record<string, string>,
    body: SendOptions["body"],
    signal: AbortSignal | undefined,
  ) {
    const { agent } = this.agents.get(url.host);
    this.shared.stats.requests++;
    return agent.request({
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method,
      headers,
      body: body ?? null,
      signal: signal ?? null,
      // undici closes the connection after every HEAD unless told otherwise (for servers that send
      // a body with it). Registries answer HEAD correctly, as Go's clients (docker, containerd,
      // skopeo) rely on, and an existence check per blob would otherwise cost a TCP and TLS
      // handshake per blob.
      reset: false,
    });
  }

  /**
   * undici reports a TLS alert sent after the handshake (TLS 1.3: client certificate refused) as a
   * closed socket. For that case one plain TLS connection shows the real reason.
   */
  private async explain(url: URL, err: unknown): Promise<unknown> {
    const code = (err as { code?: unknown }).code;
    if (url.protocol !== "https:" || (code !== "UND_ERR_SOCKET" && code !== "ECONNRESET")) return err;
    if (this.agents.trust.proxyFor(url.protocol, url.hostname, url.port)) return err;
    const alert = await new Promise<Error | undefined>((resolve) => {
      const host = url.hostname.replace(/^\[|\]$/g, "");
      const sock = tlsConnect({
        ...this.agents.trust.connectOptions(url.host),
        host,
        port: Number(url.port || 443),
        ...(isIP(host) ? {} : { servername: host }),
      });
      const done = (e?: Error) => {
        clearTimeout(timer);
        sock.destroy();
        resolve(e);
      };
      const timer = setTimeout(() => done(), 3000);
      sock.on("secureConnect", () =>
        sock.write(`HEAD ${this.api("")} HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`),
      );
      sock.on("data", () => done());
      sock.on("error", (e) => done(e));
      sock.on("close", () => done());
    });
    if (alert && (alert as { code?: unknown }).code !== undefined) {
      return Object.assign(new Error(alert.message, { cause: err }), {
        code: (alert as { code?: unknown }).code,
      });
    }
    return err;
  }

  /**
   * The body of `first` (the 2xx answer to the GET `o`) written into `into` as one stream of `size`
   * bytes that continues through broken connections with Range requests of the same GET (see
   * resume.ts).
   */
  resumeBodyInto(
    into: Writable,
    o: SendOptions,
    first: SendResult,
    size: number,
    what: string,
    hint?: string,
  ): void {
    resumeInto(
      {
        first: first.body,
        size,
        again: (from) =>
          this.send({
            ...o,
            headers: { ...o.headers, range: `bytes=${from}-` },
            ok: (s) => s === 200 || s === 206 || s === 416,
          }),
        retry: this.shared.retry,
        stats: this.shared.stats,
        what,
        ...(hint !== undefined ? { hint } : {}),
        signal: anySignal(o.signal, this.clientSignal),
      },
      into,
    );
  }

  /**
   * Send a request with auth, redirects and retries. Resolves with the response when `ok(status)`;
   * otherwise reads the error body and rejects with a RegistryError naming the request.
   */
  async send(o: SendOptions): Promise<SendResult> {
    const signal = anySignal(o.signal, this.clientSignal);
    const noAuth = o.noAuth === true;
    const ok = o.ok ?? ((s: number) => s >= 200 && s < 300);
    const replayable = !isStream(o.body);
    // What is sent next: redirects change it only through followRedirect (net/follow.ts).
    let hop: Hop<SendOptions["body"]> = {
      method: o.method,
      url: new URL(o.url, this.baseUrl),
      headers: { "user-agent": this.shared.userAgent, ...o.headers },
      body: o.body,
      ...(o.credentialBody ? { credentialBody: true } : {}),
    };
    const ctxOf = (): RequestContext => ({ ...o.ctx, method: o.method, url: hop.url.toString() });
    const registryOrigin = new URL(this.baseUrl).origin;
    let attempt = 0;
    let redirects = 0;
    let authRetried = false;

    for (;;) {
      signal?.throwIfAborted();
      const { url, body } = hop;
      const method = hop.method as Method;
      const onRegistry = url.origin === registryOrigin;
      const headers: Record<string, string> = { ...hop.headers };
      let sentAuth: string | undefined;
      if (onRegistry && !noAuth) {
        sentAuth = await this.auth.header(o.scopes, signal);
        if (sentAuth) headers.authorization = sentAuth;
      }
      // A streamed body that failed while we waited (a truncated archive) would never be read: stop here.
      if (isStream(body) && (body.errored || body.destroyed)) {
        throw body.errored ?? new Error(`the body of ${method} ${url} closed before it was sent`);
      }
      let res: Dispatcher.ResponseData;
      try {
        res = await this.dispatch(url, method, headers, body, signal);
      } catch (err) {
        if (signal?.aborted) throw signal.reason ?? err;
        // A failing request body (e.g. a VerifyingStream that saw wrong bytes) explains itself best.
        if (isStream(body) && body.errored) throw body.errored;
        if (replayable && isRetryableError(err) && attempt < this.shared.retry.retries) {
          this.shared.stats.retries++;
          await sleep(backoffDelay(attempt++, this.shared.retry), signal);
          continue;
        }
        throw withAttempts(
          errorFromNetwork(ctxOf(), url.host, await this.explain(url, err), this.agents.hint(url.host)),
          attempt,
        );
      }
      const status = res.statusCode;
      const rh = res.headers as SendResult["headers"];

      if (status === 401 && onRegistry && !noAuth) {
        await res.body.dump().catch(() => undefined);
        const again =
          !authRetried && (await this.auth.onUnauthorized(header(rh, "www-authenticate"), sentAuth));
        if (again && replayable) {
          authRetried = true;
          continue;
        }
        const why = `${o.method} ${url.pathname} answered 401`;
        const base = await this.auth.authFailed(why);
        throw new RegistryError(`${base.message} [${where(ctxOf())}]`, ctxOf(), 401, [], "UNAUTHORIZED");
      }

      if ([301, 302, 303, 307, 308].includes(status) && o.followRedirects !== false) {
        const loc = header(rh, "location");
        await res.body.dump().catch(() => undefined);
        if (!loc) throw errorFromResponse(ctxOf(), status, "", "redirect without a Location header");
        if (++redirects > MAX_REDIRECTS) {
          throw errorFromResponse(ctxOf(), status, "", `more than ${MAX_REDIRECTS} redirects`);
        }
        if (!replayable)
          throw errorFromResponse(ctxOf(), status, "", "cannot follow a redirect with a streamed body");
        try {
          hop = followRedirect(hop, new URL(loc, url), status, { plainHttpAllowed: this.plainHttpAllowed });
        } catch (err) {
          if (!(err instanceof RedirectRefused)) throw err;
          throw new RegistryError(`${err.message} [${where(ctxOf())}]`, ctxOf(), status, [], err.code);
        }
        continue;
      }

      if (!ok(status) && isRetryableStatus(status) && replayable && attempt < this.shared.retry.retries) {
        const retryAfter = parseRetryAfter(header(rh, "retry-after"));
        await res.body.dump().catch(() => undefined);
        this.shared.stats.retries++;
        await sleep(backoffDelay(attempt++, this.shared.retry, retryAfter), signal);
        continue;
      }

      if (!ok(status)) {
        let text = "";
        try {
          text = await readText(res.body, 64 * 1024);
        } catch {
          // the status alone still tells what happened
        }
        const hint = status === 404 && onRegistry ? await this.pathPrefixHint(signal) : undefined;
        throw withAttempts(
          errorFromResponse(ctxOf(), status, text, hint, hint ? NO_REGISTRY_API : undefined),
          attempt,
        );
      }
      if (onRegistry && status >= 200 && status < 300 && hop.url.pathname.startsWith(this.api(""))) {
        this.apiAnswered = true;
      }
      return { status, headers: rh, body: res.body, url: url.toString() };
    }
  }
}

/** After retries, the error says how many attempts failed, so "try again" is known to have been tried. */
function withAttempts<E extends Error>(err: E, retried: number): E {
  if (retried > 0) err.message = `${err.message} (${retried + 1} attempts)`;
  return err;
}

/** Read a small body as text, at most `limit` bytes (the rest is discarded). */
export async function readText(body: Readable, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    const b = c as Buffer;
    if (n < limit) chunks.push(b.subarray(0, limit - n));
    n += b.length;
  }
  return Buffer.concat(chunks).toString("utf8");
}
