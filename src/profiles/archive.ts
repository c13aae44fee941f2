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
import { createHash, type Hash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { lstat, mkdir, open, readdir, readlink, realpath, stat } from "node:fs/promises";
import { dirname, join, posix, relative, resolve, sep } from "node:path";
import { Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { crc32, createGzip, createInflateRaw, constants as zc } from "node:zlib";
import * as tar from "tar";
import { AirgapError, IntegrityError } from "../errors.js";
import type { Sha256Hex } from "../oci/digest.js";

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
 * A path inside an archive that is safe to write under the destination, or undefined to skip it.
 * Mirrors InSpec's TarProvider filter (no `..` segment, no PaxHeader entries) and also refuses
 * absolute paths rather than writing outside the destination.
 */
function safeEntryPath(name: string): string | undefined {
  const n = name.replace(/\\/g, "/").replace(/^(\.\/)+/, "");
  if (n === "" || n.startsWith("/") || /^[a-zA-Z]:/.test(n)) return undefined;
  const parts = n.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.some((p) => p === "..")) return undefined;
  if (n.includes("PaxHeader/") || n === "pax_global_header") return undefined;
  return parts.join("/");
}

/**
 * Extract the regular files of a profile archive into `dest`, as InSpec's TarProvider/ZipProvider
 * `extract` does (folders only as parents of files; links and devices dropped).
 */
export async function extractArchive(file: string, dest: string, label: string = file): Promise<void> {
  const kind = await sniffArchive(file);
  await mkdir(dest, { recursive: true });
  if (kind === "tar.gz") {
    try {
      await tar.x({
        file,
        cwd: dest,
        preserveOwner: false,
        strict: true,
        filter: (path, entry) => {
          const type = (entry as tar.ReadEntry).type;
          return (
            (type === "File" || type === "OldFile" || type === "ContiguousFile") &&
            safeEntryPath(path) !== undefined
          );
        },
      });
    } catch (err) {
      throw new IntegrityError(
        "MALFORMED",
        `${label} is not a readable .tar.gz archive: ${(err as Error).message}`,
        label,
        {
          cause: err,
        },
      );
    }
    return;
  }
  if (kind === "zip") {
    await extractZip(file, dest, label);
    return;
  }
  throw new IntegrityError("MALFORMED", `${label} is neither a .tar.gz nor a .zip profile archive`, label);
}

interface ZipEntry {
  name: string;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
  isDir: boolean;
  isSymlink: boolean;
}

async function readZipDirectory(file: string, label: string): Promise<ZipEntry[]> {
  const fh = await open(file, "r");
  try {
    const { size } = await fh.stat();
    const tailLen = Math.min(size, 65_557);
    const tail = Buffer.alloc(tailLen);
    await fh.read(tail, 0, tailLen, size - tailLen);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === 0x06054b50) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0)
      throw new IntegrityError("MALFORMED", `${label}: zip end of central directory not found`, label);
    const count = tail.readUInt16LE(eocd + 10);
    const cdSize = tail.readUInt32LE(eocd + 12);
    const cdOffset = tail.readUInt32LE(eocd + 16);
    if (cdOffset === 0xffffffff || count === 0xffff) {
      throw new IntegrityError("MALFORMED", `${label}: zip64 archives are not supported for profiles`, label);
    }
    const cd = Buffer.alloc(cdSize);
    await fh.read(cd, 0, cdSize, cdOffset);
    const entries: ZipEntry[] = [];
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (cd.readUInt32LE(p) !== 0x02014b50)
        throw new IntegrityError("MALFORMED", `${label}: corrupt zip directory`, label);
      const versionMadeBy = cd.readUInt16LE(p + 4);
      const method = cd.readUInt16LE(p + 10);
      const crc = cd.readUInt32LE(p + 16);
      const compressedSize = cd.readUInt32LE(p + 20);
      const usize = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      const external = cd.readUInt32LE(p + 38);
      const localOffset = cd.readUInt32LE(p + 42);
      const name = cd.subarray(p + 46, p + 46 + nameLen).toString("utf8");
      const unixMode = versionMadeBy >> 8 === 3 ? external >>> 16 : 0;
      entries.push({
        name,
        method,
        crc,
        compressedSize,
        size: usize,
        localOffset,
        isDir: name.endsWith("/"),
        isSymlink: (unixMode & 0o170000) === 0o120000,
      });
      p += 46 + nameLen + extraLen + commentLen;
    }
    return entries;
  } finally {
    await fh.close();
  }
}

class Crc32Check extends Transform {
  private crc = 0;
  private n = 0;
  constructor(
    private readonly want: number,
    private readonly wantSize: number,
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
    if (this.n !== this.wantSize || this.crc >>> 0 !== this.want >>> 0) {
      cb(
        new IntegrityError(
          "CHECKSUM_MISMATCH",
          `${this.what}: CRC-32 or size does not match the zip directory`,
          this.what,
        ),
      );
      return;
    }
    cb();
  }
}

async function extractZip(file: string, dest: string, label: string): Promise<void> {
  const entries = await readZipDirectory(file, label);
  const fh = await open(file, "r");
  try {
    for (const e of entries) {
      if (e.isDir || e.isSymlink) continue;
      const rel = safeEntryPath(e.name);
      if (!rel) continue;
      const local = Buffer.alloc(30);
      await fh.read(local, 0, 30, e.localOffset);
      if (local.readUInt32LE(0) !== 0x04034b50) {
        throw new IntegrityError("MALFORMED", `${label}: corrupt zip entry ${e.name}`, label);
      }
      const dataStart = e.localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
      const out = join(dest, ...rel.split("/"));
      await mkdir(dirname(out), { recursive: true });
      const raw =
        e.compressedSize === 0
          ? Readable.from([])
          : createReadStream(file, { start: dataStart, end: dataStart + e.compressedSize - 1 });
      const check = new Crc32Check(e.crc, e.size, `${label}!${e.name}`);
      if (e.method === 0) await pipeline(raw, check, createWriteStream(out));
      else if (e.method === 8) await pipeline(raw, createInflateRaw(), check, createWriteStream(out));
      else
        throw new IntegrityError(
          "MALFORMED",
          `${label}: zip entry ${e.name} uses unsupported method ${e.method}`,
          label,
        );
    }
  } finally {
    await fh.close();
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

class HashCount extends Transform {
  private readonly h: Hash = createHash("sha256");
  size = 0;
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.h.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }
  digestHex(): string {
    return this.h.digest("hex");
  }
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
  const counter = new HashCount();
  await pipeline(
    Readable.from(tarStream(entries)),
    createGzip({ level: 9, memLevel: 8, strategy: zc.Z_DEFAULT_STRATEGY }),
    counter,
    createWriteStream(dest),
    { signal },
  );
  return { path: dest, sha256: counter.digestHex(), size: counter.size };
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
