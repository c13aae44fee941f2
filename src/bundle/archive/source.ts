import { createReadStream } from "node:fs";
import { type FileHandle, open, readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { IntegrityError } from "../../errors.js";

/**
 * Bytes that can be read at any offset: a file on disk or an object in S3. Every bundle form that
 * is not a pipe (a tar, its split parts) is read through this, so each command reads a local file
 * and an `s3://` object by the same code.
 */
export interface RandomAccessSource {
  /** What messages call it: the file's name, or `s3://BUCKET/KEY`. */
  readonly name: string;
  readonly size: number;
  /** The path when the bytes are on local disk: hash workers then read the file themselves. */
  readonly localFile?: string | undefined;
  /** `len` bytes at `pos` (fewer only at the end); for headers and small files. */
  read(pos: number, len: number): Promise<Buffer>;
  /** The range [start, start+length) as a stream; ends with TRUNCATED when the bytes are not all there. */
  stream(start: number, length: number): Readable;
  close(): Promise<void>;
}

/**
 * Where a bundle's files lie: local paths or `s3://` URLs. Names are what the user typed; a
 * sibling is another name in the same folder (or under the same key prefix).
 */
export interface SourcePlace {
  /** The size of the regular file (object) at `path`, or undefined when there is none. */
  sizeOf(path: string): Promise<number | undefined>;
  /** A source for `path`, whose size is already known. */
  open(path: string, size: number): RandomAccessSource;
  /** A small file's bytes, or undefined when it does not exist. */
  readSmall(path: string, max: number): Promise<Buffer | undefined>;
  sibling(path: string, name: string): string;
}

const CHUNK = 1024 * 1024;

/** A file on local disk. */
export class LocalFileSource implements RandomAccessSource {
  private handle: Promise<FileHandle> | undefined;

  constructor(
    readonly localFile: string,
    readonly size: number,
    readonly name: string = localFile,
  ) {}

  async read(pos: number, len: number): Promise<Buffer> {
    this.handle ??= open(this.localFile, "r");
    const h = await this.handle;
    const out = Buffer.alloc(Math.max(0, Math.min(len, this.size - pos)));
    let done = 0;
    while (done < out.length) {
      const { bytesRead } = await h.read(out, done, out.length - done, pos + done);
      if (bytesRead === 0) {
        throw new IntegrityError(
          "TRUNCATED",
          `${this.name} is shorter than expected (${pos + done} bytes)`,
          this.name,
        );
      }
      done += bytesRead;
    }
    return out;
  }

  stream(start: number, length: number): Readable {
    const { localFile, name } = this;
    async function* gen(): AsyncGenerator<Buffer> {
      if (length === 0) return;
      let got = 0;
      for await (const c of createReadStream(localFile, {
        start,
        end: start + length - 1,
        highWaterMark: CHUNK,
      })) {
        got += (c as Buffer).length;
        yield c as Buffer;
      }
      if (got !== length) throw new IntegrityError("TRUNCATED", `${name} is shorter than expected`, name);
    }
    return Readable.from(gen(), { objectMode: false });
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    if (h) await (await h).close();
  }
}

/** Local files and folders. */
export const localPlace: SourcePlace = {
  async sizeOf(path) {
    try {
      const s = await stat(path);
      return s.isFile() ? s.size : undefined;
    } catch {
      return undefined;
    }
  },
  open(path, size) {
    return new LocalFileSource(path, size);
  },
  async readSmall(path, max) {
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    if (size > max) throw new IntegrityError("MALFORMED", `${path} is larger than ${max} bytes`, path);
    return readFile(path);
  },
  sibling(path, name) {
    return join(dirname(path), name);
  },
};
