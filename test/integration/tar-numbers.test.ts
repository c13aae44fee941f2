/**
 * Malformed numbers in tar headers (a fractional or negative PAX size, one past 2^53, a ustar size
 * with a stray letter, a negative base-256 mtime, a PAX record whose length lies) are refused as
 * integrity failures, naming the entry, on every read path: a seekable .tar, a .tar.zst, and
 * standard input, for verify, inspect and import. Before, `size=0.5` made the streaming reader
 * spin at 100% CPU forever (and ignore SIGTERM) and the seekable reader call the bundle OK.
 */
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Header } from "tar";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";

const BLOCK = 512;
/** Longer than any legitimate refusal takes; a hang is killed here and reported as exit 137. */
const HANG_MS = 15_000;

function pad(b: Buffer): Buffer {
  const rest = (BLOCK - (b.length % BLOCK)) % BLOCK;
  return Buffer.concat([b, Buffer.alloc(rest)]);
}

/** Recompute a header's checksum after its fields were edited by hand. */
function fixChecksum(block: Buffer): Buffer {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return block;
}

function ustar(path: string, size: number, type: "File" | "ExtendedHeader" = "File"): Buffer {
  const block = Buffer.alloc(BLOCK);
  new Header({ path, size, type, mode: 0o644, uid: 0, gid: 0, mtime: new Date(0) }).encode(block);
  return block;
}

function paxRecord(key: string, value: string, lie = 0): string {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  if (String(len).length + body.length !== len) len += 1;
  return `${len + lie}${body}`;
}

/** A PAX header with these records, then a file entry whose body is `body`. */
function withPax(records: string, body: Buffer = Buffer.from("hello")): Buffer {
  const pax = Buffer.from(records);
  return Buffer.concat([
    ustar("PaxHeader/SHA256SUMS", pax.length, "ExtendedHeader"),
    pad(pax),
    ustar("SHA256SUMS", body.length),
    pad(body),
    Buffer.alloc(BLOCK * 2),
  ]);
}

/** A file entry whose ustar header had one numeric field replaced by raw bytes. */
function withUstarField(offset: number, raw: Buffer): Buffer {
  const h = ustar("SHA256SUMS", 5);
  raw.copy(h, offset);
  fixChecksum(h);
  return Buffer.concat([h, pad(Buffer.from("hello")), Buffer.alloc(BLOCK * 2)]);
}

const CASES: { name: string; tar: () => Buffer; message: RegExp }[] = [
  {
    name: "PAX size=0.5",
    tar: () => withPax(paxRecord("size", "0.5")),
    message: /extended header "PaxHeader\/SHA256SUMS" at offset 0: PAX size="0\.5"/,
  },
  { name: "PAX size=-1", tar: () => withPax(paxRecord("size", "-1")), message: /PAX size="-1"/ },
  { name: "PAX size=1e3", tar: () => withPax(paxRecord("size", "1e3")), message: /PAX size="1e3"/ },
  {
    name: "PAX size beyond 2^53",
    tar: () => withPax(paxRecord("size", "9007199254740993")),
    message: /PAX size="9007199254740993"/,
  },
  { name: "PAX uid=1.5", tar: () => withPax(paxRecord("uid", "1.5")), message: /PAX uid="1\.5"/ },
  { name: "PAX mtime=abc", tar: () => withPax(paxRecord("mtime", "abc")), message: /PAX mtime="abc"/ },
  {
    name: "PAX record length that lies",
    tar: () => withPax(paxRecord("size", "5", 3)),
    message: /malformed PAX record/,
  },
  {
    name: "ustar size with a stray letter",
    tar: () => withUstarField(124, Buffer.from("0000000005x\0", "latin1")),
    message: /SHA256SUMS.*size field "0000000005x" is not a valid tar number/,
  },
  {
    name: "ustar negative base-256 mtime",
    tar: () =>
      withUstarField(
        136,
        Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]),
      ),
    message: /SHA256SUMS.*mtime field .* is not a valid tar number/,
  },
];

let work: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "airgap-tarnum-"));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("malformed tar numbers", () => {
  for (const c of CASES) {
    it(`${c.name}: refused with exit 3 from a .tar, a .tar.zst and stdin, never a hang`, async () => {
      const slug = c.name.replace(/\W+/g, "-");
      const tar = path.join(work, `${slug}.tar`);
      await writeFile(tar, c.tar());
      const zst = `${tar}.zst`;
      execFileSync("zstd", ["-q", "-f", tar, "-o", zst]);
      const runs = [
        { what: "verify FILE.tar", args: ["bundle", "verify", tar] },
        { what: "verify FILE.tar.zst", args: ["bundle", "verify", zst] },
        { what: "verify -", args: ["bundle", "verify", "-"], input: c.tar() },
        { what: "inspect FILE.tar.zst", args: ["bundle", "inspect", zst] },
      ];
      await Promise.all(
        runs.map(async (run) => {
          const started = Date.now();
          const r = await runCli(run.args, { input: run.input, killAfterMs: HANG_MS });
          expect(r.code, `${run.what}: ${r.stderr}`).toBe(3);
          expect(r.stderr, run.what).toMatch(c.message);
          expect(Date.now() - started, run.what).toBeLessThan(HANG_MS);
        }),
      );
    });
  }

  it("still reads what GNU tar writes: posix (fractional PAX times), gnu and ustar formats", async () => {
    const dir = path.join(work, "gnu-src");
    await mkdir(dir, { recursive: true });
    const inventory = {
      format: "cinc-airgap-bundle/v1",
      tool: { name: "cinc-airgap", version: "1" },
      created: "2026-01-01T00:00:00Z",
      metadata: { name: "gnu", version: "1.0.0" },
      config: { file: "c", sha256: "", text: "" },
      platforms: [],
      items: [],
      totals: { items: 0, blobs: 0, bytes: 0 },
    };
    await writeFile(path.join(dir, "bundle.json"), JSON.stringify(inventory));
    await writeFile(path.join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    execFileSync("touch", ["-d", "2024-01-01 10:00:00.123456789", path.join(dir, "bundle.json")]);
    for (const format of ["posix", "gnu", "ustar"]) {
      const tar = path.join(work, `gnu-${format}.tar`);
      execFileSync("tar", [`--format=${format}`, "-cf", tar, "-C", dir, "bundle.json", "oci-layout"]);
      if (format === "posix") expect((await readFile(tar)).toString("latin1")).toMatch(/mtime=\d+\.\d+/);
      for (const input of [tar, "-"]) {
        const r = await runCli(["bundle", "inspect", input], {
          input: input === "-" ? await readFile(tar) : undefined,
          killAfterMs: HANG_MS,
        });
        expect(r.code, `${format} ${input}: ${r.stderr}`).toBe(0);
        expect(r.stdout).toContain("gnu 1.0.0");
      }
    }
  });

  it("import - refuses a fractional size and leaves nothing behind", async () => {
    const out = path.join(work, "import-out");
    const r = await runCli(
      ["bundle", "import", "-", "--registry", "127.0.0.1:9", "--plain-http", "--out", out],
      { input: withPax(paxRecord("size", "0.5")), killAfterMs: HANG_MS },
    );
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/PAX size="0\.5"/);
    expect(await readdir(work)).not.toContain("import-out");
  });

  it.each([
    ["after one valid header", () => ustar("SHA256SUMS", 1024 * 1024)],
    ["before its first byte", () => Buffer.alloc(0)],
  ])("import - answers SIGTERM while its input stalls %s", async (_when, head) => {
    // stdin stays open and silent: the reader waits for bytes
    const { PassThrough } = await import("node:stream");
    const input = new PassThrough();
    input.write(head());
    const started = Date.now();
    const r = await runCli(["bundle", "import", "-", "--registry", "127.0.0.1:9", "--plain-http"], {
      input,
      killAfterMs: HANG_MS,
      // once import is reading (it says so), not before its handlers exist
      onSpawn: (child) => child.stderr?.once("data", () => setTimeout(() => child.kill("SIGTERM"), 500)),
    });
    input.destroy();
    // runCli reports death by a signal as 137: the command must end by itself, with its message
    expect(r.code, r.stderr).not.toBe(137);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("interrupted");
    expect(Date.now() - started).toBeLessThan(HANG_MS);
  });
});
