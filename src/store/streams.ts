import { type Readable, Transform, type TransformCallback } from "node:stream";
import { IntegrityError } from "../errors.js";
import { isVerifiedFor, markVerified } from "../oci/digest.js";

/** Read a small stream (a manifest, an inventory) fully, refusing more than `max` bytes. */
export async function readBounded(stream: Readable, max: number, item: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    total += buf.length;
    if (total > max) {
      stream.destroy();
      throw new IntegrityError("MALFORMED", `${item} is larger than the ${max}-byte limit`, item);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks, total);
}

/** Passes bytes through and reports how many went by, for progress bars. */
export class CountingStream extends Transform {
  constructor(private readonly onBytes: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.onBytes(chunk.length);
    cb(null, chunk);
  }
}

/**
 * `source` piped through a CountingStream. Errors of the source (a digest mismatch found at its end)
 * are forwarded, so a stream that was verified stays verified, and keeps its mark.
 */
export function withProgress(
  source: Readable,
  desc: { digest: string; size: number },
  onBytes: (n: number) => void,
): Readable {
  const counting = new CountingStream(onBytes);
  if (isVerifiedFor(source, desc)) markVerified(counting, desc.digest, desc.size);
  if (source.errored || source.destroyed) {
    // Failed before we got here: its 'error' event is gone, so pass the failure on now.
    counting.on("error", () => {});
    counting.destroy(source.errored ?? new Error("the stream closed before it was read"));
    return counting;
  }
  source.on("error", (err) => counting.destroy(err));
  // The source may fail before anyone reads `counting` (a truncated archive): the error stays on
  // `counting` (its consumer sees it) instead of becoming an uncaught 'error' event.
  counting.on("error", () => {});
  // pipe, not pipeline: a consumer that stops early (a registry that already has the blob) must
  // not destroy the source, which may be one entry of a sequential archive still to be read.
  return source.pipe(counting);
}
