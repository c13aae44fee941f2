/**
 * The bundle tar reader on generated input: arbitrary bytes, and valid tars (plain and zstd) with
 * bytes flipped, cut, spliced or a header field rewritten, read both sequentially (standard input)
 * and seekably (a file). Each read ends in entries or an IntegrityError (or the UsageError that
 * names a foreign compression) within a time limit: never a hang, never another exception.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openBundle } from "../../src/bundle/archive/reader.js";
import { encodeHeader, padLength } from "../../src/bundle/archive/tar-format.js";
import { IntegrityError, UsageError } from "../../src/errors.js";

/** Far longer than reading a few KiB takes; reaching it means the reader hangs. */
const RUN_LIMIT_MS = 5000;

let work: string;
let n = 0;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "airgap-tar-prop-"));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

function tarOf(files: { path: string; body: Buffer }[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    parts.push(
      encodeHeader(f.path, f.body.length, new Date(0), "File"),
      f.body,
      Buffer.alloc(padLength(f.body.length)),
    );
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

function zstd(tar: Buffer): Buffer {
  const file = join(work, `z-${n++}.tar`);
  writeFileSync(file, tar);
  execFileSync("zstd", ["-q", "-f", "--rm", file]);
  return execFileSync("cat", [`${file}.zst`]);
}

const pathPart = fc.stringMatching(/^[a-z0-9._-]{1,12}$/).filter((s) => s !== "." && s !== "..");
const bundleFile = fc.record({
  path: fc.oneof(
    fc.array(pathPart, { minLength: 1, maxLength: 3 }).map((a) => a.join("/")),
    fc.stringMatching(/^[a-z]{90,130}$/),
  ),
  body: fc.uint8Array({ maxLength: 2000 }).map((a) => Buffer.from(a)),
});
const validTar = fc.uniqueArray(bundleFile, { maxLength: 4, selector: (f) => f.path }).map(tarOf);

type Mutation =
  | { kind: "flip"; at: number; xor: number }
  | { kind: "cut"; at: number }
  | { kind: "splice"; at: number; junk: Uint8Array }
  | { kind: "field"; header: number; offset: number; junk: Uint8Array };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant("splice" as const),
    at: fc.nat(),
    junk: fc.uint8Array({ minLength: 1, maxLength: 600 }),
  }),
  // a header field rewritten and the checksum fixed, so the damage gets past the checksum test
  fc.record({
    kind: fc.constant("field" as const),
    header: fc.nat(),
    offset: fc.constantFrom(0, 100, 124, 136, 156, 157, 257, 329, 345),
    junk: fc.uint8Array({ minLength: 1, maxLength: 12 }),
  }),
);

function fixChecksum(block: Buffer): void {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
}

function mutate(tar: Buffer, ms: Mutation[]): Buffer {
  let b = Buffer.from(tar);
  for (const m of ms) {
    if (b.length === 0) break;
    if (m.kind === "flip") b[m.at % b.length]! ^= m.xor;
    else if (m.kind === "cut") b = b.subarray(0, m.at % b.length);
    else if (m.kind === "splice") {
      const i = m.at % (b.length + 1);
      b = Buffer.concat([b.subarray(0, i), m.junk, b.subarray(i)]);
    } else {
      const blocks = Math.floor(b.length / 512);
      if (blocks === 0) continue;
      const at = (m.header % blocks) * 512;
      const block = b.subarray(at, at + 512);
      Buffer.from(m.junk).copy(block, m.offset);
      fixChecksum(block);
    }
  }
  return b;
}

/** Reads every entry to its end; returns the paths, or the error the reader raised. */
async function readAll(bytes: Buffer, how: "stdin" | "file"): Promise<string[] | Error> {
  const input = how === "stdin" ? "-" : join(work, `t-${n++}.tar`);
  if (how === "file") writeFileSync(input, bytes);
  const ac = new AbortController();
  const run = async () => {
    const reader = await openBundle(input, { stdin: Readable.from([bytes]) });
    try {
      const paths: string[] = [];
      if (reader.seekable) for (const e of await reader.list()) paths.push(e.path);
      for await (const e of reader.entries(ac.signal)) {
        for await (const _ of e.stream) {
          // drain
        }
        if (!reader.seekable) paths.push(e.path);
      }
      return paths;
    } finally {
      await reader.close();
      if (how === "file") rmSync(input, { force: true });
    }
  };
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      ac.abort();
      reject(new Error(`HANG: reading ${bytes.length} bytes from ${how} took over ${RUN_LIMIT_MS} ms`));
    }, RUN_LIMIT_MS);
  });
  try {
    return await Promise.race([run(), limit]);
  } catch (err) {
    return err as Error;
  } finally {
    clearTimeout(timer);
  }
}

function expectEntriesOrIntegrityError(r: string[] | Error): void {
  if (Array.isArray(r)) return;
  if (r instanceof UsageError && /-compressed; a bundle is/.test(r.message)) return;
  if (!(r instanceof IntegrityError)) throw r;
  expect(r.message.length).toBeGreaterThan(0);
}

describe("tar reader (property)", () => {
  it("reads generated valid tars back exactly, from a file and from standard input (control)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(bundleFile, { maxLength: 4, selector: (f) => f.path }),
        async (files) => {
          const tar = tarOf(files);
          const want = files.map((f) => f.path);
          expect(await readAll(tar, "file")).toEqual(want);
          expect(await readAll(tar, "stdin")).toEqual(want);
        },
      ),
      { numRuns: 50 },
    );
  });

  it("arbitrary bytes: entries or an IntegrityError", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 3000 }),
        fc.constantFrom("stdin", "file"),
        async (a, how) => {
          expectEntriesOrIntegrityError(await readAll(Buffer.from(a), how as "stdin" | "file"));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("mutated valid tars: entries or an IntegrityError, never a hang", async () => {
    await fc.assert(
      fc.asyncProperty(
        validTar,
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        fc.constantFrom("stdin", "file"),
        async (tar, ms, how) => {
          expectEntriesOrIntegrityError(await readAll(mutate(tar, ms), how as "stdin" | "file"));
        },
      ),
      { numRuns: 400 },
    );
  });

  it("mutated zstd-compressed tars: entries or an IntegrityError, never a hang", async () => {
    await fc.assert(
      fc.asyncProperty(
        validTar,
        fc.array(mutation, { minLength: 1, maxLength: 2 }),
        fc.constantFrom("stdin", "file"),
        async (tar, ms, how) => {
          const z = zstd(tar);
          expectEntriesOrIntegrityError(await readAll(mutate(z, ms), how as "stdin" | "file"));
        },
      ),
      { numRuns: 60 },
    );
  });
});
