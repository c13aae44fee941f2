import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { IntegrityError } from "../errors.js";
import { assertDigest } from "./descriptor.js";

export function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

export function sha256Digest(data: Uint8Array | string): string {
  return `sha256:${sha256Hex(data)}`;
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
