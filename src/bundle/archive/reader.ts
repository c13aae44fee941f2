import { createReadStream, type Dirent } from "node:fs";
import { lstat, readdir, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { AirgapError, IntegrityError, UsageError } from "../../errors.js";
import type { ArtifactRepositoryOptions } from "../../store/artifacts.js";
import { overLimitMessage } from "../limits.js";
import { createZstdDecompress, ZSTD_MAGIC } from "../zstd.js";
import { ConcatFile, FileByteSource, StreamByteSource, untilAborted } from "./byte-source.js";
import { checkedPartsStream, findPartsManifest, loadParts, type PartFile, type PartsSet } from "./parts.js";
import { canonicalCompare, normalizeBundlePath } from "./paths.js";
import type { S3Place } from "./s3.js";
import { isS3Url, parseS3Url } from "./s3-url.js";
import { LocalFileSource, localPlace, type RandomAccessSource, type SourcePlace } from "./source.js";
import { tarHeaders } from "./tar-format.js";

/** One file of a bundle. Consume `stream` (or call `stream.resume()`) before asking for the next entry. */
export interface BundleEntry {
  path: string;
  size: number;
  stream: Readable;
}

/** A byte range of a file or object; a bundle file in a split archive may span several. */
export interface FileRange {
  source: RandomAccessSource;
  start: number;
  length: number;
}

export interface BundleReader {
  readonly kind: "dir" | "tar" | "tar.zst" | "parts" | "stdin";
  /** Directory, uncompressed tar file, uncompressed parts: list/open/readSmall work. */
  readonly seekable: boolean;
  /**
   * Files in stored order (directory: SHA256SUMS.sig, SHA256SUMS.sigstore.json, SHA256SUMS,
   * bundle.json, oci-layout, index.json, blobs by path, then anything else).
   */
  entries(signal?: AbortSignal): AsyncIterable<BundleEntry>;
  list(): Promise<{ path: string; size: number }[]>;
  open(path: string): Promise<Readable>;
  /** A small file's bytes (default limit 4 MiB); bigger files are refused as MALFORMED. */
  readSmall(path: string, max?: number): Promise<Buffer>;
  close(): Promise<void>;
}

/** Readers whose files lie in known byte ranges, so they can be hashed in parallel. */
export interface RangeReader extends BundleReader {
  ranges(path: string): Promise<FileRange[]>;
  /** The bytes are behind a network (S3): reading waits on round trips, not on a core. */
  readonly remote?: boolean;
}

export function isRangeReader(r: BundleReader): r is RangeReader {
  return typeof (r as Partial<RangeReader>).ranges === "function";
}

const SMALL_MAX = 4 * 1024 * 1024;
/**
 * Read size for bundle files. 256 KiB, not 1 MiB: import streams 8 blobs at once through hashing and
 * TLS, and every chunk in flight (and every dead one until the next GC) counts towards peak memory;
 * with 1 MiB chunks a 1 GiB import peaked at 189 MiB RSS (90 MiB external), with 256 KiB at 153 MiB
 * (14 MiB external), for the same CPU time.
 */
const CHUNK = 256 * 1024;

async function collect(stream: Readable, max: number, path: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    n += (c as Buffer).length;
    if (n > max) {
      stream.destroy();
      throw new IntegrityError("MALFORMED", overLimitMessage(path, undefined, max), path);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

function missing(path: string, where: string): IntegrityError {
  return new IntegrityError("MISSING_FILE", `${path} is not in ${where}`, path);
}

function notSeekable(kind: string): AirgapError {
  return new AirgapError(`a ${kind} bundle can only be read sequentially`, "NOT_SEEKABLE");
}

/** Compressions airgap does not read, by their magic bytes (zstd it reads itself). */
const FOREIGN_COMPRESSION: { name: string; magic: Buffer; undo: string }[] = [
  { name: "gzip", magic: Buffer.from([0x1f, 0x8b]), undo: "gunzip" },
  { name: "bzip2", magic: Buffer.from("BZh"), undo: "bunzip2" },
  { name: "xz", magic: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), undo: "unxz" },
];
/** Enough leading bytes to tell every compression above and zstd apart. */
const SNIFF = 6;

/** Refuse gzip, bzip2 or xz input by name: read as tar it would only look "damaged". */
function refuseForeignCompression(head: Buffer, label: string): void {
  const c = FOREIGN_COMPRESSION.find((f) => head.subarray(0, f.magic.length).equals(f.magic));
  if (c) {
    throw new UsageError(
      `${label} is ${c.name}-compressed; a bundle is a directory, a tar or a zstd-compressed tar: decompress it first (${c.undo}), or write it with --compress zstd`,
    );
  }
}

// ---------------------------------------------------------------- directory

class DirReader implements RangeReader {
  readonly kind = "dir" as const;
  readonly seekable = true;
  private listing: Promise<{ path: string; size: number }[]> | undefined;

  constructor(private readonly root: string) {}

  list(): Promise<{ path: string; size: number }[]> {
    this.listing ??= this.walk();
    return this.listing;
  }

  private async walk(): Promise<{ path: string; size: number }[]> {
    const out: { path: string; size: number }[] = [];
    const visit = async (rel: string): Promise<void> => {
      const entries: Dirent[] = await readdir(rel ? join(this.root, rel) : this.root, {
        withFileTypes: true,
      });
      for (const d of entries) {
        const p = rel ? `${rel}/${d.name}` : d.name;
        if (d.isDirectory()) await visit(p);
        else if (d.isFile()) out.push({ path: p, size: (await stat(join(this.root, p))).size });
        else {
          const what = d.isSymbolicLink() ? "a symbolic link" : "not a regular file";
          throw new IntegrityError("PATH_ESCAPE", `${p} in the bundle directory is ${what}`, p);
        }
      }
    };
    await visit("");
    out.sort((a, b) => canonicalCompare(a.path, b.path));
    return out;
  }

  private async resolve(path: string): Promise<{ file: string; size: number }> {
    const p = normalizeBundlePath(path, "requested path");
    const file = join(this.root, p);
    let s: Awaited<ReturnType<typeof lstat>>;
    try {
      s = await lstat(file);
    } catch {
      throw missing(p, this.root);
    }
    if (!s.isFile())
      throw new IntegrityError("PATH_ESCAPE", `${p} in the bundle directory is not a regular file`, p);
    return { file, size: s.size };
  }

  async ranges(path: string): Promise<FileRange[]> {
    const { file, size } = await this.resolve(path);
    return [
      {
        source: new LocalFileSource(file, size, normalizeBundlePath(path, "requested path")),
        start: 0,
        length: size,
      },
    ];
  }

  async open(path: string): Promise<Readable> {
    const { file } = await this.resolve(path);
    return createReadStream(file, { highWaterMark: CHUNK });
  }

  async readSmall(path: string, max = SMALL_MAX): Promise<Buffer> {
    const { file, size } = await this.resolve(path);
    if (size > max) throw new IntegrityError("MALFORMED", overLimitMessage(path, size, max), path);
    return collect(createReadStream(file), max, path);
  }

  async *entries(signal?: AbortSignal): AsyncIterable<BundleEntry> {
    for (const f of await this.list()) {
      signal?.throwIfAborted();
      const stream = createReadStream(join(this.root, f.path), { highWaterMark: CHUNK });
      const done = new Promise<void>((resolve) => stream.once("close", resolve));
      yield { path: f.path, size: f.size, stream };
      if (!stream.destroyed && !stream.readableEnded) stream.destroy();
      await done;
    }
  }

  async close(): Promise<void> {}
}

// ---------------------------------------------------------------- tar (sequential)

/** Prepends already-read bytes to the rest of a stream. */
async function* prepend(head: Buffer, it: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  if (head.length) yield head;
  for (;;) {
    const r = await it.next();
    if (r.done) return;
    yield r.value;
  }
}

/**
 * Tar bytes from raw input: sniffs the zstd magic and decompresses when present, so stdin and
 * split parts need no flag to say what they carry.
 */
async function untarInput(
  raw: Readable,
  label: string,
  compress: "none" | "zstd" | "detect",
  signal?: AbortSignal,
): Promise<Readable> {
  const it = raw[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let head = Buffer.alloc(0);
  while (head.length < SNIFF) {
    const r = await untilAborted(it.next(), signal);
    if (r.done) break;
    head = Buffer.concat([head, r.value]);
  }
  refuseForeignCompression(head, label);
  const joined = Readable.from(prepend(head, it), { objectMode: false });
  const isZstd = head.subarray(0, 4).equals(ZSTD_MAGIC);
  if (compress === "zstd" && !isZstd) {
    joined.destroy();
    throw new IntegrityError(
      "MALFORMED",
      `${label} is not zstd-compressed as its parts manifest says`,
      label,
    );
  }
  if (!isZstd) return joined;
  const z = createZstdDecompress(label);
  pipeline(joined, z).catch((err: Error) => {
    if (!z.destroyed) z.destroy(err);
  });
  return z;
}

/**
 * Streams a tar's regular files in stored order. Each entry's body is read on demand from the
 * shared input; an unread remainder is skipped when the next entry is requested.
 */
async function* tarEntries(
  input: Readable,
  label: string,
  signal?: AbortSignal,
): AsyncGenerator<BundleEntry> {
  const src = new StreamByteSource(input, label, signal);
  try {
    for await (const h of tarHeaders(src, label)) {
      signal?.throwIfAborted();
      let remaining = h.size;
      let inflight: Promise<void> | undefined;
      let failed: unknown;
      const stream = new Readable({
        highWaterMark: CHUNK,
        read() {
          if (inflight) return;
          const p = (async () => {
            try {
              if (signal?.aborted) throw signal.reason;
              if (remaining === 0) {
                stream.push(null);
                return;
              }
              const b = await src.readUpTo(Math.min(remaining, CHUNK));
              if (!b) {
                throw new IntegrityError(
                  "TRUNCATED",
                  `${label} is truncated: it ends inside ${h.path} (${remaining} of ${h.size} bytes missing)`,
                  h.path,
                );
              }
              remaining -= b.length;
              stream.push(b);
              if (remaining === 0) stream.push(null);
            } catch (err) {
              failed = err;
              stream.destroy(err as Error);
            }
          })();
          // Cleared only once settled: the body above may finish synchronously.
          inflight = p;
          void p.finally(() => {
            if (inflight === p) inflight = undefined;
          });
        },
      });
      // A consumer that only resume()s the body must not crash the process on a truncated
      // archive: the same error is thrown again from this generator below.
      stream.on("error", () => {});
      yield { path: h.path, size: h.size, stream };
      while (inflight) await inflight;
      if (failed) throw failed;
      if (remaining > 0) {
        if (!stream.destroyed) stream.destroy();
        const n = remaining;
        remaining = 0;
        await src.skip(n, h.path);
      }
    }
  } finally {
    await src.close().catch(() => {});
    if (!input.destroyed) input.destroy();
  }
}

class StreamTarReader implements BundleReader {
  readonly seekable = false;
  private used = false;

  constructor(
    readonly kind: "tar.zst" | "parts" | "stdin",
    private readonly label: string,
    private readonly rawInput: () => Readable,
    private readonly compress: "none" | "zstd" | "detect",
    private readonly once: boolean,
    private readonly parts?: PartsSet,
  ) {}

  /** The parts of a split archive, for naming a damaged one. */
  get partFiles(): PartFile[] {
    return this.parts?.parts ?? [];
  }

  async *entries(signal?: AbortSignal): AsyncIterable<BundleEntry> {
    if (this.once && this.used) throw new AirgapError(`${this.label} can be read only once`, "NOT_SEEKABLE");
    this.used = true;
    const raw = this.rawInput();
    try {
      const tar = await untarInput(raw, this.label, this.compress, signal);
      yield* tarEntries(tar, this.label, signal);
    } finally {
      // Once reading is over (finished, failed or cancelled), so is the raw input: a stalled stdin
      // or pipe left open would keep the process alive after the command has ended.
      if (!raw.destroyed) raw.destroy();
    }
  }

  async list(): Promise<{ path: string; size: number }[]> {
    throw notSeekable(this.kind);
  }
  async open(): Promise<Readable> {
    throw notSeekable(this.kind);
  }
  async readSmall(): Promise<Buffer> {
    throw notSeekable(this.kind);
  }
  async close(): Promise<void> {}
}

// ---------------------------------------------------------------- tar (seekable)

interface IndexEntry {
  path: string;
  size: number;
  dataOffset: number;
}

class SeekableTarReader implements RangeReader {
  readonly seekable = true;
  private readonly file: ConcatFile;
  private index: Promise<{ list: IndexEntry[]; byPath: Map<string, IndexEntry> }> | undefined;

  constructor(
    readonly kind: "tar" | "parts",
    private readonly label: string,
    segments: RandomAccessSource[],
    private readonly parts?: PartsSet,
  ) {
    this.file = new ConcatFile(segments);
  }

  get remote(): boolean {
    return this.file.segments.some((s) => s.localFile === undefined);
  }

  /** The parts of a split archive, for naming a damaged one. */
  get partFiles(): PartFile[] {
    return this.parts?.parts ?? [];
  }

  private buildIndex(): Promise<{ list: IndexEntry[]; byPath: Map<string, IndexEntry> }> {
    this.index ??= (async () => {
      const src = new FileByteSource(this.file, this.label);
      const list: IndexEntry[] = [];
      for await (const h of tarHeaders(src, this.label)) {
        list.push(h);
        await src.skip(h.size, h.path);
      }
      return { list, byPath: new Map(list.map((e) => [e.path, e])) };
    })();
    return this.index;
  }

  async list(): Promise<{ path: string; size: number }[]> {
    return (await this.buildIndex()).list.map(({ path, size }) => ({ path, size }));
  }

  private async find(path: string): Promise<IndexEntry> {
    const p = normalizeBundlePath(path, "requested path");
    const e = (await this.buildIndex()).byPath.get(p);
    if (!e) throw missing(p, this.label);
    return e;
  }

  async ranges(path: string): Promise<FileRange[]> {
    const e = await this.find(path);
    return this.file.ranges(e.dataOffset, e.size);
  }

  async open(path: string): Promise<Readable> {
    const e = await this.find(path);
    return this.file.stream(e.dataOffset, e.size);
  }

  async readSmall(path: string, max = SMALL_MAX): Promise<Buffer> {
    const e = await this.find(path);
    if (e.size > max) throw new IntegrityError("MALFORMED", overLimitMessage(path, e.size, max), path);
    return this.file.read(e.dataOffset, e.size);
  }

  async *entries(signal?: AbortSignal): AsyncIterable<BundleEntry> {
    const raw = this.parts ? checkedPartsStream(this.parts) : this.file.stream(0, this.file.size);
    yield* tarEntries(raw, this.label, signal);
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}

// ---------------------------------------------------------------- detection

export interface OpenOptions {
  stdin?: Readable;
  /** Endpoint, credentials and TLS for `s3://` bundles: the artifact repository's settings. */
  s3?: ArtifactRepositoryOptions;
}

/**
 * Opens a bundle in any of its forms: a directory, FILE.tar, FILE.tar.zst (by magic bytes, not
 * name), split parts (FILE.parts.json, FILE when FILE.parts.json exists, or FILE.part-0001), or
 * "-" for standard input (tar or tar.zst). Every form but the directory and stdin may also be an
 * `s3://BUCKET/KEY` object (parts: objects beside their parts manifest): an uncompressed tar is
 * then read with ranged GETs, a compressed one streamed.
 */
export async function openBundle(input: string, opts: OpenOptions = {}): Promise<BundleReader> {
  if (input === "-") {
    const stdin = opts.stdin ?? process.stdin;
    return new StreamTarReader("stdin", "standard input", () => stdin, "detect", true);
  }
  const remote = isS3Url(input);
  // an S3 name that is not BUCKET/KEY is refused as given, before any request
  if (remote) parseS3Url(input);
  const place: SourcePlace = remote ? (await import("./s3.js")).s3Place(opts.s3) : localPlace;
  const found = await findPartsManifest(input, place);
  if (found !== undefined) {
    const set = await loadParts(found, place);
    if (set.parts.length === 0) throw new UsageError(`no parts found for ${input}`);
    const head = await set.parts[0]!.source.read(0, SNIFF);
    await set.parts[0]!.source.close();
    refuseForeignCompression(head, set.label);
    const zstd =
      set.compress === "zstd" || (set.compress === "detect" && head.subarray(0, 4).equals(ZSTD_MAGIC));
    if (zstd) {
      return new StreamTarReader("parts", set.label, () => checkedPartsStream(set), set.compress, false, set);
    }
    return new SeekableTarReader(
      "parts",
      set.label,
      set.parts.map((p) => p.source),
      set,
    );
  }
  let size: number | undefined;
  if (remote) {
    size = await place.sizeOf(input);
    if (size === undefined) {
      throw await (place as S3Place).whyMissing(input);
    }
  } else {
    let s: Awaited<ReturnType<typeof stat>>;
    try {
      s = await stat(input);
    } catch {
      // FILE.part-0001… without FILE.parts.json: the manifest was lost, the parts were not
      const firstPart = `${input}.part-0001`;
      if ((await localPlace.sizeOf(firstPart)) !== undefined) {
        throw new UsageError(
          `bundle ${input} does not exist and its parts manifest ${basename(input)}.parts.json is missing, but its parts are there: pass ${firstPart} to read them without it`,
        );
      }
      throw new UsageError(`bundle ${input} does not exist`);
    }
    if (s.isDirectory()) return new DirReader(input);
    if (!s.isFile()) throw new UsageError(`bundle ${input} is neither a directory nor a file`);
    size = s.size;
  }
  const label = basename(input);
  const source = place.open(input, size);
  const head = await source.read(0, SNIFF);
  await source.close();
  refuseForeignCompression(head, label);
  if (head.subarray(0, 4).equals(ZSTD_MAGIC)) {
    return new StreamTarReader("tar.zst", label, () => source.stream(0, source.size), "zstd", false);
  }
  return new SeekableTarReader("tar", label, [source]);
}
