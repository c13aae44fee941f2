import { createHash, type Hash, randomBytes } from "node:crypto";
import { constants, createReadStream, createWriteStream } from "node:fs";
import {
  copyFile,
  type FileHandle,
  link,
  mkdir,
  open,
  readdir,
  rename,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { Readable, type Stream, Transform, type TransformCallback, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { AirgapError, UsageError } from "../../errors.js";
import type { ArtifactRepositoryOptions } from "../../store/artifacts.js";
import { trackTemp } from "../../temp-files.js";
import { createZstdCompress } from "../zstd.js";
import { normalizeBundlePath } from "./paths.js";
import { isS3Url, uploadPartSize } from "./s3-url.js";
import { BLOCK, encodeHeader, padLength, RECORD } from "./tar-format.js";

/** One file of a bundle, with its bytes in memory or in a file on disk. */
export interface BundleFile {
  path: string;
  size: number;
  source: { bytes: Buffer } | { file: string };
}

export interface WriteTarget {
  /** A directory, FILE.tar, FILE.tar.zst, "-" for standard output, or an `s3://BUCKET/KEY` object (tar only). */
  path: string;
  format: "dir" | "tar";
  compress: "none" | "zstd";
  /** Split the (compressed) tar into parts of at most this many bytes; tar only. */
  splitSize?: number;
}

export interface WriteOptions {
  signal?: AbortSignal;
  /** Called with the cumulative number of file-content bytes written so far. */
  onProgress?: (bytes: number) => void;
  /** Modification time of every tar entry; defaults to $SOURCE_DATE_EPOCH, else now. */
  mtime?: Date;
  /** Replace an existing non-empty output instead of refusing. */
  overwrite?: boolean;
  /** Endpoint, credentials and TLS for an `s3://` output: the artifact repository's settings. */
  s3?: ArtifactRepositoryOptions;
}

/** The manifest written next to split parts, last, so its presence means the set is complete. */
export interface PartsManifest {
  format: "cinc-airgap-parts/v1";
  file: string;
  compress: "none" | "zstd";
  totalSize: number;
  parts: { name: string; size: number; sha256: string }[];
}

export const PARTS_FORMAT = "cinc-airgap-parts/v1";

export function partName(base: string, index: number): string {
  return `${base}.part-${String(index).padStart(4, "0")}`;
}

const UNITS: Record<string, number> = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };
const DECIMAL: Record<string, number> = { K: 1e3, M: 1e6, G: 1e9, T: 1e12 };

/**
 * Parses a size as `split` does: plain bytes, `4G`/`4GiB` (powers of 1024), `4GB` (powers of 1000).
 */
export function parseSize(input: string | number): number {
  if (typeof input === "number") {
    if (!Number.isSafeInteger(input) || input <= 0)
      throw new UsageError(`size ${input} is not a positive whole number of bytes`);
    return input;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)\s*$/i.exec(input);
  if (!m)
    throw new UsageError(
      `size "${input}" is not understood; use bytes or a number with K, M, G or T (e.g. 4G, 700M, 4GiB)`,
    );
  const unit = m[2]!.toUpperCase();
  const suffix = m[3]!.toLowerCase();
  if (unit === "" && suffix !== "" && suffix !== "b")
    throw new UsageError(`size "${input}" is not understood`);
  const mult = suffix === "b" && unit !== "" ? DECIMAL[unit]! : UNITS[unit]!;
  const n = Math.floor(Number(m[1]) * mult);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new UsageError(`size "${input}" must be a positive number of bytes`);
  return n;
}

/**
 * The smallest part a split bundle may have. Smaller parts are a mistake, not a choice (`--split 1`
 * would write a million part files), and media that need splitting hold far more.
 */
export const MIN_SPLIT_SIZE = 1024 * 1024;

/** A `--split` size from the command line, at least MIN_SPLIT_SIZE (the writer itself takes any size). */
export function splitSize(input: string | number): number {
  const n = parseSize(input);
  if (n < MIN_SPLIT_SIZE) {
    throw new UsageError(
      `--split ${input} is ${n} byte${n === 1 ? "" : "s"}; parts must be at least 1 MiB (e.g. --split 700M, --split 4G)`,
    );
  }
  return n;
}

function defaultMtime(): Date {
  const epoch = process.env.SOURCE_DATE_EPOCH;
  if (epoch && /^\d+$/.test(epoch)) return new Date(Number(epoch) * 1000);
  return new Date(Math.floor(Date.now() / 1000) * 1000);
}

function suffix(): string {
  return randomBytes(4).toString("hex");
}

function checkFiles(files: BundleFile[]): void {
  const seen = new Set<string>();
  for (const f of files) {
    const p = normalizeBundlePath(f.path, "bundle file");
    if (p !== f.path)
      throw new AirgapError(`bundle file path ${JSON.stringify(f.path)} is not in normal form`);
    if (seen.has(p)) throw new AirgapError(`bundle file ${p} is given twice`);
    seen.add(p);
    if (!Number.isSafeInteger(f.size) || f.size < 0)
      throw new AirgapError(`bundle file ${p} has invalid size ${f.size}`);
    if ("bytes" in f.source && f.source.bytes.length !== f.size) {
      throw new AirgapError(`bundle file ${p}: ${f.source.bytes.length} bytes given, size says ${f.size}`);
    }
  }
}

async function isNonEmpty(path: string): Promise<boolean> {
  try {
    const s = await stat(path);
    if (!s.isDirectory()) return true;
    return (await readdir(path)).length > 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Remove what an earlier run writing the same output left when it was killed before its own cleanup:
 * `NAME.partial-*`, `NAME.part-NNNN.partial-*`, `NAME.parts.json.partial-*` beside the output. Only
 * exact names of this writer's temporary files are touched; two runs writing one output at the same
 * time would overwrite each other's result anyway.
 */
export async function removeLeftovers(output: string): Promise<void> {
  const name = basename(output);
  const dir = dirname(output);
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const mine = new RegExp(`^${escaped}(\\.part-\\d{4}|\\.parts\\.json)?\\.partial-[0-9a-f]{8}$`);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const n of names) if (mine.test(n)) await rm(join(dir, n), { recursive: true, force: true });
}

/**
 * Writes a bundle's files in the order given. Directory output is built beside the target and
 * renamed into place; tar output goes to a `.partial-*` file that is renamed when complete, so a
 * crash never leaves something that looks like a finished bundle.
 */
export async function writeBundle(
  files: BundleFile[],
  target: WriteTarget,
  opts: WriteOptions = {},
): Promise<{ paths: string[]; bytes: number }> {
  checkFiles(files);
  opts.signal?.throwIfAborted();
  if (target.format === "dir") {
    if (isS3Url(target.path))
      throw new UsageError("a bundle in S3 is a tar: name the output s3://BUCKET/KEY.tar or KEY.tar.zst");
    if (target.compress !== "none")
      throw new UsageError("a directory bundle cannot be compressed; use a .tar.zst output");
    if (target.splitSize !== undefined) throw new UsageError("only a tar bundle can be split");
    if (target.path === "-") throw new UsageError("a directory bundle cannot go to standard output");
    await removeLeftovers(target.path);
    return writeDir(files, target.path, opts);
  }
  if (target.splitSize !== undefined) {
    if (target.path === "-") throw new UsageError("a bundle written to standard output cannot be split");
    parseSize(target.splitSize);
  }
  if (isS3Url(target.path)) return writeS3Tar(files, target, opts);
  if (target.path !== "-") await removeLeftovers(target.path);
  return writeTar(files, target, opts);
}

async function writeDir(
  files: BundleFile[],
  path: string,
  opts: WriteOptions,
): Promise<{ paths: string[]; bytes: number }> {
  if (!opts.overwrite && (await isNonEmpty(path))) {
    throw new UsageError(`${path} exists and is not empty; remove it, choose another -o, or pass --force`);
  }
  const tmp = `${path}.partial-${suffix()}`;
  const untrack = trackTemp(tmp);
  await mkdir(tmp, { recursive: false, mode: 0o755 });
  let bytes = 0;
  try {
    const made = new Set<string>();
    for (const f of files) {
      opts.signal?.throwIfAborted();
      const dest = join(tmp, f.path);
      const dir = dirname(f.path);
      if (dir !== "." && !made.has(dir)) {
        await mkdir(join(tmp, dir), { recursive: true, mode: 0o755 });
        made.add(dir);
      }
      if ("bytes" in f.source) {
        await writeFile(dest, f.source.bytes, { mode: 0o644 });
      } else {
        const s = await stat(f.source.file);
        if (s.size !== f.size) {
          throw new AirgapError(`${f.source.file} is ${s.size} bytes, expected ${f.size} for ${f.path}`);
        }
        // A hard link where possible (same filesystem): a warm create then writes no blob bytes.
        // The cache notices an edit made through the link and re-verifies (OciLayoutStore.hasBlob).
        try {
          await link(f.source.file, dest);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== "EXDEV" && code !== "EPERM" && code !== "EMLINK" && code !== "ENOTSUP") throw err;
          await copyFile(f.source.file, dest, constants.COPYFILE_FICLONE);
        }
      }
      bytes += f.size;
      opts.onProgress?.(bytes);
    }
    opts.signal?.throwIfAborted();
    if (await exists(path)) {
      if (await isNonEmpty(path)) {
        const old = `${path}.old-${suffix()}`;
        await rename(path, old);
        await rename(tmp, path);
        await rm(old, { recursive: true, force: true });
      } else {
        await rm(path, { recursive: true, force: true });
        await rename(tmp, path);
      }
    } else {
      await rename(tmp, path);
    }
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    untrack();
  }
  return { paths: [path], bytes };
}

/** The tar byte stream of the files, in the given order, with parent directories just before their first file. */
async function* tarBytes(files: BundleFile[], mtime: Date, opts: WriteOptions): AsyncGenerator<Buffer> {
  let total = 0;
  let content = 0;
  const dirs = new Set<string>();
  const emit = (b: Buffer) => {
    total += b.length;
    return b;
  };
  for (const f of files) {
    const parts = f.path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join("/");
      if (!dirs.has(d)) {
        dirs.add(d);
        yield emit(encodeHeader(d, 0, mtime, "Directory"));
      }
    }
    yield emit(encodeHeader(f.path, f.size, mtime, "File"));
    if ("bytes" in f.source) {
      if (f.size > 0) yield emit(f.source.bytes);
      content += f.size;
    } else {
      let got = 0;
      const rs = createReadStream(f.source.file, { highWaterMark: 1024 * 1024 });
      for await (const chunk of rs) {
        const c = chunk as Buffer;
        got += c.length;
        if (got > f.size) {
          rs.destroy();
          throw new AirgapError(
            `${f.source.file} grew while being written as ${f.path} (expected ${f.size} bytes)`,
          );
        }
        content += c.length;
        yield emit(c);
        opts.onProgress?.(content);
      }
      if (got !== f.size) {
        throw new AirgapError(`${f.source.file} has ${got} bytes, expected ${f.size} for ${f.path}`);
      }
    }
    opts.onProgress?.(content);
    const pad = padLength(f.size);
    if (pad) yield emit(Buffer.alloc(pad));
  }
  const end = 2 * BLOCK;
  const rest = (RECORD - ((total + end) % RECORD)) % RECORD;
  yield emit(Buffer.alloc(end + rest));
}

class Counter extends Transform {
  bytes = 0;
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

/** Cuts a byte stream into part files of at most `partSize` bytes, hashing each. */
class PartSink extends Writable {
  readonly parts: { name: string; size: number; sha256: string; tmp: string; untrack: () => void }[] = [];
  private fh: FileHandle | undefined;
  private hash: Hash | undefined;
  private cur = 0;

  constructor(
    private readonly base: string,
    private readonly partSize: number,
    private readonly tag: string,
  ) {
    super({ highWaterMark: 1024 * 1024 });
  }

  private async closePart(): Promise<void> {
    if (!this.fh) return;
    await this.fh.close();
    const p = this.parts.at(-1)!;
    p.size = this.cur;
    p.sha256 = this.hash!.digest("hex");
    this.fh = undefined;
  }

  private async openPart(): Promise<void> {
    const name = partName(basename(this.base), this.parts.length + 1);
    const tmp = join(dirname(this.base), `${name}.partial-${this.tag}`);
    // Noted before it exists, so the writer's cleanup (and an exit) can never miss it.
    this.parts.push({ name, size: 0, sha256: "", tmp, untrack: trackTemp(tmp) });
    this.fh = await open(tmp, "w", 0o644);
    this.hash = createHash("sha256");
    this.cur = 0;
  }

  /** The write in flight, if any: a stopped sink's files are removed only after it ended. */
  private inFlight: Promise<void> = Promise.resolve();

  /** Resolves once no write is in flight and no part file is open. */
  async settled(): Promise<void> {
    await this.inFlight.catch(() => {});
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close().catch(() => {});
  }

  override _write(chunk: Buffer, _e: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.inFlight = (async () => {
      let off = 0;
      while (off < chunk.length) {
        // A destroyed sink (an abort) opens no further part: its cleanup may already have run.
        if (this.destroyed) throw new AirgapError("the split bundle writer was stopped");
        if (!this.fh || this.cur === this.partSize) {
          await this.closePart();
          await this.openPart();
        }
        const n = Math.min(chunk.length - off, this.partSize - this.cur);
        const slice = chunk.subarray(off, off + n);
        let w = 0;
        while (w < n) w += (await this.fh!.write(slice, w, n - w)).bytesWritten;
        this.hash!.update(slice);
        this.cur += n;
        off += n;
      }
    })();
    this.inFlight.then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    void (async () => {
      if (this.parts.length === 0) await this.openPart();
      await this.closePart();
    })().then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const fh = this.fh;
    this.fh = undefined;
    if (fh)
      void fh.close().then(
        () => cb(err),
        () => cb(err),
      );
    else cb(err);
  }
}

// stream/promises' overloads do not accept a computed list of stages.
const runPipeline = pipeline as unknown as (
  streams: Stream[],
  opts: { signal?: AbortSignal | undefined; end?: boolean },
) => Promise<void>;

async function writeTar(
  files: BundleFile[],
  target: WriteTarget,
  opts: WriteOptions,
): Promise<{ paths: string[]; bytes: number }> {
  const mtime = opts.mtime ?? defaultMtime();
  const stages: Stream[] = [Readable.from(tarBytes(files, mtime, opts), { objectMode: false })];
  if (target.compress === "zstd") stages.push(createZstdCompress());
  const counter = new Counter();
  stages.push(counter);
  const signal = opts.signal;

  if (target.path === "-") {
    await runPipeline([...stages, process.stdout], { signal, end: false });
    return { paths: ["-"], bytes: counter.bytes };
  }

  const tag = suffix();
  if (target.splitSize === undefined) {
    if (!opts.overwrite && (await exists(target.path))) {
      throw new UsageError(`${target.path} exists; remove it, choose another -o, or pass --force`);
    }
    const tmp = `${target.path}.partial-${tag}`;
    const untrack = trackTemp(tmp);
    try {
      await runPipeline([...stages, createWriteStream(tmp, { mode: 0o644 })], { signal });
      await rename(tmp, target.path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    } finally {
      untrack();
    }
    return { paths: [target.path], bytes: counter.bytes };
  }

  const base = target.path;
  const manifestPath = `${base}.parts.json`;
  if (!opts.overwrite && ((await exists(manifestPath)) || (await exists(partName(base, 1))))) {
    throw new UsageError(`${manifestPath} or its parts exist; remove it, choose another -o, or pass --force`);
  }
  const sink = new PartSink(base, parseSize(target.splitSize), tag);
  try {
    await runPipeline([...stages, sink], { signal });
    await rm(manifestPath, { force: true });
    for (const p of sink.parts) {
      await rename(p.tmp, join(dirname(base), p.name));
      p.untrack();
    }
    // Parts left over from an older, longer set would be mistaken for ours.
    for (let i = sink.parts.length + 1; await exists(partName(base, i)); i++) await rm(partName(base, i));
    const manifest: PartsManifest = {
      format: PARTS_FORMAT,
      file: basename(base),
      compress: target.compress,
      totalSize: counter.bytes,
      parts: sink.parts.map(({ name, size, sha256 }) => ({ name, size, sha256 })),
    };
    const tmpManifest = `${manifestPath}.partial-${tag}`;
    await writeFile(tmpManifest, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o644 });
    await rename(tmpManifest, manifestPath);
    return {
      paths: [...sink.parts.map((p) => join(dirname(base), p.name)), manifestPath],
      bytes: counter.bytes,
    };
  } catch (err) {
    await sink.settled();
    await Promise.all(
      sink.parts.map(async (p) => {
        await rm(p.tmp, { force: true });
        p.untrack();
      }),
    );
    throw err;
  }
}

/** The tar (and its compression) as one stream, and a count of the bytes it had. */
function tarStream(
  files: BundleFile[],
  target: WriteTarget,
  opts: WriteOptions,
): { stream: Readable; counter: Counter; done: Promise<void> } {
  const mtime = opts.mtime ?? defaultMtime();
  const stages: Stream[] = [Readable.from(tarBytes(files, mtime, opts), { objectMode: false })];
  if (target.compress === "zstd") stages.push(createZstdCompress());
  const counter = new Counter();
  stages.push(counter);
  const done = runPipeline(stages, { signal: opts.signal });
  done.catch((err: Error) => {
    if (!counter.destroyed) counter.destroy(err);
  });
  return { stream: counter, counter, done };
}

/**
 * Uploads the tar to S3 as it is written: nothing is staged on disk, and memory is the upload's
 * parts in flight. See s3.ts for what is visible when.
 */
async function writeS3Tar(
  files: BundleFile[],
  target: WriteTarget,
  opts: WriteOptions,
): Promise<{ paths: string[]; bytes: number }> {
  const { S3BundleOutput, S3PartSink } = await import("./s3.js");
  const out = new S3BundleOutput(target.path, opts.s3);
  const split = target.splitSize !== undefined;
  await out.preflight(split, Boolean(opts.overwrite));
  // The tar's size bounds the compressed one: the part size is chosen so either fits S3's part limit.
  const expected = files.reduce((n, f) => n + 1024 + f.size, 0);
  const signal = opts.signal;
  if (!split) {
    const { stream, counter, done } = tarStream(files, target, opts);
    // Both settle before anything is thrown: an upload still running could not be aborted otherwise.
    const [uploaded, written] = await Promise.allSettled([
      out.upload(out.key, stream, uploadPartSize(expected, opts.s3?.partSize), signal),
      done,
    ]);
    if (uploaded.status === "rejected") throw uploaded.reason;
    if (written.status === "rejected") {
      await out.delete(out.key);
      throw written.reason;
    }
    const sent = uploaded.value;
    if (sent !== counter.bytes)
      throw new AirgapError(`${target.path}: uploaded ${sent} bytes of ${counter.bytes}`);
    return { paths: [target.path], bytes: counter.bytes };
  }
  const base = target.path;
  const manifestKey = `${out.key}.parts.json`;
  // An old set's manifest goes first: until the new one is written, the set is not complete.
  await out.deleteIfPresent(manifestKey);
  const { stream, counter } = tarStream(files, target, opts);
  const sink = new S3PartSink(
    out,
    (i) => partName(basename(out.key), i),
    parseSize(target.splitSize!),
    signal,
  );
  try {
    await runPipeline([stream, sink], { signal });
    // Parts left over from an older, longer set would be mistaken for ours.
    for (let i = sink.parts.length + 1; await out.deleteIfPresent(partName(out.key, i)); i++);
    const manifest: PartsManifest = {
      format: PARTS_FORMAT,
      file: basename(out.key),
      compress: target.compress,
      totalSize: counter.bytes,
      parts: sink.parts.map(({ name, size, sha256 }) => ({ name, size, sha256 })),
    };
    await out.put(manifestKey, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
    const dir = base.slice(0, base.lastIndexOf("/") + 1);
    return {
      paths: [...sink.parts.map((p) => `${dir}${p.name}`), `${base}.parts.json`],
      bytes: counter.bytes,
    };
  } catch (err) {
    await sink.removeAll();
    throw err;
  }
}
