/**
 * Reads from gem servers: index files bounded in size, and downloads hashed while they stream,
 * bounded, and only given their final name once their digest matches what vouches for them.
 * Dropped connections, 5xx and 429 are tried again with the registry client's backoff; a download
 * tried again starts over, so what lands on disk is always one whole, verified answer.
 */

import { createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import { IntegrityError, RemoteError } from "../../errors.js";
import { Sha256Meter } from "../../oci/digest.js";
import {
  backoffDelay,
  DEFAULT_RETRY,
  isRetryableError,
  isRetryableStatus,
  type RetryPolicy,
  sleep,
} from "../../oci/registry/retry.js";
import { redactSecrets } from "../../redact.js";
import { readBounded } from "../../store/streams.js";
import { type HttpOptions, httpGet } from "../profiles/http.js";

export interface FetchOptions {
  http: HttpOptions;
  /** What is fetched, for messages ("gem rake-13.0.6"). */
  what: string;
  maxBytes: number;
  retry?: RetryPolicy;
}

function tooLarge(what: string, url: string, max: number, seen?: number): IntegrityError {
  const announced = seen === undefined ? "" : ` (the server announces ${seen} bytes)`;
  return new IntegrityError(
    "MALFORMED",
    `${what} ${redactSecrets(url)} is larger than the ${max}-byte limit${announced}`,
    what,
  );
}

function transient(err: unknown): boolean {
  if (err instanceof IntegrityError) return false;
  if (err instanceof RemoteError && err.status !== undefined) return isRetryableStatus(err.status);
  return isRetryableError(err);
}

async function withRetries<T>(opts: FetchOptions, attempt: () => Promise<T>): Promise<T> {
  const policy = opts.retry ?? DEFAULT_RETRY;
  for (let tried = 0; ; tried++) {
    try {
      return await attempt();
    } catch (err) {
      if (!transient(err) || tried >= policy.retries) throw err;
      await sleep(backoffDelay(tried, policy), opts.http.signal);
    }
  }
}

function failed(what: string, url: string, err: unknown): RemoteError {
  return new RemoteError(
    `${what} ${redactSecrets(url)}: download failed: ${(err as Error).message}`,
    undefined,
    "REMOTE",
    { cause: err },
  );
}

/** A text file of at most `maxBytes`, counted as it arrives. */
export async function getText(url: string, opts: FetchOptions): Promise<string> {
  return await withRetries(opts, async () => {
    const res = await httpGet(url, { ...opts.http, what: opts.what });
    const declared = Number(res.headers["content-length"]);
    if (declared > opts.maxBytes) {
      res.body.destroy();
      throw tooLarge(opts.what, url, opts.maxBytes, declared);
    }
    try {
      const item = `${opts.what} ${redactSecrets(url)}`;
      return (await readBounded(res.body, opts.maxBytes, item)).toString("utf8");
    } catch (err) {
      if (err instanceof IntegrityError) throw err;
      throw failed(opts.what, url, err);
    }
  });
}

export interface Fetched {
  path: string;
  sha256: string;
  size: number;
}

/**
 * Streams `url` to `dest`, hashing as it goes. With `expect`, the file only takes its name when the
 * sha256 matches; otherwise it is removed and an IntegrityError names both digests and who vouched.
 */
export async function downloadTo(
  url: string,
  dest: string,
  opts: FetchOptions & { expect?: { sha256: string; vouchedBy: string } },
): Promise<Fetched> {
  const tmp = `${dest}.part`;
  const fetched = await withRetries(opts, async () => {
    const res = await httpGet(url, { ...opts.http, what: opts.what });
    const declared = Number(res.headers["content-length"]);
    if (declared > opts.maxBytes) {
      res.body.destroy();
      throw tooLarge(opts.what, url, opts.maxBytes, declared);
    }
    const hasher = new Sha256Meter({
      max: opts.maxBytes,
      tooLarge: () => tooLarge(opts.what, url, opts.maxBytes),
    });
    try {
      const signal = opts.http.signal;
      await pipeline(res.body, hasher, createWriteStream(tmp), signal ? { signal } : {});
    } catch (err) {
      await rm(tmp, { force: true });
      if (err instanceof IntegrityError) throw err;
      throw failed(opts.what, url, err);
    }
    return { sha256: hasher.hex(), size: hasher.size };
  });
  const expected = opts.expect?.sha256.toLowerCase();
  if (opts.expect && expected !== fetched.sha256) {
    await rm(tmp, { force: true });
    throw new IntegrityError(
      "DIGEST_MISMATCH",
      `${opts.what} from ${redactSecrets(url)} has sha256 ${fetched.sha256}, but ${opts.expect.vouchedBy} lists sha256 ${expected}`,
      opts.what,
    );
  }
  await rename(tmp, dest);
  return { path: dest, ...fetched };
}
