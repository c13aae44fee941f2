import { createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import type { Dispatcher } from "undici";
import { IntegrityError, RemoteError } from "../../errors.js";
import { requestFollowing } from "../../net/follow.js";
import { trustFor } from "../../net/trust.js";
import { type Sha256Hex, Sha256Meter } from "../../oci/digest.js";
import { ARCHIVE_LIMITS } from "../../profiles/archive.js";
import { redactSecrets } from "../../redact.js";
import { readBounded } from "../../store/streams.js";

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

const redact = redactSecrets;

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
  const res = await requestOk(
    url,
    { ...opts, headers: { accept: "application/json", ...opts.headers } },
    (why) => `GET ${redact(url)}: ${why}`,
  );
  refuseDeclaredLength(res, MAX_JSON_BYTES, `GET ${redact(url)}`);
  // counted as it arrives: the request is aborted as soon as the answer passes the limit
  const text = (await readBounded(res.body, MAX_JSON_BYTES, `GET ${redact(url)}: the answer`)).toString(
    "utf8",
  );
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new RemoteError(`GET ${redact(url)}: answer is not JSON`, res.statusCode, "REMOTE", { cause: err });
  }
}

/** Largest JSON answer (a Supermarket tool record is a few KiB). */
export const MAX_JSON_BYTES = 8 * 1024 ** 2;
/** Largest profile archive download: no archive may expand past ARCHIVE_LIMITS.maxTotalBytes either. */
export const MAX_DOWNLOAD_BYTES = ARCHIVE_LIMITS.maxTotalBytes;

function refuseDeclaredLength(res: Dispatcher.ResponseData, max: number, what: string): void {
  const declared = Number(res.headers["content-length"]);
  if (Number.isFinite(declared) && declared > max) {
    res.body.destroy();
    throw new IntegrityError(
      "MALFORMED",
      `${what}: the server announces ${declared} bytes, more than the ${max}-byte limit`,
      what,
    );
  }
}

export interface Downloaded {
  path: string;
  sha256: Sha256Hex;
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
  opts: HttpOptions & {
    expectSha256?: Sha256Hex;
    /** What the URL is, for messages: "profile URL" when not given. */
    what?: string;
  } = {},
): Promise<Downloaded> {
  const what = `${opts.what ?? "profile URL"} ${redact(url)}`;
  const res = await httpGet(url, { ...opts, what: opts.what ?? "profile URL" });
  refuseDeclaredLength(res, MAX_DOWNLOAD_BYTES, what);
  const tmp = `${dest}.part`;
  const hasher = new Sha256Meter({
    max: MAX_DOWNLOAD_BYTES,
    tooLarge: () =>
      new IntegrityError(
        "MALFORMED",
        `${what}: more than the ${MAX_DOWNLOAD_BYTES}-byte limit arrived`,
        what,
      ),
  });
  try {
    await pipeline(res.body, hasher, createWriteStream(tmp), { signal: opts.signal });
  } catch (err) {
    await rm(tmp, { force: true });
    if (err instanceof IntegrityError) throw err;
    throw new RemoteError(`${what}: download failed: ${(err as Error).message}`, undefined, "REMOTE", {
      cause: err,
    });
  }
  const sha256 = hasher.hex();
  if (opts.expectSha256 && opts.expectSha256 !== sha256) {
    await rm(tmp, { force: true });
    throw new IntegrityError(
      "DIGEST_MISMATCH",
      `${opts.what ?? "profile"} ${redact(url)} has sha256 ${sha256}, but it is pinned to sha256 ${opts.expectSha256}`,
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

/**
 * GET `url` with the TLS, redirect and credential handling above, for callers that read (and
 * bound, and verify) the body themselves. An answer other than 200 is a RemoteError carrying the
 * status; `what` names the thing fetched in messages.
 */
export function httpGet(url: string, opts: HttpOptions & { what: string }): Promise<Dispatcher.ResponseData> {
  return requestOk(url, opts, (why) => `${opts.what} ${redact(url)} could not be fetched: ${why}`);
}

/** The one GET of this module: userinfo as Basic auth, the trust module's TLS, the redirect rule, 200 only. */
async function requestOk(
  url: string,
  opts: HttpOptions,
  failed: (why: string) => string,
): Promise<Dispatcher.ResponseData> {
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
    throw new RemoteError(failed((err as Error).message), undefined, "REMOTE", { cause: err });
  }
  if (res.statusCode !== 200) {
    await res.body.dump();
    throw new RemoteError(failed(`HTTP ${res.statusCode}`), res.statusCode);
  }
  return res;
}
