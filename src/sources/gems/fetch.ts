/**
 * Reads from gem servers: index files bounded in size, and downloads hashed while they stream,
 * bounded, and only given their final name once their digest matches what vouches for them.
 */
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { IntegrityError, RemoteError } from "../../errors.js";
import { redactSecrets } from "../../redact.js";
import { readBounded } from "../../store/streams.js";
import { type HttpOptions, httpGet } from "../profiles/http.js";

function tooLarge(what: string, url: string, max: number, seen?: number): IntegrityError {
  return new IntegrityError(
    "MALFORMED",
    `${what} ${redactSecrets(url)} is larger than the ${max}-byte limit${seen === undefined ? "" : ` (the server announces ${seen} bytes)`}`,
    what,
  );
}

function declaredLength(headers: Record<string, string | string[] | undefined>): number {
  return Number(headers["content-length"]);
}

/** A text file of at most `maxBytes`, counted as it arrives. */
export async function getText(
  url: string,
  opts: { http: HttpOptions; what: string; maxBytes: number },
): Promise<string> {
  const res = await httpGet(url, { ...opts.http, what: opts.what });
  const declared = declaredLength(res.headers);
  if (declared > opts.maxBytes) {
    res.body.destroy();
    throw tooLarge(opts.what, url, opts.maxBytes, declared);
  }
  try {
    return (await readBounded(res.body, opts.maxBytes, `${opts.what} ${redactSecrets(url)}`)).toString(
      "utf8",
    );
  } catch (err) {
    if (err instanceof IntegrityError) throw err;
    throw new RemoteError(
      `${opts.what} ${redactSecrets(url)}: download failed: ${(err as Error).message}`,
      undefined,
      "REMOTE",
      { cause: err },
    );
  }
}

class BoundedHasher extends Transform {
  readonly hash = createHash("sha256");
  size = 0;
  constructor(
    private readonly onTooLarge: () => Error,
    private readonly maxBytes: number,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    if (this.size > this.maxBytes) {
      cb(this.onTooLarge());
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }
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
  opts: { http: HttpOptions; what: string; maxBytes: number; expect?: { sha256: string; vouchedBy: string } },
): Promise<Fetched> {
  const res = await httpGet(url, { ...opts.http, what: opts.what });
  const declared = declaredLength(res.headers);
  if (declared > opts.maxBytes) {
    res.body.destroy();
    throw tooLarge(opts.what, url, opts.maxBytes, declared);
  }
  const tmp = `${dest}.part`;
  const hasher = new BoundedHasher(() => tooLarge(opts.what, url, opts.maxBytes), opts.maxBytes);
  try {
    await pipeline(
      res.body,
      hasher,
      createWriteStream(tmp),
      opts.http.signal ? { signal: opts.http.signal } : {},
    );
  } catch (err) {
    await rm(tmp, { force: true });
    if (err instanceof IntegrityError) throw err;
    throw new RemoteError(
      `${opts.what} ${redactSecrets(url)}: download failed: ${(err as Error).message}`,
      undefined,
      "REMOTE",
      {
        cause: err,
      },
    );
  }
  const sha256 = hasher.hash.digest("hex");
  if (opts.expect && opts.expect.sha256.toLowerCase() !== sha256) {
    await rm(tmp, { force: true });
    throw new IntegrityError(
      "DIGEST_MISMATCH",
      `${opts.what} from ${redactSecrets(url)} has sha256 ${sha256}, but ${opts.expect.vouchedBy} lists sha256 ${opts.expect.sha256.toLowerCase()}`,
      opts.what,
    );
  }
  await rename(tmp, dest);
  return { path: dest, sha256, size: hasher.size };
}
