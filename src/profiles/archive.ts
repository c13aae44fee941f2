/**
 * Profile archives: reading the `.tar.gz` and `.zip` archives profiles are published as, and writing
 * the reproducible `NAME-VERSION.tar.gz` airgap carries.
 *
 * Layout follows `inspec archive` of InSpec v6.8.24 (lib/inspec/profile.rb#archive,
 * lib/inspec/archive/tar.rb, lib/inspec/file_provider.rb): entries are paths relative to the profile
 * root without a `./` prefix, folders get their own entries, and names starting with a dot are left
 * out at every level (InSpec lists files with `Dir["**\/*"]`, which skips them). Unlike InSpec, every
 * header is fixed (mtime 0, uid/gid 0, no user or group names, modes 0644/0755) and entries are
 * sorted, so the same tree always gives the same bytes; gzip is written with header mtime 0.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { lstat, mkdir, open, readdir, readlink, realpath, stat } from "node:fs/promises";
import { dirname, join, posix, relative, resolve, sep } from "node:path";
import { Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { crc32, createGunzip, createGzip, constants as zc } from "node:zlib";
import * as tar from "tar";
import yauzl from "yauzl";
import { AirgapError, IntegrityError } from "../errors.js";
import { type Sha256Hex, Sha256Meter } from "../oci/digest.js";

export type ArchiveKind = "tar.gz" | "zip";

/** Tell a tar.gz from a zip by its first bytes (InSpec trusts the file name or Content-Type instead). */
export async function sniffArchive(file: string): Promise<ArchiveKind | undefined> {
  const fh = await open(file, "r");
  try {
    const buf = Buffer.alloc(4);
    const { bytesRead } = await fh.read(buf, 0, 4, 0);
    if (bytesRead >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) return "tar.gz";
    if (bytesRead >= 4 && buf.readUInt32LE(0) === 0x04034b50) return "zip";
    return undefined;
  } finally {
    await fh.close();
  }
}

/**
 * Limits on extracting an archive that came from outside (every profile archive: downloaded,
 * fetched from a registry, or a local file that may itself have been downloaded). They bound the
 * disk and CPU a hostile archive can take: a 52-byte zip must not abort the process, a 66 KB zip of
 * overlapping entries must not write gigabytes.
 */
export const ARCHIVE_LIMITS = {
  /** Uncompressed bytes of one archive (tar stream or the sum of zip entries): 2 GiB. */
  maxTotalBytes: 2 * 1024 ** 3,
  /** Entries (files, folders, links) of one archive. */
  maxEntries: 50_000,
  /** Uncompressed : compressed, checked once more than `ratioGraceBytes` have come out. */
  maxRatio: 200,
  /** Below this many uncompressed bytes the ratio is not checked (tiny archives compress well). */
  ratioGraceBytes: 1024 ** 2,
} as const;

export type ArchiveLimits = { [K in keyof typeof ARCHIVE_LIMITS]: number };

const MiB = 1024 ** 2;
const describeBytes = (n: number) => (n >= MiB ? `${(n / MiB).toFixed(0)} MiB` : `${n} bytes`);

/** Counts what an extraction produces and refuses, naming the limit and the source, once past a limit. */
class ExtractionBudget {
  private entries = 0;
  private bytes = 0;
  constructor(
    private readonly label: string,
    readonly compressedSize: number,
    readonly limits: ArchiveLimits,
  ) {}

  private refuse(what: string): never {
    throw new IntegrityError("MALFORMED", `${this.label}: archive refused: ${what}`, this.label);
  }

  addEntry(): void {
    if (++this.entries > this.limits.maxEntries) {
      this.refuse(`more than ${this.limits.maxEntries} entries (limit maxEntries)`);
    }
  }

  /** `n` more uncompressed bytes; `compressedSoFar` defaults to the whole archive. */
  addBytes(n: number, compressedSoFar = this.compressedSize): void {
    this.bytes += n;
    if (this.bytes > this.limits.maxTotalBytes) {
      this.refuse(`more than ${describeBytes(this.limits.maxTotalBytes)} uncompressed (limit maxTotalBytes)`);
    }
    if (
      this.bytes > this.limits.ratioGraceBytes &&
      this.bytes > this.limits.maxRatio * Math.max(compressedSoFar, 1)
    ) {
      this.refuse(
        `${describeBytes(this.bytes)} uncompressed from ${describeBytes(compressedSoFar)} compressed, more than ${this.limits.maxRatio}:1 (limit maxRatio)`,
      );
    }
  }
}

/**
 * A path inside an archive normalized to `a/b/c`, or why it may not be written under the
 * destination: absolute, a drive letter, a `..` segment (InSpec's TarProvider skips those
 * silently; airgap refuses the whole archive, since no honest profile archive has them).
 */
function entryPath(name: string): { rel: string } | { escape: string } {
  const n = name.replace(/\\/g, "/");
  if (n.startsWith("/") || /^[a-zA-Z]:/.test(n)) return { escape: "is an absolute path" };
  const parts = n.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.some((p) => p === "..")) return { escape: "has a .. segment" };
  return { rel: parts.join("/") };
}

function pathEscape(label: string, name: string, why: string): IntegrityError {
  return new IntegrityError(
    "PATH_ESCAPE",
    `${label}: archive entry ${JSON.stringify(name)} ${why}; refusing to extract`,
    label,
  );
}

/** Does a link at `rel` pointing at `target` stay inside the archive's root? */
function linkStaysInside(rel: string, target: string): boolean {
  if (target.startsWith("/") || /^[a-zA-Z]:/.test(target) || target.includes("\\")) return false;
  const resolved = posix.normalize(posix.join(posix.dirname(rel), target));
  return resolved !== ".." && !resolved.startsWith("../");
}

/**
 * Extract the regular files of a profile archive into `dest`, as InSpec's TarProvider/ZipProvider
 * `extract` does (folders only as parents of files; links and devices dropped), within
 * ARCHIVE_LIMITS. An entry that would land outside `dest` (absolute, `..`, a link pointing out)
 * refuses the whole archive. On error `dest` may hold part of the archive: callers extract into a
 * scratch folder they remove.
 */
export async function extractArchive(
  file: string,
  dest: string,
  label: string = file,
  limits: ArchiveLimits = ARCHIVE_LIMITS,
): Promise<void> {
  const kind = await sniffArchive(file);
  const { size } = await stat(file);
  const budget = new ExtractionBudget(label, size, limits);
  await mkdir(dest, { recursive: true });
  if (kind === "tar.gz") return await extractTarGz(file, dest, label, budget);
  if (kind === "zip") return await extractZip(file, dest, label, budget);
  throw new IntegrityError("MALFORMED", `${label} is neither a .tar.gz nor a .zip profile archive`, label);
}

/**
 * tar.gz through node-tar's Unpack, fed by our own gunzip so every uncompressed byte is counted
 * against the budget before node-tar sees it. node-tar already strips absolute paths and skips `..`
 * (with a warning); the filter refuses them instead and keeps regular files only, so no link or
 * device is ever created.
 */
async function extractTarGz(
  file: string,
  dest: string,
  label: string,
  budget: ExtractionBudget,
): Promise<void> {
  let refused: Error | undefined;
  const source = createReadStream(file);
  let compressedRead = 0;
  source.on("data", (b) => {
    compressedRead += (b as Buffer).length;
  });
  const counter = new Transform({
    transform(chunk: Buffer, _e, cb) {
      try {
        budget.addBytes(chunk.length, compressedRead);
        cb(null, chunk);
      } catch (err) {
        cb(err as Error);
      }
    },
  });
  const unpack = new tar.Unpack({
    cwd: dest,
    preserveOwner: false,
    strict: true,
    filter: (path, entry) => {
      if (refused) return false;
      try {
        budget.addEntry();
        const e = entry as tar.ReadEntry;
        const p = entryPath(path);
        if ("escape" in p) throw pathEscape(label, path, p.escape);
        // symbolic link targets are relative to the link's folder, hard link targets to the root
        const linkOut =
          (e.type === "SymbolicLink" && !linkStaysInside(p.rel, e.linkpath ?? "")) ||
          (e.type === "Link" && "escape" in entryPath(e.linkpath ?? ""));
        if (linkOut) {
          throw pathEscape(label, path, `is a link to ${JSON.stringify(e.linkpath)}, outside the archive`);
        }
        if (p.rel.includes("PaxHeader/") || p.rel === "pax_global_header") return false;
        return e.type === "File" || e.type === "OldFile" || e.type === "ContiguousFile";
      } catch (err) {
        refused = err as Error;
        counter.destroy(refused);
        return false;
      }
    },
  });
  try {
    await pipeline(source, createGunzip(), counter, unpack as unknown as NodeJS.WritableStream);
  } catch (err) {
    if (refused) throw refused;
    if (err instanceof IntegrityError) throw err;
    throw new IntegrityError(
      "MALFORMED",
      `${label} is not a readable .tar.gz archive: ${(err as Error).message}`,
      label,
      { cause: err },
    );
  }
  if (refused) throw refused;
}

class Crc32Check extends Transform {
  private crc = 0;
  private n = 0;
  constructor(
    private readonly want: number,
    private readonly what: string,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.crc = crc32(chunk, this.crc);
    this.n += chunk.length;
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    if (this.crc >>> 0 !== this.want >>> 0) {
      cb(
        new IntegrityError(
          "CHECKSUM_MISMATCH",
          `${this.what}: CRC-32 does not match the zip directory`,
          this.what,
        ),
      );
      return;
    }
    cb();
  }
}

const openZip = promisify<string, yauzl.Options, yauzl.ZipFile>(yauzl.open);

/** yauzl's own refusals (bad offsets, sizes, names) as integrity errors naming the source. */
function zipError(label: string, err: unknown): IntegrityError {
  if (err instanceof IntegrityError) return err;
  const msg = (err as Error).message;
  const code = /invalid relative path|absolute path/.test(msg) ? "PATH_ESCAPE" : "MALFORMED";
  return new IntegrityError(code, `${label} is not a readable .zip archive: ${msg}`, label, { cause: err });
}

/** Every central-directory entry, read lazily one by one (the count is capped as they come). */
async function zipEntries(zip: yauzl.ZipFile, budget: ExtractionBudget): Promise<yauzl.Entry[]> {
  const entries: yauzl.Entry[] = [];
  await new Promise<void>((done, fail) => {
    zip.on("entry", (e: yauzl.Entry) => {
      try {
        budget.addEntry();
      } catch (err) {
        fail(err);
        return;
      }
      entries.push(e);
      zip.readEntry();
    });
    zip.on("end", () => done());
    zip.on("error", fail);
    zip.readEntry();
  });
  return entries;
}

/**
 * Entries whose data ranges overlap share compressed bytes: the trick behind small zips that
 * expand to gigabytes. No zip writer produces them.
 */
function checkNoOverlap(entries: yauzl.Entry[], label: string): void {
  const byOffset = [...entries].sort((a, b) => a.relativeOffsetOfLocalHeader - b.relativeOffsetOfLocalHeader);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1]!;
    const cur = byOffset[i]!;
    // a local header is at least 30 bytes plus the file name before the data
    const prevEnd = prev.relativeOffsetOfLocalHeader + 30 + prev.fileName.length + prev.compressedSize;
    if (cur.relativeOffsetOfLocalHeader < prevEnd) {
      throw new IntegrityError(
        "MALFORMED",
        `${label}: archive refused: zip entries ${JSON.stringify(prev.fileName)} and ${JSON.stringify(cur.fileName)} overlap`,
        label,
      );
    }
  }
}

async function readSmall(stream: Readable, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    n += (c as Buffer).length;
    if (n > max) break;
    chunks.push(c as Buffer);
  }
  stream.destroy();
  return Buffer.concat(chunks).toString("utf8");
}

async function extractZip(
  file: string,
  dest: string,
  label: string,
  budget: ExtractionBudget,
): Promise<void> {
  let zip: yauzl.ZipFile;
  try {
    zip = await openZip(file, {
      lazyEntries: true,
      autoClose: false,
      validateEntrySizes: true,
      decodeStrings: true,
      strictFileNames: false,
    });
  } catch (err) {
    throw zipError(label, err);
  }
  try {
    const entries = await zipEntries(zip, budget).catch((err: unknown) => {
      throw zipError(label, err);
    });
    checkNoOverlap(entries, label);
    // declared sizes first: a bomb is refused before a byte is written (validateEntrySizes holds
    // every entry to its declared size while it streams)
    const declared = new ExtractionBudget(label, budget.compressedSize, budget.limits);
    for (const e of entries) declared.addBytes(e.uncompressedSize);
    const openStream = promisify(zip.openReadStream.bind(zip)) as (e: yauzl.Entry) => Promise<Readable>;
    const seen = new Set<string>();
    for (const e of entries) {
      const p = entryPath(e.fileName);
      if ("escape" in p) throw pathEscape(label, e.fileName, p.escape);
      if (e.fileName.endsWith("/") || p.rel === "") continue;
      if (seen.has(p.rel)) {
        throw new IntegrityError(
          "MALFORMED",
          `${label}: zip entry ${JSON.stringify(e.fileName)} appears twice`,
          label,
        );
      }
      seen.add(p.rel);
      const unixMode = e.versionMadeBy >> 8 === 3 ? e.externalFileAttributes >>> 16 : 0;
      const fileType = unixMode & 0o170000;
      if (fileType === 0o120000) {
        const target = await readSmall(
          await openStream(e).catch((err: unknown) => Promise.reject(zipError(label, err))),
          4096,
        );
        if (!linkStaysInside(p.rel, target)) {
          throw pathEscape(label, e.fileName, `is a link to ${JSON.stringify(target)}, outside the archive`);
        }
        continue; // links inside the archive are dropped, as InSpec's ZipProvider does
      }
      if (fileType !== 0 && fileType !== 0o100000) continue;
      const out = join(dest, ...p.rel.split("/"));
      await mkdir(dirname(out), { recursive: true });
      const what = `${label}!${e.fileName}`;
      const counter = new Transform({
        transform(chunk: Buffer, _e, cb) {
          try {
            budget.addBytes(chunk.length);
            cb(null, chunk);
          } catch (err) {
            cb(err as Error);
          }
        },
      });
      try {
        const raw = await openStream(e);
        await pipeline(raw, counter, new Crc32Check(e.crc32, what), createWriteStream(out));
      } catch (err) {
        throw zipError(label, err);
      }
    }
  } finally {
    zip.close();
  }
}

/** A file or folder of a profile tree, by its path relative to the root (with `/`). */
export interface TreeEntry {
  rel: string;
  abs: string;
  type: "file" | "dir";
  executable: boolean;
  size: number;
}

function byPath(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The entries `inspec archive` would put in the archive of `root`: everything below it except
 * names starting with a dot. Symbolic links are followed when they stay inside `root` (InSpec
 * reads through them); links that leave it are refused.
 */
export async function listTree(
  root: string,
  opts: { exclude?: (rel: string) => boolean } = {},
): Promise<TreeEntry[]> {
  const rootReal = await realpath(root);
  const out: TreeEntry[] = [];
  const walk = async (dir: string, prefix: string): Promise<void> => {
    const names = (await readdir(dir)).sort(byPath);
    for (const name of names) {
      if (name.startsWith(".")) continue;
      const rel = prefix ? `${prefix}/${name}` : name;
      if (opts.exclude?.(rel)) continue;
      const abs = join(dir, name);
      let st = await lstat(abs);
      if (st.isSymbolicLink()) {
        const target = await realpath(abs).catch(() => undefined);
        if (!target || (target !== rootReal && !target.startsWith(rootReal + sep))) {
          throw new AirgapError(
            `profile file ${rel} is a symbolic link to ${await readlink(abs)}, outside the profile`,
            "PROFILE_INVALID",
          );
        }
        st = await stat(abs);
        if (st.isDirectory()) {
          // InSpec's glob does not descend into linked folders either: the folder entry alone.
          out.push({ rel, abs, type: "dir", executable: true, size: 0 });
          continue;
        }
      }
      if (st.isDirectory()) {
        out.push({ rel, abs, type: "dir", executable: true, size: 0 });
        await walk(abs, rel);
      } else if (st.isFile()) {
        out.push({ rel, abs, type: "file", executable: (st.mode & 0o111) !== 0, size: st.size });
      }
    }
  };
  await walk(root, "");
  return out.sort((a, b) => byPath(a.rel, b.rel));
}

const BLOCK = 512;

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, "0")}\0`;
}

function splitName(name: string): { prefix: string; name: string } {
  if (Buffer.byteLength(name) <= 100) return { prefix: "", name };
  // ustar: prefix (155) + "/" + name (100), split at a slash
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== "/") continue;
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100 && rest !== "")
      return { prefix, name: rest };
  }
  throw new AirgapError(
    `path "${name}" is too long for a portable (ustar) profile archive`,
    "PROFILE_INVALID",
  );
}

/** One ustar header with every varying field fixed. */
export function tarHeader(name: string, type: "file" | "dir", size: number, mode: number): Buffer {
  const h = Buffer.alloc(BLOCK, 0);
  const n = splitName(name);
  h.write(n.name, 0, 100, "utf8");
  h.write(octal(mode, 8), 100, 8, "ascii");
  h.write(octal(0, 8), 108, 8, "ascii"); // uid
  h.write(octal(0, 8), 116, 8, "ascii"); // gid
  h.write(octal(size, 12), 124, 12, "ascii");
  h.write(octal(0, 12), 136, 12, "ascii"); // mtime
  h.fill(0x20, 148, 156); // checksum placeholder: spaces
  h.write(type === "dir" ? "5" : "0", 156, 1, "ascii");
  h.write("ustar\0", 257, 6, "ascii");
  h.write("00", 263, 2, "ascii");
  h.write(octal(0, 8), 329, 8, "ascii"); // devmajor
  h.write(octal(0, 8), 337, 8, "ascii"); // devminor
  h.write(n.prefix, 345, 155, "utf8");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "ascii");
  return h;
}

async function* tarStream(entries: TreeEntry[]): AsyncGenerator<Buffer> {
  for (const e of entries) {
    if (e.type === "dir") {
      yield tarHeader(`${e.rel}/`, "dir", 0, 0o755);
      continue;
    }
    // size from the stream, not from stat: a file that changes while packing is an error, not a corrupt tar
    const st = await stat(e.abs);
    yield tarHeader(e.rel, "file", st.size, e.executable ? 0o755 : 0o644);
    let n = 0;
    for await (const chunk of createReadStream(e.abs)) {
      const b = chunk as Buffer;
      n += b.length;
      if (n > st.size) throw new AirgapError(`${e.abs} grew while it was being packed`, "PROFILE_INVALID");
      yield b;
    }
    if (n !== st.size) throw new AirgapError(`${e.abs} shrank while it was being packed`, "PROFILE_INVALID");
    const pad = (BLOCK - (n % BLOCK)) % BLOCK;
    if (pad) yield Buffer.alloc(pad, 0);
  }
  yield Buffer.alloc(BLOCK * 2, 0);
}

export interface PackResult {
  path: string;
  sha256: string;
  size: number;
}

/**
 * Write `root` as a reproducible `.tar.gz` at `dest`: sorted entries, fixed headers, gzip level 9
 * with header mtime 0 and no file name, so two runs over the same tree give identical bytes.
 */
export async function packProfile(root: string, dest: string, signal?: AbortSignal): Promise<PackResult> {
  const entries = await listTree(root);
  await mkdir(dirname(resolve(dest)), { recursive: true });
  const counter = new Sha256Meter();
  await pipeline(
    Readable.from(tarStream(entries)),
    createGzip({ level: 9, memLevel: 8, strategy: zc.Z_DEFAULT_STRATEGY }),
    counter,
    createWriteStream(dest),
    { signal },
  );
  return { path: dest, sha256: counter.hex(), size: counter.size };
}

/** sha256 (hex) of a file, streamed. */
export async function sha256File(
  file: string,
  signal?: AbortSignal,
): Promise<{ sha256: Sha256Hex; size: number }> {
  const h = createHash("sha256");
  let size = 0;
  for await (const chunk of createReadStream(file, { signal })) {
    h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: h.digest("hex") as Sha256Hex, size };
}

/**
 * The folder prefix InSpec's RelativeFileProvider strips: the longest folder that every file of
 * the archive lives in (`pax_global_header` ignored). Returns "" when files sit at the top.
 */
export function commonPrefix(files: readonly string[]): string {
  const fs = files.filter((f) => f !== "pax_global_header" && f !== "/pax_global_header");
  if (fs.length === 0) return "";
  let parts = fs[0]!.split("/").slice(0, -1);
  for (const f of fs.slice(1)) {
    const p = f.split("/").slice(0, -1);
    let i = 0;
    while (i < parts.length && i < p.length && parts[i] === p[i]) i++;
    parts = parts.slice(0, i);
    if (parts.length === 0) break;
  }
  return parts.length ? `${parts.join("/")}/` : "";
}

/** Relative paths of every regular file under `root` (dot names included), with `/`. */
export async function listFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const d of await readdir(dir, { withFileTypes: true })) {
      const abs = join(dir, d.name);
      if (d.isDirectory()) await walk(abs);
      else if (d.isFile()) out.push(relative(root, abs).split(sep).join(posix.sep));
    }
  };
  await walk(root);
  return out.sort(byPath);
}
