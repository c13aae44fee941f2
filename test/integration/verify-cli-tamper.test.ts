import { copyFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import {
  closeFixtures,
  type PushedImage,
  plainTarget,
  pushImage,
  pushIndex,
  uniqueRepo,
} from "../helpers/fixtures.js";
import {
  copyTree,
  createBundle,
  flipByte,
  generateKey,
  tarEntry,
  writeBundleConfig,
} from "./import-helpers.js";

const target = plainTarget();
const ns = uniqueRepo("verify-tamper");
let work: string;
let keys: { key: string; pub: string };
let otherKeys: { key: string; pub: string };
let good: string;
let goodTar: string;
let other: string;
let unsigned: string;
let single: PushedImage;
/** hex of the 200 KB layer of `single`, a blob every tamper case can aim at */
let layerHex: string;
let n = 0;

const env = { AIRGAP_REQUIRE_SIGNATURE: undefined };

/** A fresh copy of the good signed directory bundle to damage. */
function copyOfGood(): string {
  const to = join(work, `tampered-${n++}`);
  copyTree(good, to);
  return to;
}

async function verify(bundle: string, key: string | null = keys.pub) {
  return runCli(["bundle", "verify", bundle, ...(key ? ["--key", key] : [])], { env });
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-verify-tamper-"));
  single = await pushImage(target, `${ns}/single`, "1.0", { layerSizes: [200_000, 30_000] });
  layerHex = single.layers[0]!.digest.slice("sha256:".length);
  await pushIndex(target, `${ns}/multi`, "2", { layerSizes: [20_000] });
  await pushImage(target, `${ns}/other`, "1", { layerSizes: [10_000] });
  keys = await generateKey(work, "cosign");
  otherKeys = await generateKey(work, "stranger");
  const cache = join(work, "cache");
  const cfg = writeBundleConfig(work, "tamper", [
    `${target.host}/${ns}/single:1.0`,
    `${target.host}/${ns}/multi:2`,
  ]);
  good = join(work, "good");
  goodTar = join(work, "good.tar");
  await createBundle(cfg, good, { key: keys.key, cache });
  await createBundle(cfg, goodTar, { key: keys.key, cache });
  other = join(work, "other");
  await createBundle(writeBundleConfig(work, "other", [`${target.host}/${ns}/other:1`]), other, {
    key: keys.key,
    cache,
  });
  unsigned = join(work, "unsigned");
  await createBundle(cfg, unsigned, { cache });
});

afterAll(async () => {
  await closeFixtures();
});

describe("bundle verify refuses a damaged bundle with exit 3 and names what is wrong", () => {
  it("the untouched bundle verifies (control)", async () => {
    const r = await verify(good);
    expect(r.code, r.stderr).toBe(0);
  });

  it("a flipped byte in a blob of a directory bundle", async () => {
    const b = copyOfGood();
    flipByte(join(b, "blobs", "sha256", layerHex));
    const r = await verify(b);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain(layerHex.slice(0, 12));
  });

  it("a flipped byte in a blob inside a tar", async () => {
    const t = join(work, "flipped.tar");
    copyFileSync(goodTar, t);
    const at = tarEntry(t, `blobs/sha256/${layerHex}`);
    flipByte(t, at.offset + Math.floor(at.size / 2));
    const r = await verify(t);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain(layerHex.slice(0, 12));
  });

  it("an edited index.json (a root renamed)", async () => {
    const b = copyOfGood();
    const file = join(b, "index.json");
    const text = readFileSync(file, "utf8");
    expect(text).toContain(`${ns}/single:1.0`);
    writeFileSync(file, text.replaceAll(`${ns}/single:1.0`, `${ns}/single:6.6`));
    const r = await verify(b);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain("index.json");
  });

  it("an edited bundle.json", async () => {
    const b = copyOfGood();
    const file = join(b, "bundle.json");
    const text = readFileSync(file, "utf8");
    expect(text).toContain("tamper");
    writeFileSync(file, text.replace("tamper", "tamprr"));
    const r = await verify(b);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain("bundle.json");
  });

  it("an edited SHA256SUMS (same lines, other order): the signature no longer matches", async () => {
    const b = copyOfGood();
    const file = join(b, "SHA256SUMS");
    const lines = readFileSync(file, "utf8").trimEnd().split("\n");
    writeFileSync(file, `${[...lines].reverse().join("\n")}\n`);
    const r = await verify(b);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain("SHA256SUMS.sig");
    expect(r.stderr).toMatch(/SIGNATURE_INVALID/);
  });

  it("a missing blob", async () => {
    const b = copyOfGood();
    rmSync(join(b, "blobs", "sha256", layerHex));
    const r = await verify(b);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain(layerHex.slice(0, 12));
  });

  it("an extra file that SHA256SUMS does not list", async () => {
    const b = copyOfGood();
    writeFileSync(join(b, "notes.txt"), "run me\n");
    const r = await verify(b);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain("notes.txt");
  });

  it("an extra blob that SHA256SUMS does not list", async () => {
    const b = copyOfGood();
    const bytes = Buffer.from("smuggled\n");
    const { createHash } = await import("node:crypto");
    const hex = createHash("sha256").update(bytes).digest("hex");
    writeFileSync(join(b, "blobs", "sha256", hex), bytes);
    const r = await verify(b);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain(hex.slice(0, 12));
  });

  it("a truncated tar", async () => {
    const t = join(work, "truncated.tar");
    copyFileSync(goodTar, t);
    const at = tarEntry(t, `blobs/sha256/${layerHex}`);
    truncateSync(t, at.offset + 1000);
    const r = await verify(t);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/truncated/i);
    expect(r.stderr).toContain(layerHex.slice(0, 12));
  });

  it("a truncated tar on standard input", async () => {
    const t = join(work, "truncated-stdin.tar");
    copyFileSync(goodTar, t);
    const at = tarEntry(t, `blobs/sha256/${layerHex}`);
    truncateSync(t, at.offset + 3000);
    const r = await runCli(["bundle", "verify", "-", "--key", keys.pub], { env, input: readFileSync(t) });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/truncated/i);
    expect(r.stderr).toContain(layerHex.slice(0, 12));
  });

  it("a swapped signature (the signature of another bundle, same key)", async () => {
    const b = copyOfGood();
    for (const f of ["SHA256SUMS.sig", "SHA256SUMS.sigstore.json"]) copyFileSync(join(other, f), join(b, f));
    // the other bundle's signature is genuine for the other bundle
    expect((await verify(other)).code).toBe(0);
    const r = await verify(b);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain("SHA256SUMS.sig");
    expect(r.stderr).toMatch(/signature/i);
  });

  it("the wrong public key", async () => {
    const r = await verify(good, otherKeys.pub);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain("SHA256SUMS.sig");
    expect(r.stderr).toMatch(/signature/i);
  });

  it("an unsigned bundle verified with --key", async () => {
    const r = await verify(unsigned, keys.pub);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain("SHA256SUMS.sig");
    expect(r.stderr).toMatch(/signature/i);
    // without a key the same bundle is fine (with a warning)
    const noKey = await verify(unsigned, null);
    expect(noKey.code, noKey.stderr).toBe(0);
    expect(noKey.stderr).toMatch(/warning:/i);
  });

  it("a tampered tar on standard input", async () => {
    const t = join(work, "flipped-stdin.tar");
    copyFileSync(goodTar, t);
    const at = tarEntry(t, `blobs/sha256/${layerHex}`);
    flipByte(t, at.offset + 7);
    const r = await runCli(["bundle", "verify", "-", "--key", keys.pub], { env, input: readFileSync(t) });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain(layerHex.slice(0, 12));
  });

  it("--json lists every problem with its item", async () => {
    const b = copyOfGood();
    flipByte(join(b, "blobs", "sha256", layerHex));
    writeFileSync(join(b, "notes.txt"), "run me\n");
    const r = await runCli(["bundle", "verify", b, "--key", keys.pub, "--json"], { env });
    expect(r.code, r.stderr).toBe(3);
    const report = JSON.parse(r.stdout) as {
      ok: boolean;
      problems: { code: string; item: string; message: string }[];
    };
    expect(report.ok).toBe(false);
    const items = report.problems.map((p) => p.item);
    expect(items.some((i) => i.includes(layerHex))).toBe(true);
    expect(items.some((i) => i.includes("notes.txt"))).toBe(true);
    for (const p of report.problems) expect(typeof p.code).toBe("string");
  });
});
