import { IntegrityError } from "../../errors.js";
import { isSha256Hex } from "../../oci/digest.js";

/** Files a bundle starts with, in the order a sequential reader needs them. */
export const HEAD_FILES = [
  "SHA256SUMS.sig",
  "SHA256SUMS.sigstore.json",
  "SHA256SUMS",
  "bundle.json",
  "oci-layout",
  "index.json",
] as const;

const HEAD_RANK = new Map<string, number>(HEAD_FILES.map((p, i) => [p, i]));

/** Byte-wise comparison, so the order never depends on the locale. */
export function compareBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The order of a directory bundle's files: head files, then blobs by path, then anything else by path. */
export function canonicalCompare(a: string, b: string): number {
  const rank = (p: string) =>
    HEAD_RANK.get(p) ?? (p.startsWith("blobs/") ? HEAD_FILES.length : HEAD_FILES.length + 1);
  return rank(a) - rank(b) || compareBytes(a, b);
}

/**
 * Normalizes a path found in a bundle (tar entry, checksum line) to the relative form `a/b/c`,
 * or throws PATH_ESCAPE for anything that could land outside the bundle's root once extracted.
 * A leading `./` is accepted (`tar -C dir -cf x.tar .` writes one); empty or `.` components are
 * MALFORMED because two spellings of one file would let a second copy hide behind the first.
 */
export function normalizeBundlePath(raw: string, where: string): string {
  if (raw.length === 0) throw new IntegrityError("MALFORMED", `${where}: empty path`, where);
  if (raw.includes("\0") || raw.includes("\\") || /[\r\n]/.test(raw)) {
    throw new IntegrityError(
      "PATH_ESCAPE",
      `${where}: path ${JSON.stringify(raw)} has forbidden characters`,
      raw,
    );
  }
  if (raw.startsWith("/")) {
    throw new IntegrityError("PATH_ESCAPE", `${where}: absolute path ${JSON.stringify(raw)}`, raw);
  }
  let p = raw;
  while (p.startsWith("./")) p = p.slice(2);
  const parts = p.split("/");
  if (parts.includes("..")) {
    throw new IntegrityError(
      "PATH_ESCAPE",
      `${where}: path ${JSON.stringify(raw)} escapes the bundle root`,
      raw,
    );
  }
  if (parts.some((c) => c === "" || c === ".")) {
    throw new IntegrityError("MALFORMED", `${where}: path ${JSON.stringify(raw)} is not in normal form`, raw);
  }
  return p;
}

const BLOB_PREFIX = "blobs/sha256/";

/** The hex digest a blob path names, or undefined for paths that are not `blobs/sha256/<hex>`. */
export function blobHexOf(path: string): string | undefined {
  const hex = path.startsWith(BLOB_PREFIX) ? path.slice(BLOB_PREFIX.length) : undefined;
  return isSha256Hex(hex) ? hex : undefined;
}
