import { createHash, type Hash } from "node:crypto";
import { join } from "node:path";
import { Transform, type TransformCallback } from "node:stream";
import { IntegrityError } from "../errors.js";

/*
 * The one parser for digests. Every digest that reaches airgap from outside (config, inspec.yml,
 * inspec.lock, index.json, bundle.json, registry headers) passes through `parseDigest` or
 * `parseSha256Hex` before it is compared, used as a cache key or becomes part of a file path, so a
 * value like "../../etc/x" can never name a file. airgap handles sha256 only; other algorithms are
 * refused rather than trusted unchecked.
 */

declare const checked: unique symbol;
/** 64 lowercase hexadecimal characters, checked: safe as a file name. */
export type Sha256Hex = string & { readonly [checked]: "sha256-hex" };
/** `sha256:` and 64 lowercase hexadecimal characters, checked. */
export type Sha256Digest = `sha256:${string}` & { readonly [checked]: "sha256-digest" };

const HEX_RE = /^[a-f0-9]{64}$/;
const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

/** A value for an error message: quoted, control characters escaped, long values cut. */
function shown(value: unknown): string {
  const text = typeof value === "string" ? value : String(value);
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}

export function isSha256Hex(value: unknown): value is Sha256Hex {
  return typeof value === "string" && HEX_RE.test(value);
}

export function isDigest(value: unknown): value is Sha256Digest {
  return typeof value === "string" && DIGEST_RE.test(value);
}

/** `sha256:<64 lowercase hex>`, or an IntegrityError (MALFORMED) naming `what`. */
export function parseDigest(value: unknown, what = "digest"): Sha256Digest {
  if (!isDigest(value)) {
    throw new IntegrityError(
      "MALFORMED",
      `${what} ${shown(value)} is not a sha256 digest (sha256: followed by 64 lowercase hexadecimal digits)`,
      typeof value === "string" ? value : undefined,
    );
  }
  return value;
}

/** A bare sha256 (64 lowercase hex, as inspec.yml, inspec.lock and SHA256SUMS write it), or MALFORMED. */
export function parseSha256Hex(value: unknown, what = "sha256"): Sha256Hex {
  if (!isSha256Hex(value)) {
    throw new IntegrityError(
      "MALFORMED",
      `${what} ${shown(value)} is not a sha256 checksum (64 lowercase hexadecimal digits)`,
      typeof value === "string" ? value : undefined,
    );
  }
  return value;
}

/** Same as parseDigest; kept under the name most of the code base calls. */
export function assertDigest(digest: string, what = "digest"): Sha256Digest {
  return parseDigest(digest, what);
}

export function digestHex(digest: string, what = "digest"): Sha256Hex {
  return parseDigest(digest, what).slice("sha256:".length) as Sha256Hex;
}

export function hexDigest(hex: string, what = "sha256"): Sha256Digest {
  return `sha256:${parseSha256Hex(hex, what)}` as Sha256Digest;
}

/**
 * `<dir>/<hex>` for a digest (`sha256:<hex>`) or a bare hex: the one way a digest becomes a file
 * name (caches, `blobs/sha256/<hex>`), validated so it can never leave `dir`.
 */
export function digestPath(dir: string, digestOrHex: string, what = "digest"): string {
  const hex = digestOrHex.startsWith("sha256:")
    ? digestHex(digestOrHex, what)
    : parseSha256Hex(digestOrHex, what);
  return join(dir, hex);
}

export function sha256Hex(data: Uint8Array | string): Sha256Hex {
  return createHash("sha256").update(data).digest("hex") as Sha256Hex;
}

export function sha256Digest(data: Uint8Array | string): Sha256Digest {
  return `sha256:${sha256Hex(data)}` as Sha256Digest;
}

/**
 * Passes bytes through while hashing them; fails the stream at the end (or as soon as too many
 * bytes arrive) when the size or digest differs from what was expected. Nothing downstream may
 * commit the content before this stream ends without error.
 */
const verifiedStreams = new WeakMap<object, { digest: string; size: number | undefined }>();

/**
 * Was this stream made to fail unless its bytes match `desc`? Consumers use it to avoid hashing the
 * same bytes twice; wrappers that forward errors may pass the mark on with `markVerified`.
 */
export function isVerifiedFor(stream: object, desc: { digest: string; size: number }): boolean {
  const mark = verifiedStreams.get(stream);
  return mark !== undefined && mark.digest === desc.digest && mark.size === desc.size;
}

export function markVerified(stream: object, digest: string, size: number | undefined): void {
  verifiedStreams.set(stream, { digest, size });
}

export class VerifyingStream extends Transform {
  private readonly hash: Hash = createHash("sha256");
  private received = 0;

  constructor(
    readonly expectedDigest: string,
    readonly expectedSize: number | undefined,
    /** How to name the content in errors, e.g. "blob sha256:… from registry.example/repo". */
    readonly label: string = expectedDigest,
  ) {
    super();
    assertDigest(expectedDigest);
    markVerified(this, expectedDigest, expectedSize);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.received += chunk.length;
    if (this.expectedSize !== undefined && this.received > this.expectedSize) {
      cb(
        new IntegrityError(
          "SIZE_MISMATCH",
          `${this.label}: more than the expected ${this.expectedSize} bytes arrived`,
          this.expectedDigest,
        ),
      );
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.expectedSize !== undefined && this.received !== this.expectedSize) {
      cb(
        new IntegrityError(
          "SIZE_MISMATCH",
          `${this.label}: got ${this.received} bytes, expected ${this.expectedSize}`,
          this.expectedDigest,
        ),
      );
      return;
    }
    const got = `sha256:${this.hash.digest("hex")}`;
    if (got !== this.expectedDigest) {
      cb(
        new IntegrityError(
          "DIGEST_MISMATCH",
          `${this.label}: content has digest ${got}`,
          this.expectedDigest,
        ),
      );
      return;
    }
    cb();
  }
}

/**
 * Passes bytes through while counting and hashing them (SHA-256), for content whose digest is
 * learned rather than expected; with a limit, the stream fails with `tooLarge()` once past it.
 */
export class Sha256Meter extends Transform {
  private readonly hash: Hash = createHash("sha256");
  size = 0;

  constructor(private readonly limit?: { max: number; tooLarge: () => Error }) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    if (this.limit && this.size > this.limit.max) {
      cb(this.limit.tooLarge());
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }

  /** The digest of everything that passed; call once, after the stream ended. */
  hex(): Sha256Hex {
    return this.hash.digest("hex") as Sha256Hex;
  }
}
