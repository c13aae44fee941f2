import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { Readable } from "node:stream";
import { IntegrityError } from "../../errors.js";
import { isSha256Hex } from "../../oci/digest.js";
import { PARTS_FORMAT, type PartsManifest, partName } from "./writer.js";

export interface PartFile {
  name: string;
  file: string;
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

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

/** The parts manifest an input names, if it names split parts at all. */
export async function findPartsManifest(input: string): Promise<string | { base: string } | undefined> {
  if (input.endsWith(".parts.json")) return input;
  if (await isFile(`${input}.parts.json`)) return `${input}.parts.json`;
  const m = /^(.*)\.part-0*1$/.exec(input);
  if (m) {
    const base = m[1]!;
    if (await isFile(`${base}.parts.json`)) return `${base}.parts.json`;
    return { base };
  }
  return undefined;
}

/**
 * Loads a parts manifest and checks that every part is present with the size it lists. A missing
 * or short part is TRUNCATED, a longer one CHECKSUM_MISMATCH, each naming the part.
 */
export async function loadParts(found: string | { base: string }): Promise<PartsSet> {
  if (typeof found !== "string") {
    // The manifest was lost: take consecutive parts as they are; their content is still checked
    // by SHA256SUMS inside the archive.
    const parts: PartFile[] = [];
    for (let i = 1; ; i++) {
      const file = partName(found.base, i);
      let size: number;
      try {
        const s = await stat(file);
        if (!s.isFile()) break;
        size = s.size;
      } catch {
        break;
      }
      parts.push({ name: basename(file), file, size });
    }
    const totalSize = parts.reduce((a, p) => a + p.size, 0);
    return { label: basename(found.base), compress: "detect", parts, totalSize };
  }
  const manifestPath = found;
  let m: PartsManifest;
  try {
    m = JSON.parse(await readFile(manifestPath, "utf8")) as PartsManifest;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw err;
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
  const dir = dirname(manifestPath);
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
    const file = join(dir, p.name);
    let size: number;
    try {
      const s = await stat(file);
      if (!s.isFile()) throw new Error("not a file");
      size = s.size;
    } catch {
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
    parts.push({ name: p.name, file, size: p.size, sha256: p.sha256 });
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
        rs = createReadStream(p.file, { highWaterMark: 1024 * 1024 });
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
