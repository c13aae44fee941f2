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
      cb(new IntegrityError("DIGEST_MISMATCH", `${this.label}: content has digest ${got}`, this.expectedDigest));
      return;
    }
    cb();
  }
}
