import { createReadStream, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import {
  closeFixtures,
  plainTarget,
  pushCosignSignature,
  pushImage,
  pushIndex,
  uniqueRepo,
} from "../helpers/fixtures.js";
import { createBundle, generateKey, writeBundleConfig } from "./import-helpers.js";

const target = plainTarget();
const ns = uniqueRepo("verify-good");
let work: string;
let keys: { key: string; pub: string };
let dir: string;
let tar: string;
let zst: string;

const env = { AIRGAP_REQUIRE_SIGNATURE: undefined };

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-verify-good-"));
  const single = await pushImage(target, `${ns}/single`, "1.0", { layerSizes: [200_000, 30_000] });
  await pushCosignSignature(target, `${ns}/single`, single.digest);
  await pushIndex(target, `${ns}/multi`, "2", { layerSizes: [20_000] });
  await pushImage(target, `${ns}/docker`, "v2s2", { layerSizes: [40_000], format: "docker" });
  keys = await generateKey(work, "cosign");
  const cfg = writeBundleConfig(work, "good", [
    `${target.host}/${ns}/single:1.0`,
    `${target.host}/${ns}/multi:2`,
    `${target.host}/${ns}/docker:v2s2`,
  ]);
  const cache = join(work, "cache");
  dir = join(work, "bundle");
  tar = join(work, "bundle.tar");
  zst = join(work, "bundle.tar.zst");
  await createBundle(cfg, dir, { key: keys.key, cache });
  await createBundle(cfg, tar, { key: keys.key, cache });
  await createBundle(cfg, zst, { key: keys.key, cache });
});

afterAll(async () => {
  await closeFixtures();
});

describe("bundle verify of a good bundle", () => {
  it("a signed directory verifies with its public key: exit 0, no warning", async () => {
    const r = await runCli(["bundle", "verify", dir, "--key", keys.pub], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/warning|FAIL/i);
  });

  it("a signed tar and tar.zst verify with the public key", async () => {
    for (const file of [tar, zst]) {
      const r = await runCli(["bundle", "verify", file, "--key", keys.pub], { env });
      expect(r.code, `${file}: ${r.stderr}`).toBe(0);
      expect(r.stderr).not.toMatch(/FAIL/);
    }
  });

  it("without --key: exit 0, and stderr warns that authenticity was not checked", async () => {
    const r = await runCli(["bundle", "verify", dir], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning:[^\n]*authenticity[^\n]*not (been )?(checked|verified)/i);
  });

  it("--require-signature without --key is a usage error (exit 2), and so is AIRGAP_REQUIRE_SIGNATURE=1", async () => {
    const r = await runCli(["bundle", "verify", dir, "--require-signature"], { env });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/--key/);
    const e = await runCli(["bundle", "verify", dir], { env: { AIRGAP_REQUIRE_SIGNATURE: "1" } });
    expect(e.code, e.stderr).toBe(2);
  });

  it("--require-signature with the key verifies (exit 0)", async () => {
    const r = await runCli(["bundle", "verify", tar, "--key", keys.pub, "--require-signature"], { env });
    expect(r.code, r.stderr).toBe(0);
  });

  it("reads a good tar and a good tar.zst from standard input (-): exit 0", async () => {
    for (const file of [tar, zst]) {
      const r = await runCli(["bundle", "verify", "-", "--key", keys.pub], {
        env,
        input: createReadStream(file),
      });
      expect(r.code, `${file} on stdin: ${r.stderr}`).toBe(0);
      expect(r.stderr).not.toMatch(/FAIL/);
    }
  });

  it("--json prints one parseable report: ok, no problems, signature verified", async () => {
    const r = await runCli(["bundle", "verify", dir, "--key", keys.pub, "--json"], { env });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as {
      ok: boolean;
      problems: unknown[];
      signature: string;
      blobs: number;
    };
    expect(report.ok).toBe(true);
    expect(report.problems).toEqual([]);
    expect(report.signature).toBe("verified");
    expect(report.blobs).toBeGreaterThan(5);
  });
});
