/** Reading small answers (token responses, JSON documents) with a ceiling, so a hostile server cannot fill memory. */
import type { Readable } from "node:stream";
import { RemoteError } from "../errors.js";

/**
 * The whole body as UTF-8 text when it is at most `limit` bytes. Past the limit reading stops, the
 * connection is dropped and a RemoteError says `what` was too large.
 */
export async function readCapped(body: Readable, limit: number, what: string): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    const b = Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array);
    n += b.length;
    if (n > limit) {
      body.destroy();
      throw new RemoteError(`${what} is larger than ${limit} bytes; refused`, undefined, "TOO_LARGE");
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString("utf8");
}
