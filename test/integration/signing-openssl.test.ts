/**
 * What a site does before it trusts anything new: check SHA256SUMS.sig with coreutils and openssl,
 * exactly as the bundle format documents.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPrivateKey, loadPublicKey, writeKeyPair } from "../../src/bundle/keys.js";
import { signChecksums, verifyChecksumsSignature, verifySigstoreBundle } from "../../src/bundle/signing.js";

function run(cmd: string, args: string[], cwd: string) {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8" });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe("SHA256SUMS signatures checked with the tools a site already has", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "airgap-sign-"));
    await fs.writeFile(path.join(dir, "bundle.json"), '{"formatVersion":1}\n');
    const sums = run("sha256sum", ["bundle.json"], dir);
    expect(sums.status).toBe(0);
    await fs.writeFile(path.join(dir, "SHA256SUMS"), sums.out);

    const { keyPath, pubPath } = await writeKeyPair(path.join(dir, "cosign"), "pw");
    const key = loadPrivateKey(await fs.readFile(keyPath, "utf8"), "pw", keyPath);
    const pub = loadPublicKey(await fs.readFile(pubPath, "utf8"), pubPath);
    const signed = signChecksums(await fs.readFile(path.join(dir, "SHA256SUMS")), key, pub);
    await fs.writeFile(path.join(dir, "SHA256SUMS.sig"), signed.sigBase64);
    await fs.writeFile(path.join(dir, "SHA256SUMS.sigstore.json"), signed.sigstoreBundleJson);
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it("sha256sum -c passes and openssl prints Verified OK for our signature", () => {
    expect(run("sha256sum", ["-c", "SHA256SUMS"], dir)).toEqual({ status: 0, out: "bundle.json: OK\n" });
    expect(run("sh", ["-c", "base64 -d SHA256SUMS.sig > s.der"], dir).status).toBe(0);
    const verify = run(
      "openssl",
      ["dgst", "-sha256", "-verify", "cosign.pub", "-signature", "s.der", "SHA256SUMS"],
      dir,
    );
    expect(verify).toEqual({ status: 0, out: "Verified OK\n" });
  });

  it("openssl and our verifier both reject the signature once SHA256SUMS changes", async () => {
    const original = await fs.readFile(path.join(dir, "SHA256SUMS"));
    const changed = Buffer.from(original.toString().replace(/^./, (c) => (c === "0" ? "1" : "0")));
    await fs.writeFile(path.join(dir, "SHA256SUMS.changed"), changed);
    expect(run("sh", ["-c", "base64 -d SHA256SUMS.sig > s2.der"], dir).status).toBe(0);
    const verify = run(
      "openssl",
      ["dgst", "-sha256", "-verify", "cosign.pub", "-signature", "s2.der", "SHA256SUMS.changed"],
      dir,
    );
    expect(verify.status).toBe(1);
    expect(verify.out).toContain("Verification failure");

    const pub = loadPublicKey(await fs.readFile(path.join(dir, "cosign.pub"), "utf8"));
    const sig = await fs.readFile(path.join(dir, "SHA256SUMS.sig"), "utf8");
    const bundleJson = await fs.readFile(path.join(dir, "SHA256SUMS.sigstore.json"), "utf8");
    expect(verifyChecksumsSignature(original, sig, pub)).toBe(true);
    expect(verifySigstoreBundle(original, bundleJson, pub)).toBe(true);
    expect(verifyChecksumsSignature(changed, sig, pub)).toBe(false);
    expect(verifySigstoreBundle(changed, bundleJson, pub)).toBe(false);
  });

  it("signs with a key made by openssl, and openssl verifies it", async () => {
    expect(
      run(
        "openssl",
        ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "o.key"],
        dir,
      ).status,
    ).toBe(0);
    expect(run("openssl", ["pkey", "-in", "o.key", "-pubout", "-out", "o.pub"], dir).status).toBe(0);
    const key = loadPrivateKey(await fs.readFile(path.join(dir, "o.key"), "utf8"), undefined, "o.key");
    const pub = loadPublicKey(await fs.readFile(path.join(dir, "o.pub"), "utf8"), "o.pub");
    const sums = await fs.readFile(path.join(dir, "SHA256SUMS"));
    await fs.writeFile(
      path.join(dir, "o.der"),
      Buffer.from(signChecksums(sums, key, pub).sigBase64, "base64"),
    );
    const verify = run(
      "openssl",
      ["dgst", "-sha256", "-verify", "o.pub", "-signature", "o.der", "SHA256SUMS"],
      dir,
    );
    expect(verify).toEqual({ status: 0, out: "Verified OK\n" });
  });
});
