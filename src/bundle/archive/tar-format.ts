import { Header, Pax } from "tar";
import { IntegrityError } from "../../errors.js";
import { normalizeBundlePath } from "./paths.js";

export const BLOCK = 512;
/** GNU tar's default record (blocking factor 20); archives are padded to a whole record. */
export const RECORD = 10240;
const MAX_META = 1024 * 1024;

export function padLength(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/**
 * The header block(s) of one entry: a ustar header, preceded by a PAX extended header when the
 * path or size does not fit ustar (paths over 100/155 bytes, files of 8 GiB and more). Owner is
 * root:root with empty names, so extraction as any user yields the same tree.
 */
export function encodeHeader(path: string, size: number, mtime: Date, type: "File" | "Directory"): Buffer {
  const secs = new Date(Math.floor(mtime.getTime() / 1000) * 1000);
  const h = new Header({
    path: type === "Directory" ? `${path}/` : path,
    mode: type === "Directory" ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    size: type === "Directory" ? 0 : size,
    mtime: secs,
    type,
    uname: "",
    gname: "",
  });
  const block = Buffer.alloc(BLOCK);
  if (!h.encode(block)) return block;
  const ex: { path?: string; size?: number } = {};
  const p = h.path ?? path;
  if (Buffer.byteLength(p) >= 100) ex.path = p;
  if (size > 0o77777777777) ex.size = size;
  const pax = new Pax(ex).encode();
  return Buffer.concat([pax, block]);
}

/** Reads what the parser needs from a byte source: exact reads, and skips (seeks where possible). */
export interface ByteSource {
  /** Bytes consumed so far. */
  readonly offset: number;
  /** Exactly n bytes, or null at a clean EOF before the first byte; a partial read throws TRUNCATED. */
  readBlock(n: number, what: string): Promise<Buffer | null>;
  skip(n: number, what: string): Promise<void>;
  /** Checks that nothing but zero bytes follow; returns false if other data follows the archive's end. */
  restIsZero(): Promise<boolean>;
}

export interface TarFileHeader {
  path: string;
  size: number;
  /** Offset of the first body byte within the archive. */
  dataOffset: number;
}

/** The largest entry size, and any other number of a header, a reader accepts: exact in a double. */
export const MAX_TAR_NUMBER = Number.MAX_SAFE_INTEGER;

/** The numeric fields of a ustar header: name, offset, length. */
const USTAR_NUMBERS = [
  ["mode", 100, 8],
  ["uid", 108, 8],
  ["gid", 116, 8],
  ["size", 124, 12],
  ["mtime", 136, 12],
  ["checksum", 148, 8],
  ["devmajor", 329, 8],
  ["devminor", 337, 8],
] as const;

/**
 * One ustar numeric field, strictly: octal digits, optionally led by spaces and ended by NULs or
 * spaces (all that POSIX, GNU and BSD tar write), or GNU base-256 for a positive number. Anything
 * else (a sign, a fraction, a stray letter, a negative base-256) is not a number we trust.
 */
function ustarNumber(block: Buffer, offset: number, length: number): number | undefined {
  const field = block.subarray(offset, offset + length);
  if (field[0] === 0x80) {
    let n = 0n;
    for (const b of field.subarray(1)) n = (n << 8n) | BigInt(b);
    return n <= BigInt(MAX_TAR_NUMBER) ? Number(n) : undefined;
  }
  const text = field.toString("latin1");
  const m = /^ *([0-7]*)[ \0]*$/.exec(text);
  if (!m) return undefined;
  const n = m[1] ? Number.parseInt(m[1], 8) : 0;
  return n <= MAX_TAR_NUMBER ? n : undefined;
}

/** The ustar numbers of a header block, each checked; the first bad one is named. */
function checkUstarNumbers(block: Buffer, where: () => string): { size: number } {
  const values: Record<string, number> = {};
  for (const [name, offset, length] of USTAR_NUMBERS) {
    const n = ustarNumber(block, offset, length);
    if (n === undefined) {
      const raw = JSON.stringify(
        block
          .subarray(offset, offset + length)
          .toString("latin1")
          .replace(/\0+$/, ""),
      );
      throw new IntegrityError(
        "MALFORMED",
        `${where()}: the ${name} field ${raw} is not a valid tar number`,
        where(),
      );
    }
    values[name] = n;
  }
  return { size: values.size! };
}

const PAX_INTEGERS = new Set(["size", "uid", "gid"]);
/** POSIX allows fractional seconds in PAX times (GNU tar writes them); nothing else is a fraction. */
const PAX_TIMES = new Set(["mtime", "atime", "ctime"]);

interface PaxFields {
  path?: string;
  size?: number;
}

/**
 * A PAX extended header, strictly: every record `LEN key=value\n` with LEN its exact byte length;
 * size, uid and gid non-negative integers up to MAX_TAR_NUMBER; times decimal; GNU sparse records
 * refused (such an entry's body is not its content).
 */
function parsePax(body: Buffer, where: string): PaxFields {
  const out: PaxFields = {};
  let at = 0;
  while (at < body.length) {
    const space = body.indexOf(0x20, at);
    const lenText = space > at ? body.subarray(at, space).toString("latin1") : "";
    const len = /^[1-9][0-9]{0,8}$/.test(lenText) ? Number(lenText) : Number.NaN;
    if (!Number.isInteger(len) || at + len > body.length || body[at + len - 1] !== 0x0a) {
      if (body.subarray(at).every((b) => b === 0)) break; // NUL padding after the last record
      throw new IntegrityError("MALFORMED", `${where}: malformed PAX record at byte ${at}`);
    }
    const record = body.subarray(space + 1, at + len - 1).toString("utf8");
    at += len;
    const eq = record.indexOf("=");
    if (eq <= 0)
      throw new IntegrityError("MALFORMED", `${where}: malformed PAX record ${JSON.stringify(record)}`);
    const key = record.slice(0, eq);
    const value = record.slice(eq + 1);
    if (PAX_INTEGERS.has(key)) {
      const n = /^[0-9]{1,16}$/.test(value) ? Number(value) : Number.NaN;
      if (!(n <= MAX_TAR_NUMBER)) {
        throw new IntegrityError(
          "MALFORMED",
          `${where}: PAX ${key}=${JSON.stringify(value)} is not a whole number of at most ${MAX_TAR_NUMBER}`,
        );
      }
      if (key === "size") out.size = n;
    } else if (PAX_TIMES.has(key)) {
      if (!/^-?[0-9]{1,16}(\.[0-9]{1,9})?$/.test(value)) {
        throw new IntegrityError("MALFORMED", `${where}: PAX ${key}=${JSON.stringify(value)} is not a time`);
      }
    } else if (key === "path") {
      out.path = value;
    } else if (key.startsWith("GNU.sparse.")) {
      throw new IntegrityError("MALFORMED", `${where}: GNU sparse entries are not supported in a bundle`);
    }
  }
  return out;
}

function truncated(label: string, what: string): IntegrityError {
  return new IntegrityError("TRUNCATED", `${label} is truncated: it ends inside ${what}`, label);
}

/**
 * Walks a tar archive's headers, yielding regular files. The caller must consume exactly `size`
 * body bytes from the source before asking for the next header. Everything but regular files,
 * directories and PAX/GNU long-name metadata is refused: links and devices could point outside
 * the bundle once extracted (PATH_ESCAPE); anything unknown is MALFORMED.
 */
export async function* tarHeaders(src: ByteSource, label: string): AsyncGenerator<TarFileHeader> {
  let ex: PaxFields = {};
  let gex: PaxFields = {};
  let sawEntry = false;
  const seen = new Set<string>();
  for (;;) {
    const block = await src.readBlock(BLOCK, "a header");
    if (!block) {
      throw new IntegrityError(
        sawEntry ? "TRUNCATED" : "MALFORMED",
        sawEntry
          ? `${label} is truncated: it lacks the end-of-archive blocks`
          : `${label} is empty, not a tar archive`,
        label,
      );
    }
    if (block.every((b) => b === 0)) {
      const second = await src.readBlock(BLOCK, "the end-of-archive blocks");
      if (!second) throw truncated(label, "the end-of-archive blocks");
      if (!second.every((b) => b === 0)) {
        throw new IntegrityError("MALFORMED", `${label}: a lone zero block inside the archive`, label);
      }
      if (!(await src.restIsZero())) {
        throw new IntegrityError("MALFORMED", `${label}: data follows the end of the archive`, label);
      }
      return;
    }
    let h: Header | undefined;
    try {
      h = new Header(block);
    } catch {
      // tar throws on numbers it cannot decode; such a block is not a header.
    }
    if (!h?.cksumValid) {
      throw new IntegrityError(
        "MALFORMED",
        sawEntry
          ? `${label}: damaged tar header at offset ${src.offset - BLOCK} (checksum failure)`
          : `${label} is not a tar archive`,
        label,
      );
    }
    sawEntry = true;
    const headerAt = src.offset - BLOCK;
    const ustar = checkUstarNumbers(block, () =>
      // the entry's name as the archive gives it, for the message
      ex.path !== undefined || h.path
        ? `${label} entry ${JSON.stringify(ex.path ?? h.path)}`
        : `${label} header at offset ${headerAt}`,
    );
    const rawPath = ex.path ?? h.path ?? "";
    const size = ex.size ?? gex.size ?? ustar.size;
    const type = h.type;
    // metadata sizes come from the ustar header itself, never from an earlier PAX record
    const readMeta = async (): Promise<Buffer> => {
      if (ustar.size > MAX_META) {
        throw new IntegrityError(
          "MALFORMED",
          `${label}: ${ustar.size}-byte tar metadata entry is too large`,
          label,
        );
      }
      const body = await src.readBlock(ustar.size + padLength(ustar.size), "a metadata entry");
      if (!body) throw truncated(label, "a metadata entry");
      return body.subarray(0, ustar.size);
    };
    // its own name (PaxHeader/NAME, ./PaxHeaders/NAME) is how tars name the entry it describes
    const metaWhere = `${label}: the extended header ${JSON.stringify(h.path ?? "")} at offset ${headerAt}`;
    switch (type) {
      case "ExtendedHeader":
      case "OldExtendedHeader": {
        const p = parsePax(await readMeta(), metaWhere);
        ex = {
          ...ex,
          ...(p.path !== undefined && { path: p.path }),
          ...(p.size !== undefined && { size: p.size }),
        };
        continue;
      }
      case "GlobalExtendedHeader": {
        const p = parsePax(await readMeta(), metaWhere);
        if (p.size !== undefined) gex = { size: p.size };
        continue;
      }
      case "NextFileHasLongPath":
      case "OldGnuLongPath":
        ex = { ...ex, path: (await readMeta()).toString("utf8").replace(/\0.*$/s, "") };
        continue;
      case "NextFileHasLongLinkpath":
        await readMeta();
        continue;
      default:
        break;
    }
    ex = {};
    const where = `${label} entry ${JSON.stringify(rawPath)}`;
    if (type === "Directory") {
      const p = rawPath.replace(/\/+$/, "");
      if (p !== "" && p !== ".") normalizeBundlePath(p, where);
      await src.skip(size + padLength(size), `directory ${rawPath}`);
      continue;
    }
    if (/^(Link|SymbolicLink|CharacterDevice|BlockDevice|FIFO)$/.test(type)) {
      throw new IntegrityError(
        "PATH_ESCAPE",
        `${where} is a ${type}; bundles hold regular files only`,
        rawPath,
      );
    }
    if (type !== "File" && type !== "OldFile" && type !== "ContiguousFile") {
      throw new IntegrityError("MALFORMED", `${where} has unsupported tar entry type ${type}`, rawPath);
    }
    const path = normalizeBundlePath(rawPath, where);
    if (seen.has(path)) {
      throw new IntegrityError("MALFORMED", `${where} appears twice in the archive`, path);
    }
    seen.add(path);
    const dataOffset = src.offset;
    yield { path, size, dataOffset };
    if (src.offset !== dataOffset + size) {
      throw new Error(`internal: entry ${path} body not consumed (${src.offset - dataOffset} of ${size})`);
    }
    await src.skip(padLength(size), `the padding of ${path}`);
  }
}
