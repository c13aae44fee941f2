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
  let ex: { path?: string; size?: number } = {};
  let gex: { size?: number } = {};
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
    const rawPath = ex.path ?? h.path ?? "";
    const size = ex.size ?? gex.size ?? h.size ?? 0;
    const type = h.type;
    const readMeta = async (): Promise<string> => {
      if (size > MAX_META) {
        throw new IntegrityError(
          "MALFORMED",
          `${label}: ${size}-byte tar metadata entry is too large`,
          label,
        );
      }
      const body = await src.readBlock(size + padLength(size), "a metadata entry");
      if (!body) throw truncated(label, "a metadata entry");
      return body.subarray(0, size).toString("utf8");
    };
    switch (type) {
      case "ExtendedHeader":
      case "OldExtendedHeader": {
        const p = Pax.parse(await readMeta(), undefined, false);
        ex = {
          ...ex,
          ...(p.path !== undefined && { path: p.path }),
          ...(p.size !== undefined && { size: p.size }),
        };
        continue;
      }
      case "GlobalExtendedHeader": {
        const p = Pax.parse(await readMeta(), undefined, true);
        if (p.size !== undefined) gex = { size: p.size };
        continue;
      }
      case "NextFileHasLongPath":
      case "OldGnuLongPath":
        ex = { ...ex, path: (await readMeta()).replace(/\0.*$/s, "") };
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
