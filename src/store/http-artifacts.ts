/**
 * HTTP raw repository (`https://HOST/PATH/`): Nexus/Artifactory raw repositories, WebDAV, nginx
 * with dav. Objects are written with PUT, checked with HEAD, and each has a `<key>.sha256` sidecar
 * in `sha256sum` format, which is how `exists` tells same-size objects apart and how users check a
 * download by hand.
 *
 * Credentials: AIRGAP_ARTIFACTS_TOKEN (Bearer), else AIRGAP_ARTIFACTS_USER/AIRGAP_ARTIFACTS_PASSWORD
 * (Basic), else a netrc file entry for the host, else user:password in the URL.
 */

import { readFileSync } from "node:fs";
import type { Readable } from "node:stream";
import { type Dispatcher, request } from "undici";
import { ConfigError, IntegrityError, RemoteError, UsageError } from "../errors.js";
import { trustFor } from "../net/trust.js";
import { Sha256Meter } from "../oci/digest.js";
import type { ArtifactRepository, ArtifactRepositoryOptions, PutOptions } from "./artifacts.js";

/** `machine HOST login USER password PASS` entries (and `default`), as curl and git read them. */
export function parseNetrc(text: string): Map<string, { login?: string; password?: string }> {
  const tokens = text
    .split("\n")
    .filter((l) => !l.trimStart().startsWith("#"))
    .join(" ")
    .split(/\s+/)
    .filter(Boolean);
  const out = new Map<string, { login?: string; password?: string }>();
  let current: { login?: string; password?: string } | undefined;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t === "machine") {
      current = {};
      out.set(tokens[++i] ?? "", current);
    } else if (t === "default") {
      current = {};
      out.set("*", current);
    } else if (t === "login" && current) current.login = tokens[++i];
    else if (t === "password" && current) current.password = tokens[++i];
    else if (t === "account" || t === "macdef") i++;
  }
  return out;
}

export class HttpArtifactRepository implements ArtifactRepository {
  readonly label: string;

  constructor(
    readonly base: string,
    private readonly authorization: string | undefined,
    private readonly dispatcher: Dispatcher,
  ) {
    this.label = base;
  }

  static fromUrl(url: string, opts: ArtifactRepositoryOptions = {}): HttpArtifactRepository {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new UsageError(`--artifacts ${url} is not a URL`);
    }
    const env = opts.env ?? process.env;
    let authorization: string | undefined;
    const basic = (user: string, pass: string) =>
      `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;
    if (env.AIRGAP_ARTIFACTS_TOKEN) authorization = `Bearer ${env.AIRGAP_ARTIFACTS_TOKEN}`;
    else if (env.AIRGAP_ARTIFACTS_USER)
      authorization = basic(env.AIRGAP_ARTIFACTS_USER, env.AIRGAP_ARTIFACTS_PASSWORD ?? "");
    else if (opts.netrcFile) {
      let text: string;
      try {
        text = readFileSync(opts.netrcFile, "utf8");
      } catch (err) {
        throw new ConfigError(
          `cannot read netrc file ${opts.netrcFile}: ${(err as Error).message}`,
          undefined,
          { cause: err },
        );
      }
      const entries = parseNetrc(text);
      const e = entries.get(u.hostname) ?? entries.get(u.host) ?? entries.get("*");
      if (e?.login !== undefined) authorization = basic(e.login, e.password ?? "");
    } else if (u.username) {
      authorization = basic(decodeURIComponent(u.username), decodeURIComponent(u.password));
    }
    u.username = "";
    u.password = "";
    const trust = trustFor({
      ...(opts.caFile ? { caFiles: [opts.caFile] } : {}),
      ...(opts.insecure ? { insecure: true } : {}),
    });
    const base = u.toString().endsWith("/") ? u.toString() : `${u.toString()}/`;
    return new HttpArtifactRepository(base, authorization, trust.dispatcher());
  }

  url(key: string): string {
    return this.base + key.replace(/^\/+/, "").split("/").map(encodeURIComponent).join("/");
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.authorization ? { authorization: this.authorization, ...extra } : extra;
  }

  private async call(
    method: "GET" | "HEAD" | "PUT" | "DELETE",
    key: string,
    init: { body?: Readable | Buffer; headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<Dispatcher.ResponseData> {
    try {
      return await request(this.url(key), {
        method,
        dispatcher: this.dispatcher,
        headers: this.headers(init.headers),
        body: init.body ?? null,
        signal: init.signal,
      });
    } catch (err) {
      if (err instanceof IntegrityError) throw err;
      throw new RemoteError(`${method} ${this.url(key)}: ${(err as Error).message}`, undefined, "HTTP", {
        cause: err,
      });
    }
  }

  private refuse(method: string, key: string, status: number): RemoteError {
    const hint =
      status === 401 || status === 403
        ? " (set AIRGAP_ARTIFACTS_USER/AIRGAP_ARTIFACTS_PASSWORD or AIRGAP_ARTIFACTS_TOKEN, or give a netrc file)"
        : "";
    return new RemoteError(`${method} ${this.url(key)}: HTTP ${status}${hint}`, status, "HTTP");
  }

  async get(key: string, signal?: AbortSignal): Promise<Buffer | undefined> {
    const res = await this.call("GET", key, signal ? { signal } : {});
    if (res.statusCode === 404) {
      await res.body.dump();
      return undefined;
    }
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw this.refuse("GET", key, res.statusCode);
    }
    return Buffer.from(await res.body.arrayBuffer());
  }

  async exists(key: string, sha256: string, size: number, signal?: AbortSignal): Promise<boolean> {
    const head = await this.call("HEAD", key, signal ? { signal } : {});
    await head.body.dump();
    if (head.statusCode === 404) return false;
    if (head.statusCode !== 200) throw this.refuse("HEAD", key, head.statusCode);
    if (Number(head.headers["content-length"]) !== size) return false;
    const sidecar = await this.get(`${key}.sha256`, signal);
    return sidecar !== undefined && sidecar.toString("utf8").trim().split(/\s+/)[0] === sha256;
  }

  async put(key: string, stream: Readable, opts: PutOptions): Promise<void> {
    const hasher = new Sha256Meter();
    stream.on("error", (err) => hasher.destroy(err));
    const body = stream.pipe(hasher);
    const init: { body: Readable; headers: Record<string, string>; signal?: AbortSignal } = {
      body,
      headers: {
        "content-type": opts.contentType ?? "application/octet-stream",
        "content-length": String(opts.size),
      },
    };
    if (opts.signal) init.signal = opts.signal;
    // an old sidecar must never vouch for bytes an interrupted upload left behind
    const stale = await this.call("DELETE", `${key}.sha256`);
    await stale.body.dump();
    const res = await this.call("PUT", key, init);
    await res.body.dump();
    if (res.statusCode < 200 || res.statusCode >= 300) throw this.refuse("PUT", key, res.statusCode);
    const got = hasher.hex();
    if (hasher.size !== opts.size || got !== opts.sha256) {
      const del = await this.call("DELETE", key).catch(() => undefined);
      await del?.body.dump();
      throw new IntegrityError(
        "DIGEST_MISMATCH",
        `${this.url(key)}: sent ${hasher.size} bytes with sha256 ${got}, expected ${opts.size} bytes with sha256 ${opts.sha256}`,
        key,
      );
    }
    const name = key.split("/").pop() ?? key;
    const side = Buffer.from(`${opts.sha256}  ${name}\n`);
    const sres = await this.call("PUT", `${key}.sha256`, {
      body: side,
      headers: { "content-type": "text/plain", "content-length": String(side.length) },
    });
    await sres.body.dump();
    if (sres.statusCode < 200 || sres.statusCode >= 300)
      throw this.refuse("PUT", `${key}.sha256`, sres.statusCode);
    const head = await this.call("HEAD", key);
    await head.body.dump();
    if (head.statusCode !== 200 || Number(head.headers["content-length"]) !== opts.size) {
      throw new IntegrityError(
        "SIZE_MISMATCH",
        `${this.url(key)}: after upload the server answers HTTP ${head.statusCode} with ${String(head.headers["content-length"])} bytes, expected ${opts.size}`,
        key,
      );
    }
  }
}
