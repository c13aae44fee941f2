import { IntegrityError } from "../errors.js";
import { isSha256Hex } from "../oci/digest.js";
import { compareBytes, normalizeBundlePath } from "./archive/paths.js";

/** One line of SHA256SUMS. */
export interface ChecksumEntry {
  path: string;
  /** Lowercase hex. */
  sha256: string;
}

export const SIGNATURE_FILES = ["SHA256SUMS.sig", "SHA256SUMS.sigstore.json"];
export const CHECKSUMS_FILE = "SHA256SUMS";

// `sha256sum` writes "<hex>  <path>" (text mode) or "<hex> *<path>" (binary mode); both name the same bytes.
const LINE_RE = /^([a-fA-F0-9]{64}) [ *](.+)$/;

function isSelf(path: string): boolean {
  return path === CHECKSUMS_FILE || SIGNATURE_FILES.includes(path);
}

/** Renders SHA256SUMS in `sha256sum -c` format, sorted byte-wise by path so the output is reproducible. */
export function formatChecksums(entries: ChecksumEntry[]): string {
  const seen = new Set<string>();
  const lines = entries.map((e) => {
    const path = normalizeBundlePath(e.path, "checksum entry");
    if (path !== e.path)
      throw new IntegrityError("MALFORMED", `checksum entry ${e.path} is not in normal form`, e.path);
    if (!isSha256Hex(e.sha256)) {
      throw new IntegrityError("MALFORMED", `checksum of ${e.path} is not lowercase sha256 hex`, e.path);
    }
    if (isSelf(path)) throw new IntegrityError("MALFORMED", `SHA256SUMS cannot list ${path}`, path);
    if (seen.has(path)) throw new IntegrityError("MALFORMED", `checksum entry ${path} appears twice`, path);
    seen.add(path);
    return { path, line: `${e.sha256}  ${path}\n` };
  });
  lines.sort((a, b) => compareBytes(a.path, b.path));
  return lines.map((l) => l.line).join("");
}

/**
 * Parses SHA256SUMS into path → lowercase hex. Any line that is not a checksum, a path listed twice,
 * or a path that could escape the bundle fails the whole file: a checksum list that is partly
 * understood vouches for nothing.
 */
export function parseChecksums(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  lines.forEach((line, i) => {
    const where = `${CHECKSUMS_FILE} line ${i + 1}`;
    const m = LINE_RE.exec(line);
    if (!m) {
      throw new IntegrityError(
        "MALFORMED",
        `${where} is not "<sha256>  <path>": ${JSON.stringify(line.slice(0, 120))}`,
        CHECKSUMS_FILE,
      );
    }
    let path: string;
    try {
      path = normalizeBundlePath(m[2]!, where);
    } catch (err) {
      if (err instanceof IntegrityError)
        throw new IntegrityError(err.code, err.message, CHECKSUMS_FILE, { cause: err });
      throw err;
    }
    if (isSelf(path))
      throw new IntegrityError(
        "MALFORMED",
        `${where} lists ${path}, which cannot list itself`,
        CHECKSUMS_FILE,
      );
    if (out.has(path))
      throw new IntegrityError("MALFORMED", `${where}: ${path} is listed twice`, CHECKSUMS_FILE);
    out.set(path, m[1]!.toLowerCase());
  });
  return out;
}
