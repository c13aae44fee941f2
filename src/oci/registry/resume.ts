/**
 * A download that survives a broken connection: when the body breaks off (reset, early close, a
 * stall past the body timeout, a body shorter than its size), the rest is asked for with
 * `Range: bytes=N-` and appended to the same stream, so whatever hashes the stream downstream
 * continues where it was instead of starting over.
 */
import { finished, PassThrough, type Readable, type Writable } from "node:stream";
import { RemoteError } from "../../errors.js";
import { backoffDelay, isRetryableError, type RetryPolicy, sleep } from "./retry.js";

export interface ResumeAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
}

export interface ResumeOptions {
  /** The body of the first answer (a 200 to a plain GET). */
  first: Readable;
  /** Declared size of the content: fewer bytes than this is a broken download. */
  size: number;
  /** Ask again from byte `from` (with a Range header); it returns only 200, 206 or 416 answers. */
  again: (from: number) => Promise<ResumeAnswer>;
  retry: RetryPolicy;
  stats: { retries: number; resumes: number; restarts: number };
  /** Names the content in errors, e.g. "blob sha256:… from registry/repo". */
  what: string;
  /** Appended to the error when the attempts are used up: what the user can do. */
  hint?: string;
  signal?: AbortSignal | undefined;
}

/** Failures of a body in flight that another attempt may not see. */
const BROKEN_BODY_CODES = new Set(["UND_ERR_RES_CONTENT_LENGTH_MISMATCH", "ERR_STREAM_PREMATURE_CLOSE"]);

function isBrokenBody(err: unknown): boolean {
  if (isRetryableError(err)) return true;
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && BROKEN_BODY_CODES.has(code);
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function headerOf(h: ResumeAnswer["headers"], name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** `bytes <start>-<end>/<total|*>` with start === `from`: the continuation asked for. */
export function continuesAt(contentRange: string | undefined, from: number): boolean {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange?.trim() ?? "");
  return m !== null && Number(m[1]) === from;
}

/**
 * One stream of the whole content across as many connections as it takes. A 206 with the right
 * Content-Range continues it; a 200 means the server ignores Range: it sends from byte 0 again, and
 * the bytes already passed on are read and dropped, so the stream (and its running hash) still
 * carries each byte once. The digest check downstream covers exactly the bytes delivered.
 */
export function resumingBody(o: ResumeOptions): Readable {
  const out = new PassThrough();
  resumeInto(o, out);
  return out;
}

/**
 * resumingBody written straight into `into` (a verifier, a file): each chunk is handed on from the
 * connection's own data event, with no stream stage of its own in between; this runs for every
 * 16 KiB TLS record of every download. `into` is ended when the content is complete and destroyed
 * with the error when it cannot be; destroying `into` stops the download.
 */
export function resumeInto(o: ResumeOptions, into: Writable): void {
  let body = o.first;
  let received = 0;
  let failures = 0;
  // Bytes at the start of the current answer that were already delivered (a 200 to a Range request).
  let skip = 0;
  let settled = false;

  const stop = (err?: unknown): void => {
    if (settled) return;
    settled = true;
    body.destroy();
    if (err === undefined) into.end();
    else into.destroy(err instanceof Error ? err : new Error(String(err)));
  };
  into.on("drain", () => body.resume());
  into.on("close", () => {
    if (settled) return;
    settled = true;
    body.destroy();
  });

  const follow = (answer: Readable): void => {
    body = answer;
    answer.on("data", (c: Buffer | Uint8Array) => {
      if (settled) return;
      let b = Buffer.isBuffer(c) ? c : Buffer.from(c);
      if (skip > 0) {
        const n = Math.min(skip, b.length);
        skip -= n;
        b = b.subarray(n);
        if (b.length === 0) return;
      }
      received += b.length;
      if (!into.write(b)) answer.pause();
    });
    finished(answer, (err) => {
      if (settled || answer !== body) return;
      if (!err) {
        // Too many bytes are the verifier's to refuse; too few mean the connection ended early.
        if (received >= o.size) stop();
        else broke(new Error(`the body ended after ${received} of ${o.size} bytes`));
        return;
      }
      if (o.signal?.aborted) stop(o.signal.reason ?? err);
      else if (!isBrokenBody(err)) stop(err);
      else broke(err);
    });
  };

  const broke = (cause: unknown): void => {
    body.destroy();
    failures++;
    if (failures > o.retry.retries) {
      stop(
        new RemoteError(
          `${o.what}: the download failed after ${failures} attempts, the last broke off at byte ${received} of ${o.size}: ${reason(cause)}${o.hint ? `; ${o.hint}` : ""}`,
          undefined,
          "DOWNLOAD_BROKEN",
          { cause },
        ),
      );
      return;
    }
    askAgain().then(
      (next) => {
        if (settled) next?.destroy();
        else if (next) follow(next);
      },
      (err) => stop(err),
    );
  };

  /** The rest of the content from byte `received`, or undefined when there is no more (416). */
  const askAgain = async (): Promise<Readable | undefined> => {
    await sleep(backoffDelay(failures - 1, o.retry), o.signal);
    let next: ResumeAnswer;
    try {
      next = await o.again(received);
    } catch (err) {
      if (err instanceof Error)
        err.message = `${o.what}: resuming at byte ${received} of ${o.size} failed: ${err.message}${o.hint ? `; ${o.hint}` : ""}`;
      throw err;
    }
    if (next.status === 416) {
      // The server has no byte past what arrived: the content is shorter than its descriptor
      // says, which the verifier downstream reports as a size mismatch.
      next.body.destroy();
      stop();
      return undefined;
    }
    o.stats.retries++;
    if (next.status === 206) {
      const range = headerOf(next.headers, "content-range");
      if (!continuesAt(range, received)) {
        next.body.destroy();
        throw new RemoteError(
          `${o.what}: asked for the rest from byte ${received}, the server sent Content-Range "${range ?? ""}"`,
          206,
          "BAD_RANGE",
        );
      }
      o.stats.resumes++;
      skip = 0;
    } else {
      o.stats.restarts++;
      skip = received;
    }
    return next.body;
  };

  follow(o.first);
}
