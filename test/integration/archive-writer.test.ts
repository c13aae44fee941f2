import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BundleFile, writeBundle } from "../../src/bundle/archive/writer.js";
import { formatChecksums } from "../../src/bundle/checksums.js";
import { UsageError } from "../../src/errors.js";

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const MTIME = new Date("2026-01-02T03:04:05Z");

let work: string;
let files: BundleFile[];
let contents: Map<string, Buffer>;

/** A small bundle: two blobs from disk (one 3 MiB, one empty), two in memory, and the metadata files. */
async function makeFiles(): Promise<void> {
  contents = new Map();
  const src = join(work, "src");
  await mkdir(src);
  const blobs: BundleFile[] = [];
  for (const [i, size] of [3 * 1024 * 1024 + 7, 0, 1000, 512].entries()) {
    const b = randomBytes(size);
    const path = `blobs/sha256/${sha(b)}`;
    contents.set(path, b);
    if (i < 2) {
      const f = join(src, `blob${i}`);
      await writeFile(f, b);
      blobs.push({ path, size, source: { file: f } });
    } else {
      blobs.push({ path, size, source: { bytes: b } });
    }
  }
  const meta: [string, Buffer][] = [
    ["bundle.json", Buffer.from('{"format":"x"}\n')],
    ["oci-layout", Buffer.from('{"imageLayoutVersion":"1.0.0"}')],
    ["index.json", Buffer.from('{"schemaVersion":2,"manifests":[]}')],
  ];
  for (const [p, b] of meta) contents.set(p, b);
  const sums = Buffer.from(
    formatChecksums([...contents.entries()].map(([path, b]) => ({ path, sha256: sha(b) }))),
  );
  const sig = Buffer.from("c2lnbmF0dXJl");
  contents.set("SHA256SUMS", sums);
  contents.set("SHA256SUMS.sig", sig);
  const mem = (path: string): BundleFile => ({
    path,
    size: contents.get(path)!.length,
    source: { bytes: contents.get(path)! },
  });
  // Children before parents is the caller's business; the writer keeps whatever order it is given.
  files = [
    mem("SHA256SUMS.sig"),
    mem("SHA256SUMS"),
    ...meta.map(([p]) => mem(p)),
    blobs[2]!,
    blobs[0]!,
    blobs[3]!,
    blobs[1]!,
  ];
}

function tree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const d of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) walk(p);
      else out.set(p, sha(readFileSync(join(dir, p))));
    }
  };
  walk("");
  return out;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "archive-writer-"));
  await makeFiles();
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("writeBundle tar", () => {
  it("keeps the given order, and GNU tar extracts exactly the directory form", async () => {
    const out = join(work, "b.tar");
    const res = await writeBundle(files, { path: out, format: "tar", compress: "none" }, { mtime: MTIME });
    expect(res.paths).toEqual([out]);
    expect(res.bytes).toBe(statSync(out).size);
    expect(statSync(out).size % 10240).toBe(0);
    expect(readdirSync(work).filter((f) => f.includes(".partial-"))).toEqual([]);

    const listed = execFileSync("tar", ["-tf", out], { encoding: "utf8" }).trim().split("\n");
    expect(listed).toEqual([
      "SHA256SUMS.sig",
      "SHA256SUMS",
      "bundle.json",
      "oci-layout",
      "index.json",
      "blobs/",
      "blobs/sha256/",
      ...files.slice(5).map((f) => f.path),
    ]);
    const verbose = execFileSync("tar", ["--numeric-owner", "--full-time", "-tvf", out], {
      encoding: "utf8",
      env: { ...process.env, TZ: "UTC" },
    });
    for (const line of verbose.trim().split("\n")) {
      expect(line).toMatch(/^(-rw-r--r--|drwxr-xr-x) 0\/0 .* 2026-01-02 03:04:05 /);
    }

    const x = join(work, "x");
    await mkdir(x);
    execFileSync("tar", ["-xf", out, "-C", x]);
    const dir = join(work, "dir");
    await writeBundle(files, { path: dir, format: "dir", compress: "none" });
    expect(tree(x)).toEqual(tree(dir));
    expect(tree(x)).toEqual(new Map([...contents].map(([p, b]) => [p, sha(b)])));
    expect(
      execFileSync("sha256sum", ["-c", "--strict", "SHA256SUMS"], { cwd: x, encoding: "utf8" }),
    ).toContain(`${files.at(-1)!.path}: OK`);
    expect(statSync(join(x, files[0]!.path)).mode & 0o777).toBe(0o644);
    expect(statSync(join(x, "blobs/sha256")).mode & 0o777).toBe(0o755);
  });

  it("writes zstd that the zstd command decompresses to the same tar", async () => {
    const plain = join(work, "z-plain.tar");
    const zst = join(work, "z.tar.zst");
    await writeBundle(files, { path: plain, format: "tar", compress: "none" }, { mtime: MTIME });
    const res = await writeBundle(files, { path: zst, format: "tar", compress: "zstd" }, { mtime: MTIME });
    expect(readFileSync(zst).subarray(0, 4)).toEqual(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]));
    expect(res.bytes).toBe(statSync(zst).size);
    const out = execFileSync("zstd", ["-q", "-d", "-c", zst], { maxBuffer: 64 * 1024 * 1024 });
    expect(sha(out)).toBe(sha(readFileSync(plain)));
  });

  it("splits into parts that concatenate to the unsplit tar, with the parts manifest written last", async () => {
    const plain = join(work, "s-plain.tar");
    await writeBundle(files, { path: plain, format: "tar", compress: "none" }, { mtime: MTIME });
    const base = join(work, "s.tar");
    const splitSize = 1024 * 1024;
    const res = await writeBundle(
      files,
      { path: base, format: "tar", compress: "none", splitSize },
      { mtime: MTIME },
    );
    const manifest = JSON.parse(readFileSync(`${base}.parts.json`, "utf8"));
    expect(manifest.format).toBe("cinc-airgap-parts/v1");
    expect(manifest.file).toBe("s.tar");
    expect(manifest.compress).toBe("none");
    expect(manifest.totalSize).toBe(statSync(plain).size);
    expect(manifest.parts.map((p: { name: string }) => p.name)).toEqual([
      "s.tar.part-0001",
      "s.tar.part-0002",
      "s.tar.part-0003",
      "s.tar.part-0004",
    ]);
    expect(res.paths.at(-1)).toBe(`${base}.parts.json`);
    const cat = Buffer.concat(manifest.parts.map((p: { name: string }) => readFileSync(join(work, p.name))));
    expect(sha(cat)).toBe(sha(readFileSync(plain)));
    for (const p of manifest.parts) {
      const b = readFileSync(join(work, p.name));
      expect(b.length).toBeLessThanOrEqual(splitSize);
      expect(b.length).toBe(p.size);
      expect(sha(b)).toBe(p.sha256);
    }
    const catted = execFileSync("bash", ["-c", `cat ${base}.part-* | tar -tf - | wc -l`], {
      encoding: "utf8",
    });
    expect(Number(catted.trim())).toBe(files.length + 2);
  });

  it("streams to standard output with '-'", async () => {
    const plain = join(work, "o-plain.tar");
    await writeBundle(files, { path: plain, format: "tar", compress: "none" }, { mtime: MTIME });
    const chunks: Buffer[] = [];
    const sink = new PassThrough();
    sink.on("data", (c: Buffer) => chunks.push(c));
    const real = Object.getOwnPropertyDescriptor(process, "stdout")!;
    Object.defineProperty(process, "stdout", { value: sink, configurable: true });
    let res: { paths: string[]; bytes: number };
    try {
      res = await writeBundle(files, { path: "-", format: "tar", compress: "none" }, { mtime: MTIME });
    } finally {
      Object.defineProperty(process, "stdout", real);
    }
    expect(res.paths).toEqual(["-"]);
    expect(sha(Buffer.concat(chunks))).toBe(sha(readFileSync(plain)));
    expect(sink.writableEnded).toBe(false);
    await expect(
      writeBundle(files, { path: "-", format: "tar", compress: "none", splitSize: 1000 }),
    ).rejects.toBeInstanceOf(UsageError);
  });

  it("writes long names that GNU tar extracts intact", async () => {
    const long = `${"a".repeat(90)}/${"b".repeat(90)}/${"c".repeat(120)}`;
    const out = join(work, "long.tar");
    await writeBundle([{ path: long, size: 2, source: { bytes: Buffer.from("hi") } }], {
      path: out,
      format: "tar",
      compress: "none",
    });
    const listed = execFileSync("tar", ["-tf", out], { encoding: "utf8" }).trim().split("\n");
    expect(listed.at(-1)).toBe(long);
    const x = join(work, "long-x");
    await mkdir(x);
    execFileSync("tar", ["-xf", out, "-C", x]);
    expect(readFileSync(join(x, long), "utf8")).toBe("hi");
  });

  it("refuses to overwrite an existing output unless asked", async () => {
    const out = join(work, "exists.tar");
    writeFileSync(out, "keep");
    await expect(writeBundle(files, { path: out, format: "tar", compress: "none" })).rejects.toBeInstanceOf(
      UsageError,
    );
    expect(readFileSync(out, "utf8")).toBe("keep");
    await writeBundle(files, { path: out, format: "tar", compress: "none" }, { overwrite: true });
    expect(execFileSync("tar", ["-tf", out], { encoding: "utf8" })).toContain("SHA256SUMS");
  });
});

describe("writeBundle dir", () => {
  it("hard-links blobs from disk, writes metadata, and refuses a non-empty target", async () => {
    const dir = join(work, "d");
    await writeBundle(files, { path: dir, format: "dir", compress: "none" });
    const fromDisk = files.find((f) => "file" in f.source && f.size > 0)!;
    const src = (fromDisk.source as { file: string }).file;
    expect(statSync(join(dir, fromDisk.path)).ino).toBe(statSync(src).ino);
    expect(tree(dir)).toEqual(new Map([...contents].map(([p, b]) => [p, sha(b)])));
    expect(readdirSync(work).filter((f) => f.includes(".partial-"))).toEqual([]);
    await expect(writeBundle(files, { path: dir, format: "dir", compress: "none" })).rejects.toBeInstanceOf(
      UsageError,
    );
    await writeBundle(files.slice(0, 3), { path: dir, format: "dir", compress: "none" }, { overwrite: true });
    expect([...tree(dir).keys()].sort()).toEqual(["SHA256SUMS", "SHA256SUMS.sig", "bundle.json"]);
  });

  it("writes into an existing empty directory", async () => {
    const dir = join(work, "empty");
    await mkdir(dir);
    await writeBundle(files, { path: dir, format: "dir", compress: "none" });
    expect(tree(dir).size).toBe(contents.size);
  });

  it("stops on an aborted signal and leaves no partial output", async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(
      writeBundle(
        files,
        { path: join(work, "aborted.tar"), format: "tar", compress: "none" },
        { signal: ac.signal },
      ),
    ).rejects.toThrow();
    expect(readdirSync(work).filter((f) => f.startsWith("aborted"))).toEqual([]);
  });
});
