/**
 * Each extraction limit on both archive formats, with limits small enough to hit quickly (the
 * defaults are exercised through the CLI in test/integration/profiles-hostile.test.ts), and the
 * classification of git remotes that decides whether a dependency reads this machine's files.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, statSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IntegrityError } from "../../src/errors.js";
import { ARCHIVE_LIMITS, type ArchiveLimits, extractArchive } from "../../src/profiles/archive.js";
import { gitRemoteKind } from "../../src/sources/profiles/confine.js";
import { buildZip, deflated, stored } from "../helpers/zip.js";

let tmp: string;
const small: ArchiveLimits = {
  maxTotalBytes: 64 * 1024,
  maxEntries: 5,
  maxRatio: 10,
  ratioGraceBytes: 32 * 1024,
};
/** Ratio checked early, total out of the way. */
const ratioOnly: ArchiveLimits = { ...small, maxTotalBytes: 1024 ** 2, ratioGraceBytes: 4096 };

beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), "airgap-archive-limits-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function tarGz(name: string, files: Record<string, Buffer>): Promise<string> {
  const src = path.join(tmp, `${name}-src`);
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(src, rel)), { recursive: true });
    await writeFile(path.join(src, rel), content);
  }
  const out = path.join(tmp, `${name}.tar.gz`);
  execFileSync("tar", ["-czf", out, "-C", src, "."]);
  return out;
}

async function zip(name: string, bytes: Buffer): Promise<string> {
  const out = path.join(tmp, `${name}.zip`);
  await writeFile(out, bytes);
  return out;
}

async function refusal(file: string, limits: ArchiveLimits): Promise<IntegrityError> {
  const dest = path.join(tmp, `out-${path.basename(file)}`);
  const err = await extractArchive(file, dest, `source ${path.basename(file)}`, limits).catch(
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(IntegrityError);
  return err as IntegrityError;
}

describe("extraction limits", () => {
  it("have the documented defaults", () => {
    expect(ARCHIVE_LIMITS).toEqual({
      maxTotalBytes: 2 * 1024 ** 3,
      maxEntries: 50_000,
      maxRatio: 200,
      ratioGraceBytes: 1024 ** 2,
    });
  });

  it("extract an archive within every limit", async () => {
    const files = { "p/inspec.yml": Buffer.from("name: p\nversion: 1.0.0\n"), "p/a.rb": randomBytes(3000) };
    for (const file of [
      await tarGz("fits", files),
      await zip("fits", buildZip(Object.entries(files).map(([n, c]) => stored(n, c)))),
    ]) {
      const dest = path.join(tmp, `ok-${path.basename(file)}`);
      await extractArchive(file, dest, "fits", small);
      expect(readdirSync(path.join(dest, "p")).sort()).toEqual(["a.rb", "inspec.yml"]);
    }
  });

  it("refuse too many entries, naming the limit and the source", async () => {
    const many = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`f${i}`, Buffer.from("x")]));
    const t = await refusal(await tarGz("many", many), small);
    expect(t.message).toMatch(
      /^source many\.tar\.gz: archive refused: more than 5 entries \(limit maxEntries\)/,
    );
    const z = await refusal(
      await zip("many", buildZip(Object.entries(many).map(([n, c]) => stored(n, c)))),
      small,
    );
    expect(z.message).toMatch(/^source many\.zip: archive refused: more than 5 entries \(limit maxEntries\)/);
  });

  it("refuse more uncompressed bytes than the total cap, stopping the tar stream there", async () => {
    const big = { "big.bin": randomBytes(100 * 1024) };
    const t = await refusal(await tarGz("big", big), small);
    expect(t.message).toMatch(/archive refused: more than 65536 bytes uncompressed \(limit maxTotalBytes\)/);
    // the stream stopped at the cap: less than the cap was written
    const written = path.join(tmp, "out-big.tar.gz", "big.bin");
    expect(!existsSync(written) || statSync(written).size <= 64 * 1024).toBe(true);
    const z = await refusal(await zip("big", buildZip([stored("big.bin", big["big.bin"])])), small);
    expect(z.message).toMatch(/archive refused: more than 65536 bytes uncompressed \(limit maxTotalBytes\)/);
    expect(existsSync(path.join(tmp, "out-big.zip", "big.bin"))).toBe(false);
  });

  it("refuse a compression ratio past the limit once past the grace bytes", async () => {
    const zeros = { "zeros.bin": Buffer.alloc(60 * 1024) };
    const t = await refusal(await tarGz("ratio", zeros), ratioOnly);
    expect(t.message).toMatch(/more than 10:1 \(limit maxRatio\)/);
    const z = await refusal(
      await zip("ratio", buildZip([deflated("zeros.bin", zeros["zeros.bin"])])),
      ratioOnly,
    );
    expect(z.message).toMatch(/more than 10:1 \(limit maxRatio\)/);
    // below the grace bytes the ratio does not matter
    await extractArchive(
      await tarGz("tiny-ratio", { "z.bin": Buffer.alloc(2000) }),
      path.join(tmp, "tiny-ratio"),
      "tiny",
      small,
    );
  });

  it("refuse an entry whose data does not match its declared size or CRC", async () => {
    const content = Buffer.from("name: p\nversion: 1.0.0\n");
    const lying = { ...stored("inspec.yml", content), size: content.length + 5 };
    const e1 = await refusal(await zip("size-lie", buildZip([lying])), ARCHIVE_LIMITS);
    expect(e1.message).toMatch(/size-lie\.zip/);
    const badCrc = { ...stored("inspec.yml", content), crc: 1234 };
    const e2 = await refusal(await zip("crc-lie", buildZip([badCrc])), ARCHIVE_LIMITS);
    expect(e2.code).toBe("CHECKSUM_MISMATCH");
  });

  it("refuse two zip entries with one name", async () => {
    const e = await refusal(
      await zip("twice", buildZip([stored("a.txt", "one"), stored("a.txt", "two")])),
      ARCHIVE_LIMITS,
    );
    expect(e.message).toMatch(/zip entry "a.txt" appears twice/);
  });

  it("drop links that stay inside the archive, as InSpec does", async () => {
    const file = await zip(
      "inner-link",
      buildZip([stored("p/inspec.yml", "name: p\n"), stored("p/alias.yml", "inspec.yml", 0o120777)]),
    );
    const dest = path.join(tmp, "inner-link");
    await extractArchive(file, dest, "inner", ARCHIVE_LIMITS);
    expect(readdirSync(path.join(dest, "p"))).toEqual(["inspec.yml"]);
  });
});

describe("git remote kinds", () => {
  it.each([
    ["https://github.com/org/repo.git", "network"],
    ["http://127.0.0.1:8080/repo.git", "network"],
    ["ssh://git@host/repo.git", "network"],
    ["git@github.com:org/repo.git", "network"],
    ["git://host/repo", "network"],
    ["file:///srv/repo.git", "local"],
    ["/srv/repo.git", "local"],
    ["../repo", "local"],
    ["repo", "local"],
    ["ext::sh -c touch% /tmp/pwned", "helper"],
    ["fd::3", "helper"],
    ["s3://bucket/repo", "helper"],
  ])("%s is %s", (remote, kind) => {
    expect(gitRemoteKind(remote)).toBe(kind);
  });
});
