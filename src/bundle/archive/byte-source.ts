import { createReadStream } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { Readable } from "node:stream";
import { IntegrityError } from "../../errors.js";
import type { ByteSource } from "./tar-format.js";

const CHUNK = 1024 * 1024;

/**
 * Every count asked of a byte source is a whole, non-negative, exact number: a fraction or NaN
 * would make a read return nothing and its caller spin forever. The tar parser already refuses
 * such headers; this keeps any other path from spinning.
 */
function checkCount(n: number, label: string, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new IntegrityError("MALFORMED", `${label}: invalid byte count ${n} for ${what}`, label);
  }
}

/**
 * `p`, or a rejection as soon as `signal` aborts: a read parked on a stalled pipe must not keep a
 * cancelled command waiting for bytes that may never come.
 */
export function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) {
    p.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (r) => {
        signal.removeEventListener("abort", onAbort);
        resolve(r);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

/** Sequential bytes from a stream, read in exact amounts. */
export class StreamByteSource implements ByteSource {
  private readonly it: AsyncIterator<Buffer>;
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  offset = 0;

  /** `signal` interrupts a read waiting for input (a stalled pipe), so cancellation is always heard. */
  constructor(
    input: AsyncIterable<Buffer>,
    private readonly label: string,
    private readonly signal?: AbortSignal,
  ) {
    this.it = input[Symbol.asyncIterator]();
  }

  private next(): Promise<IteratorResult<Buffer>> {
    return untilAborted(this.it.next(), this.signal);
  }

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.next();
    if (r.done) {
      this.done = true;
      return false;
    }
    const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    return true;
  }

  /** Up to n bytes (at least one), or null at EOF. */
  async readUpTo(n: number): Promise<Buffer | null> {
    checkCount(n, this.label, "a read");
    if (n === 0) throw new IntegrityError("MALFORMED", `${this.label}: a read of zero bytes`, this.label);
    while (this.buf.length === 0) if (!(await this.fill())) return null;
    const out = this.buf.length <= n ? this.buf : this.buf.subarray(0, n);
    this.buf = this.buf.subarray(out.length);
    this.offset += out.length;
    return out;
  }

  async readBlock(n: number, what: string): Promise<Buffer | null> {
    checkCount(n, this.label, what);
    while (this.buf.length < n) {
      if (!(await this.fill())) {
        if (this.buf.length === 0) return null;
        throw new IntegrityError(
          "TRUNCATED",
          `${this.label} is truncated: it ends inside ${what}`,
          this.label,
        );
      }
    }
    const out = Buffer.from(this.buf.subarray(0, n));
    this.buf = this.buf.subarray(n);
    this.offset += n;
    return out;
  }

  async skip(n: number, what: string): Promise<void> {
    checkCount(n, this.label, what);
    let left = n;
    while (left > 0) {
      const b = await this.readUpTo(left);
      if (!b)
        throw new IntegrityError(
          "TRUNCATED",
          `${this.label} is truncated: it ends inside ${what}`,
          this.label,
        );
      left -= b.length;
    }
  }

  async restIsZero(): Promise<boolean> {
    let zero = true;
    for (;;) {
      const b = await this.readUpTo(CHUNK);
      if (!b) return zero;
      if (zero && !b.every((x) => x === 0)) zero = false;
    }
  }

  /**
   * Stops reading the input (e.g. when the consumer gave up early). Does not wait for the input's
   * own cleanup: a generator parked on a stalled read would finish only when bytes arrive.
   */
  async close(): Promise<void> {
    this.done = true;
    this.it.return?.()?.catch(() => {});
  }
}

/** One file of a (possibly split) archive. */
export interface Segment {
  file: string;
  size: number;
  /** Human name used in errors, e.g. the part's file name. */
  name: string;
}

/** Several files read as one byte range: an archive, or its parts in order. */
export class ConcatFile {
  readonly size: number;
  private readonly starts: number[] = [];
  private handles = new Map<number, FileHandle>();

  constructor(readonly segments: Segment[]) {
    let at = 0;
    for (const s of segments) {
      this.starts.push(at);
      at += s.size;
    }
    this.size = at;
  }

  private async handle(i: number): Promise<FileHandle> {
    let h = this.handles.get(i);
    if (!h) {
      h = await open(this.segments[i]!.file, "r");
      this.handles.set(i, h);
    }
    return h;
  }

  private segmentAt(pos: number): number {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Reads up to len bytes at pos (fewer only at the end). */
  async read(pos: number, len: number): Promise<Buffer> {
    const out = Buffer.alloc(Math.max(0, Math.min(len, this.size - pos)));
    let done = 0;
    while (done < out.length) {
      const i = this.segmentAt(pos + done);
      const within = pos + done - this.starts[i]!;
      const want = Math.min(out.length - done, this.segments[i]!.size - within);
      const h = await this.handle(i);
      const { bytesRead } = await h.read(out, done, want, within);
      if (bytesRead === 0) {
        throw new IntegrityError(
          "TRUNCATED",
          `${this.segments[i]!.name} is shorter than expected (${within} bytes)`,
          this.segments[i]!.name,
        );
      }
      done += bytesRead;
    }
    return out;
  }

  /** The byte range [start, start+length) as a stream, crossing segment boundaries. */
  stream(start: number, length: number): Readable {
    const self = this;
    async function* gen(): AsyncGenerator<Buffer> {
      let pos = start;
      const end = start + length;
      while (pos < end) {
        const i = self.segmentAt(pos);
        const seg = self.segments[i]!;
        const within = pos - self.starts[i]!;
        const upto = Math.min(seg.size, end - self.starts[i]!);
        let got = 0;
        for await (const c of createReadStream(seg.file, {
          start: within,
          end: upto - 1,
          highWaterMark: CHUNK,
        })) {
          got += (c as Buffer).length;
          yield c as Buffer;
        }
        if (got !== upto - within) {
          throw new IntegrityError("TRUNCATED", `${seg.name} is shorter than expected`, seg.name);
        }
        pos += got;
      }
    }
    return Readable.from(gen(), { objectMode: false });
  }

  async close(): Promise<void> {
    const hs = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(hs.map((h) => h.close()));
  }
}

/** Random-access byte source over a ConcatFile: skips are seeks, so indexing reads headers only. */
export class FileByteSource implements ByteSource {
  offset = 0;
  constructor(
    private readonly file: ConcatFile,
    private readonly label: string,
  ) {}

  async readBlock(n: number, what: string): Promise<Buffer | null> {
    checkCount(n, this.label, what);
    if (this.offset >= this.file.size) return null;
    if (this.offset + n > this.file.size) {
      throw new IntegrityError("TRUNCATED", `${this.label} is truncated: it ends inside ${what}`, this.label);
    }
    const b = await this.file.read(this.offset, n);
    this.offset += n;
    return b;
  }

  async skip(n: number, what: string): Promise<void> {
    checkCount(n, this.label, what);
    if (this.offset + n > this.file.size) {
      throw new IntegrityError("TRUNCATED", `${this.label} is truncated: it ends inside ${what}`, this.label);
    }
    this.offset += n;
  }

  async restIsZero(): Promise<boolean> {
    while (this.offset < this.file.size) {
      const b = await this.file.read(this.offset, Math.min(CHUNK, this.file.size - this.offset));
      this.offset += b.length;
      if (!b.every((x) => x === 0)) return false;
    }
    return true;
  }
}
