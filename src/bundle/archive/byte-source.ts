import { Readable } from "node:stream";
import { IntegrityError } from "../../errors.js";
import type { RandomAccessSource } from "./source.js";
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

/** Several sources read as one byte range: an archive, or its parts in order. */
export class ConcatFile {
  readonly size: number;
  private readonly starts: number[] = [];

  constructor(readonly segments: RandomAccessSource[]) {
    let at = 0;
    for (const s of segments) {
      this.starts.push(at);
      at += s.size;
    }
    this.size = at;
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
    const want = Math.max(0, Math.min(len, this.size - pos));
    const chunks: Buffer[] = [];
    let done = 0;
    while (done < want) {
      const i = this.segmentAt(pos + done);
      const seg = this.segments[i]!;
      const within = pos + done - this.starts[i]!;
      const n = Math.min(want - done, seg.size - within);
      const b = await seg.read(within, n);
      if (b.length !== n) {
        throw new IntegrityError(
          "TRUNCATED",
          `${seg.name} is shorter than expected (${within + b.length} bytes)`,
          seg.name,
        );
      }
      chunks.push(b);
      done += n;
    }
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, want);
  }

  /** The segments that hold the byte range [start, start+length), with the offsets inside each. */
  ranges(start: number, length: number): { source: RandomAccessSource; start: number; length: number }[] {
    const out: { source: RandomAccessSource; start: number; length: number }[] = [];
    let pos = start;
    const end = start + length;
    while (pos < end) {
      const i = this.segmentAt(pos);
      const seg = this.segments[i]!;
      const within = pos - this.starts[i]!;
      const n = Math.min(end - pos, seg.size - within);
      out.push({ source: seg, start: within, length: n });
      pos += n;
    }
    if (out.length === 0 && this.segments[0]) out.push({ source: this.segments[0], start: 0, length: 0 });
    return out;
  }

  /** The byte range [start, start+length) as a stream, crossing segment boundaries. */
  stream(start: number, length: number): Readable {
    const pieces = this.ranges(start, length);
    async function* gen(): AsyncGenerator<Buffer> {
      for (const r of pieces) {
        if (r.length > 0) yield* r.source.stream(r.start, r.length) as AsyncIterable<Buffer>;
      }
    }
    return Readable.from(gen(), { objectMode: false });
  }

  async close(): Promise<void> {
    await Promise.all(this.segments.map((s) => s.close()));
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
