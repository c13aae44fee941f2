/**
 * What inspect, diff and verify print from a bundle is data from the other side of the gap: escape
 * sequences in bundle.json or in file names are shown escaped, never obeyed, and an oversized
 * bundle.json is refused before it is read, from a directory, a .tar.zst and standard input.
 */
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Header } from "tar";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";

const ESC = "\u001b";
const CLEAR = `${ESC}[2J`;
const OSC_LINK = `${ESC}]8;;http://evil.example/${"\u0007"}click${ESC}]8;;${"\u0007"}`;
const OSC_TITLE = `${ESC}]0;pwned${"\u0007"}`;
const C1_CSI = "\u009b31m";
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding raw control characters is the point
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;
const MAX = 64 * 1024 * 1024;

let work: string;

function inventory(name: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    format: "cinc-airgap-bundle/v1",
    tool: { name: `cinc-airgap${OSC_TITLE}`, version: "1" },
    created: `2026-01-01${CLEAR}`,
    metadata: { name, version: `1.0${C1_CSI}` },
    config: { file: "x", sha256: "", text: "" },
    platforms: [],
    items: [
      {
        kind: "image",
        name: `docker.io/evil/${OSC_LINK}:1`,
        source: `docker.io/evil/x:1${CLEAR}`,
        digest: `sha256:${"a".repeat(64)}`,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        size: 1,
        blobs: [],
        manifests: [],
        sourceDigest: "",
        platforms: [`linux/amd64${CLEAR}`],
        carried: [],
      },
    ],
    totals: { items: 1, blobs: 0, bytes: 0 },
    ...extra,
  });
}

/** A tar of these files, streamed through zstd: big bodies are `size` bytes of `fill`, never in memory. */
async function tarZst(
  file: string,
  entries: { path: string; size: number; fill?: number; bytes?: Buffer }[],
): Promise<void> {
  const z = spawn("zstd", ["-q", "-1", "-f", "-o", file], { stdio: ["pipe", "inherit", "inherit"] });
  const write = (b: Buffer) =>
    new Promise<void>((resolve) => (z.stdin.write(b) ? resolve() : z.stdin.once("drain", resolve)));
  for (const e of entries) {
    const header = Buffer.alloc(512);
    new Header({ path: e.path, size: e.size, type: "File", mode: 0o644, mtime: new Date(0) }).encode(header);
    await write(header);
    if (e.bytes) await write(e.bytes);
    else {
      const chunk = Buffer.alloc(1024 * 1024, e.fill ?? 0);
      for (let left = e.size; left > 0; left -= chunk.length)
        await write(chunk.subarray(0, Math.min(left, chunk.length)));
    }
    await write(Buffer.alloc((512 - (e.size % 512)) % 512));
  }
  await write(Buffer.alloc(1024));
  z.stdin.end();
  await new Promise((resolve) => z.on("close", resolve));
}

function sha256OfFill(size: number, fill: number): string {
  const h = createHash("sha256");
  const chunk = Buffer.alloc(1024 * 1024, fill);
  for (let left = size; left > 0; left -= chunk.length)
    h.update(chunk.subarray(0, Math.min(left, chunk.length)));
  return h.digest("hex");
}

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "airgap-untrusted-"));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("terminal output of bundle data", () => {
  it("inspect and diff show escape sequences from bundle.json escaped", async () => {
    const a = path.join(work, "a");
    const b = path.join(work, "b");
    await mkdir(a);
    await mkdir(b);
    await writeFile(path.join(a, "bundle.json"), inventory(`old${CLEAR}`));
    await writeFile(path.join(b, "bundle.json"), inventory(`new${OSC_TITLE}`, { items: [] }));
    const tar = path.join(work, "a.tar");
    execFileSync("tar", ["-cf", tar, "-C", a, "bundle.json"]);
    const zst = `${tar}.zst`;
    execFileSync("zstd", ["-q", "-f", tar, "-o", zst]);

    const runs = [
      await runCli(["bundle", "inspect", a]),
      await runCli(["bundle", "inspect", zst]),
      await runCli(["bundle", "inspect", "-"], { input: await readFile(tar) }),
      await runCli(["bundle", "diff", a, b]),
    ];
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).not.toMatch(RAW_CONTROL);
      expect(r.stderr).not.toMatch(RAW_CONTROL);
    }
    expect(runs[0]!.stdout).toContain("old\\e[2J 1.0\\x9b31m");
    expect(runs[0]!.stdout).toContain("docker.io/evil/\\e]8;;http://evil.example/\\x07click\\e]8;;\\x07:1");
    expect(runs[0]!.stdout).toContain("linux/amd64\\e[2J");
    expect(runs[1]!.stdout).toBe(runs[0]!.stdout);
    expect(runs[3]!.stdout).toContain("- image docker.io/evil/\\e]8;;");
  });

  it("inspect refuses a bundle.json whose fields have the wrong types, naming the field", async () => {
    const dir = path.join(work, "types");
    await mkdir(dir);
    const inv = JSON.parse(inventory("types")) as { items: Record<string, unknown>[] };
    inv.items[0]!.size = "12 MB";
    await writeFile(path.join(dir, "bundle.json"), JSON.stringify(inv));
    const r = await runCli(["bundle", "inspect", dir]);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/bundle\.json: items\[0\]\.size is not a byte count/);
  });

  it("verify shows a file name with escape sequences escaped", async () => {
    const dir = path.join(work, "names");
    await mkdir(dir);
    await writeFile(path.join(dir, `evil${CLEAR}${OSC_TITLE}`), "x");
    await writeFile(path.join(dir, "SHA256SUMS"), "");
    const r = await runCli(["bundle", "verify", dir]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("evil\\e[2J\\e]0;pwned\\x07");
    expect(r.stderr).not.toMatch(RAW_CONTROL);
  });
});

describe("an oversized bundle.json", () => {
  it("is refused before it is read, from a directory, a .tar.zst and stdin", async () => {
    const dir = path.join(work, "big");
    await mkdir(dir);
    // sparse: the size is what is checked, before any byte is read
    await writeFile(path.join(dir, "bundle.json"), "");
    await truncate(path.join(dir, "bundle.json"), MAX + 1);
    const zst = path.join(work, "big.tar.zst");
    // SHA256SUMS first and matching, so verify gets as far as bundle.json itself
    const sums = Buffer.from(`${sha256OfFill(MAX + 1, 0x20)}  bundle.json\n`);
    await tarZst(zst, [
      { path: "SHA256SUMS", size: sums.length, bytes: sums },
      { path: "bundle.json", size: MAX + 1, fill: 0x20 },
    ]);
    const message = /bundle\.json is 67108865 bytes, over the 64 MiB limit for bundle metadata/;
    const runs = [
      await runCli(["bundle", "inspect", dir], { killAfterMs: 30_000 }),
      await runCli(["bundle", "inspect", zst], { killAfterMs: 30_000 }),
      await runCli(["bundle", "diff", zst, dir], { killAfterMs: 30_000 }),
      await runCli(["bundle", "verify", zst], { killAfterMs: 60_000 }),
      await runCli(["bundle", "inspect", "-"], { input: await readFile(zst), killAfterMs: 30_000 }),
    ];
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(message);
    }
  });
});
