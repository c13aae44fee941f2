import { createHash } from "node:crypto";
import { basename } from "node:path";
import { Readable } from "node:stream";
import { IntegrityError, UsageError } from "../../errors.js";
import { isSha256Hex } from "../../oci/digest.js";
import { METADATA_MAX_BYTES } from "../limits.js";
import type { RandomAccessSource, SourcePlace } from "./source.js";
import { PARTS_FORMAT, type PartsManifest, partName } from "./writer.js";

export interface PartFile {
  name: string;
  source: RandomAccessSource;
  size: number;
  /** Absent when the parts were found without their manifest. */
  sha256?: string;
}

export interface PartsSet {
  manifestPath?: string;
  /** The archive's name without the part suffix, for messages. */
  label: string;
  compress: "none" | "zstd" | "detect";
  parts: PartFile[];
  totalSize: number;
}

/** The parts manifest an input names, if it names split parts at all. */
export async function findPartsManifest(
  input: string,
  place: SourcePlace,
): Promise<string | { base: string } | undefined> {
  if (input.endsWith(".parts.json")) return input;
  if ((await place.sizeOf(`${input}.parts.json`)) !== undefined) return `${input}.parts.json`;
  const m = /^(.*)\.part-0*1$/.exec(input);
  if (m) {
    const base = m[1]!;
    if ((await place.sizeOf(`${base}.parts.json`)) !== undefined) return `${base}.parts.json`;
    return { base };
  }
  return undefined;
}

/**
 * Loads a parts manifest and checks that every part is present with the size it lists. A missing
 * or short part is TRUNCATED, a longer one CHECKSUM_MISMATCH, each naming the part.
 */
export async function loadParts(found: string | { base: string }, place: SourcePlace): Promise<PartsSet> {
  if (typeof found !== "string") {
    // The manifest was lost: take consecutive parts as they are; their content is still checked
    // by SHA256SUMS inside the archive.
    const parts: PartFile[] = [];
    for (let i = 1; ; i++) {
      const file = partName(found.base, i);
      const size = await place.sizeOf(file);
      if (size === undefined) break;
      parts.push({ name: basename(file), source: place.open(file, size), size });
    }
    const totalSize = parts.reduce((a, p) => a + p.size, 0);
    return { label: basename(found.base), compress: "detect", parts, totalSize };
  }
  const manifestPath = found;
  let m: PartsManifest;
  const text = await place.readSmall(manifestPath, METADATA_MAX_BYTES);
  if (text === undefined) {
    throw new UsageError(`bundle ${manifestPath} does not exist`);
  }
  try {
    m = JSON.parse(text.toString("utf8")) as PartsManifest;
  } catch (err) {
    throw new IntegrityError(
      "MALFORMED",
      `${basename(manifestPath)} is not valid JSON`,
      basename(manifestPath),
      {
        cause: err,
      },
    );
  }
  const where = basename(manifestPath);
  if (
    typeof m !== "object" ||
    m === null ||
    m.format !== PARTS_FORMAT ||
    !Array.isArray(m.parts) ||
    m.parts.length === 0 ||
    (m.compress !== "none" && m.compress !== "zstd")
  ) {
    throw new IntegrityError("MALFORMED", `${where} is not a ${PARTS_FORMAT} manifest`, where);
  }
  const parts: PartFile[] = [];
  let total = 0;
  for (const p of m.parts) {
    if (
      typeof p?.name !== "string" ||
      !/^[^/\\]+$/.test(p.name) ||
      p.name === "." ||
      p.name === ".." ||
      !Number.isSafeInteger(p.size) ||
      p.size < 0 ||
      typeof p.sha256 !== "string" ||
      !isSha256Hex(p.sha256)
    ) {
      throw new IntegrityError(
        "MALFORMED",
        `${where} lists a malformed part ${JSON.stringify(p?.name)}`,
        where,
      );
    }
    const file = place.sibling(manifestPath, p.name);
    const size = await place.sizeOf(file);
    if (size === undefined) {
      throw new IntegrityError("TRUNCATED", `part ${p.name} is missing (listed in ${where})`, p.name);
    }
    if (size < p.size) {
      throw new IntegrityError(
        "TRUNCATED",
        `part ${p.name} is truncated: ${size} bytes, ${where} lists ${p.size}`,
        p.name,
      );
    }
    if (size > p.size) {
      throw new IntegrityError(
        "CHECKSUM_MISMATCH",
        `part ${p.name} is damaged: ${size} bytes, ${where} lists ${p.size}`,
        p.name,
      );
    }
    parts.push({ name: p.name, source: place.open(file, p.size), size: p.size, sha256: p.sha256 });
    total += p.size;
  }
  if (typeof m.totalSize === "number" && m.totalSize !== total) {
    throw new IntegrityError(
      "MALFORMED",
      `${where}: totalSize ${m.totalSize} differs from the sum of its parts ${total}`,
      where,
    );
  }
  return {
    manifestPath,
    label: m.file || basename(manifestPath, ".parts.json"),
    compress: m.compress,
    parts,
    totalSize: total,
  };
}

/** The parts in order as one stream, each part's size and sha256 checked as it passes. */
export function checkedPartsStream(set: PartsSet): Readable {
  async function* gen(): AsyncGenerator<Buffer> {
    for (const p of set.parts) {
      const h = createHash("sha256");
      let n = 0;
      let rs: Readable;
      try {
        rs = p.source.stream(0, p.size);
        for await (const c of rs) {
          const b = c as Buffer;
          n += b.length;
          h.update(b);
          yield b;
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") {
          throw new IntegrityError("TRUNCATED", `part ${p.name} is missing`, p.name, { cause: err });
        }
        throw err;
      }
      if (n !== p.size) {
        throw new IntegrityError(
          n < p.size ? "TRUNCATED" : "CHECKSUM_MISMATCH",
          `part ${p.name} has ${n} bytes, expected ${p.size}`,
          p.name,
        );
      }
      if (p.sha256 && h.digest("hex") !== p.sha256) {
        throw new IntegrityError(
          "CHECKSUM_MISMATCH",
          `part ${p.name} is damaged: its sha256 differs from the parts manifest`,
          p.name,
        );
      }
    }
  }
  return Readable.from(gen(), { objectMode: false });
}
