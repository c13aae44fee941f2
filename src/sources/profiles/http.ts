/**
 * HTTP downloads for profile sources: follows redirects (GitHub archive URLs go through codeload),
 * verifies TLS with the machine's roots plus an optional CA file, streams to disk while hashing.
 */
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Dispatcher } from "undici";
import { IntegrityError, RemoteError } from "../../errors.js";
import { requestFollowing } from "../../net/follow.js";
import { trustFor } from "../../net/trust.js";

export interface HttpOptions {
  /** Extra trusted CA (PEM file), added to the machine's roots. */
  caFile?: string;
  /** Skip TLS verification (only when the user says so explicitly). */
  insecure?: boolean;
  /** Extra headers, e.g. Authorization for a private server. */
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/**
 * TLS (one SecureContext per trust setting, keep-alive pools per origin) comes from the trust
 * module; redirects follow net/follow.ts (no credentials to another origin, never https → http).
 */
function dispatcherFor(opts: HttpOptions): Dispatcher {
  return trustFor({
    ...(opts.caFile ? { caFiles: [opts.caFile] } : {}),
    ...(opts.insecure ? { insecure: true } : {}),
  }).dispatcher();
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) {
      u.username = "***";
      u.password = "";
    }
    return u.toString();
  } catch {
    return url;
  }
}

/** Userinfo in the URL becomes Basic auth, as InSpec's url fetcher does. */
function splitUserinfo(url: string, headers: Record<string, string>): string {
  const u = new URL(url);
  if (u.username || u.password) {
    headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString("base64")}`;
    u.username = "";
    u.password = "";
  }
  return u.toString();
}

export async function httpGetJson(url: string, opts: HttpOptions = {}): Promise<unknown> {
  const headers: Record<string, string> = { accept: "application/json", ...opts.headers };
  const target = splitUserinfo(url, headers);
  let res: Dispatcher.ResponseData;
  try {
    ({ res } = await requestFollowing(target, {
      dispatcher: dispatcherFor(opts),
      headers,
      signal: opts.signal,
    }));
  } catch (err) {
    throw new RemoteError(`GET ${redact(url)}: ${(err as Error).message}`, undefined, "REMOTE", {
      cause: err,
    });
  }
  const text = await res.body.text();
  if (res.statusCode !== 200)
    throw new RemoteError(`GET ${redact(url)}: HTTP ${res.statusCode}`, res.statusCode);
  if (text.length > 8 * 1024 * 1024) throw new RemoteError(`GET ${redact(url)}: answer too large`);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new RemoteError(`GET ${redact(url)}: answer is not JSON`, res.statusCode, "REMOTE", { cause: err });
  }
}

class Hasher extends Transform {
  readonly h = createHash("sha256");
  size = 0;
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.h.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }
}

export interface Downloaded {
  path: string;
  sha256: string;
  size: number;
  contentType?: string;
}

/**
 * Download `url` to `dest`. With `expectSha256` the file only lands at `dest` when it matches;
 * otherwise an IntegrityError names the URL and both digests.
 */
export async function download(
  url: string,
  dest: string,
  opts: HttpOptions & { expectSha256?: string } = {},
): Promise<Downloaded> {
  const headers: Record<string, string> = { ...opts.headers };
  const target = splitUserinfo(url, headers);
  let res: Dispatcher.ResponseData;
  try {
    ({ res } = await requestFollowing(target, {
      dispatcher: dispatcherFor(opts),
      headers,
      signal: opts.signal,
    }));
  } catch (err) {
    throw new RemoteError(
      `profile URL ${redact(url)} could not be fetched: ${(err as Error).message}`,
      undefined,
      "REMOTE",
      {
        cause: err,
      },
    );
  }
  if (res.statusCode !== 200) {
    await res.body.dump();
    throw new RemoteError(
      `profile URL ${redact(url)} could not be fetched: HTTP ${res.statusCode}`,
      res.statusCode,
    );
  }
  const tmp = `${dest}.part`;
  const hasher = new Hasher();
  try {
    await pipeline(res.body, hasher, createWriteStream(tmp), { signal: opts.signal });
  } catch (err) {
    await rm(tmp, { force: true });
    throw new RemoteError(
      `profile URL ${redact(url)}: download failed: ${(err as Error).message}`,
      undefined,
      "REMOTE",
      {
        cause: err,
      },
    );
  }
  const sha256 = hasher.h.digest("hex");
  if (opts.expectSha256 && opts.expectSha256.toLowerCase() !== sha256) {
    await rm(tmp, { force: true });
    throw new IntegrityError(
      "DIGEST_MISMATCH",
      `profile ${redact(url)} has sha256 ${sha256}, but the config pins sha256 ${opts.expectSha256.toLowerCase()}`,
      redact(url),
    );
  }
  await rename(tmp, dest);
  const ct = res.headers["content-type"];
  const out: Downloaded = { path: dest, sha256, size: hasher.size };
  if (typeof ct === "string") out.contentType = ct;
  return out;
}

export { redact };
