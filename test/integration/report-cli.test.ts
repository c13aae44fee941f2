/**
 * `bundle report`: the review document of a bundle built by the CLI from the test registry. Every
 * item appears in Markdown, HTML and JSON; the key fingerprint is the one openssl gives; strings from
 * the bundle cannot add markup; a bundle that does not verify gets no report (exit 3).
 */
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VERSION } from "../../src/version.js";
import { runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import {
  closeFixtures,
  ecdsaSigner,
  plainTarget,
  pushCosignSignature,
  pushImage,
  pushIndex,
  uniqueRepo,
} from "../helpers/fixtures.js";
import { createBundle, generateKey } from "./import-helpers.js";

const target = plainTarget();
const ns = uniqueRepo("report");
const env = { AIRGAP_REQUIRE_SIGNATURE: undefined };
const HOSTILE = "<script>alert(1)</script> | a & b";
let work: string;
let keys: { key: string; pub: string };
let bundle: string;
let tar: string;
let refs: string[];

interface ReportJson {
  items: {
    kind: string;
    name: string;
    digest: string;
    size: number;
    platforms: string[];
    signatureChecks: { key: string; verified: boolean }[];
    carried: { kind: string }[];
    details: Record<string, unknown>;
  }[];
  checksums: { sha256: string };
  signingKey?: { fingerprint: string };
  verification: { ok: boolean; signature: string };
  metadata: { description?: string };
  totals: { items: number; byKind: { kind: string; items: number }[] };
  extraFiles: { path: string; sha256: string; size?: number }[];
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-report-"));
  const upstream = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const upstreamPub = join(work, "upstream.pub");
  writeFileSync(upstreamPub, upstream.publicKey.export({ type: "spki", format: "pem" }));
  const signed = await pushImage(target, `${ns}/auditor`, "6.8.24", { layerSizes: [50_000, 10_000] });
  await pushCosignSignature(target, `${ns}/auditor`, signed.digest, {
    signer: ecdsaSigner(upstream.privateKey),
  });
  await pushIndex(target, `${ns}/busybox`, "1.37", { layerSizes: [8_000] });
  refs = [`${target.host}/${ns}/auditor:6.8.24`, `${target.host}/${ns}/busybox:1.37`];
  mkdirSync(join(work, "profiles", "dep"), { recursive: true });
  mkdirSync(join(work, "profiles", "baseline", "controls"), { recursive: true });
  writeFileSync(join(work, "profiles", "dep", "inspec.yml"), "name: dep-lib\nversion: 0.4.0\n");
  writeFileSync(
    join(work, "profiles", "baseline", "inspec.yml"),
    "name: container-baseline\nversion: 1.2.3\ndepends:\n  - name: dep-lib\n    path: ../dep\n",
  );
  writeFileSync(join(work, "profiles", "baseline", "controls", "c.rb"), 'control "c-1" do\nend\n');
  const config = join(work, "bundle.config.yaml");
  writeFileSync(
    config,
    `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: report-test, version: 2.0.0, description: ${JSON.stringify(HOSTILE)} }
platforms: [linux/amd64, linux/arm64]
registries: [{ host: "${needEnv("AIRGAP_TEST_REGISTRY_PLAIN")}", plainHTTP: true }]
images:
${refs.map((r) => `  - ref: ${r}`).join("\n")}
verify:
  - match: "${target.host}/${ns}/auditor"
    key: ${upstreamPub}
profiles:
  - path: profiles/baseline
`,
  );
  keys = await generateKey(work, "cosign");
  bundle = join(work, "bundle");
  tar = join(work, "bundle.tar");
  const cache = join(work, "cache");
  await createBundle(config, bundle, { key: keys.key, cache });
  await createBundle(config, tar, { key: keys.key, cache });
});

afterAll(async () => {
  await closeFixtures();
});

function inventoryItems(): { kind: string; name: string; digest: string }[] {
  return JSON.parse(readFileSync(join(bundle, "bundle.json"), "utf8")).items;
}

describe("bundle report", () => {
  it("--json lists every item of bundle.json with its digest, size, platforms, signature check and carried signature", async () => {
    const r = await runCli(["bundle", "report", bundle, "--key", keys.pub, "--json"], { env });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as ReportJson;
    const items = inventoryItems();
    expect(items.map((i) => i.kind).sort()).toEqual(["image", "image", "profile"]);
    expect(report.items.map((i) => [i.kind, i.name, i.digest])).toEqual(
      items.map((i) => [i.kind, i.name, i.digest]),
    );
    expect(report.verification).toMatchObject({ ok: true, signature: "verified" });
    const auditor = report.items.find((i) => i.name === refs[0])!;
    expect(auditor.signatureChecks).toEqual([
      expect.objectContaining({ verified: true, key: expect.stringContaining("upstream.pub") }),
    ]);
    expect(auditor.carried.map((c) => c.kind)).toContain("sig");
    const busybox = report.items.find((i) => i.name === refs[1])!;
    expect(busybox.platforms.sort()).toEqual(["linux/amd64", "linux/arm64/v8"]);
    const profile = report.items.find((i) => i.kind === "profile")!;
    expect(JSON.stringify(profile.details.dependencies)).toContain("dep-lib");
    expect(report.totals.byKind).toEqual(
      expect.arrayContaining([
        { kind: "image", items: 2, bytes: expect.any(Number) },
        { kind: "profile", items: 1, bytes: expect.any(Number) },
      ]),
    );
    expect(report.metadata.description).toBe(HOSTILE);
    // the single-file tool the bundle carries is listed with its checksum
    expect(report.extraFiles).toEqual([
      {
        path: `tools/airgap-${VERSION}.mjs`,
        sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        size: expect.any(Number),
      },
    ]);
  });

  it("gives the SHA256SUMS digest and the key fingerprint openssl and sha256sum compute", async () => {
    const r = await runCli(["bundle", "report", bundle, "--key", keys.pub, "--json"], { env });
    const report = JSON.parse(r.stdout) as ReportJson;
    const sums = execFileSync("sha256sum", [join(bundle, "SHA256SUMS")], { encoding: "utf8" }).slice(0, 64);
    expect(report.checksums.sha256).toBe(sums);
    const der = execFileSync("openssl", ["pkey", "-pubin", "-in", keys.pub, "-outform", "DER"]);
    const fp = execFileSync("sha256sum", { input: der, encoding: "utf8" }).slice(0, 64);
    expect(report.signingKey?.fingerprint).toBe(`sha256:${fp}`);
  });

  it("writes Markdown and a self-contained HTML page naming every item, digest and the fingerprint", async () => {
    const md = join(work, "report.md");
    const html = join(work, "report.html");
    const texts: string[] = [];
    for (const [file, source] of [
      [md, bundle],
      [html, tar],
    ] as const) {
      const r = await runCli(["bundle", "report", source, "--key", keys.pub, "-o", file], { env });
      expect(r.code, r.stderr).toBe(0);
      const json = JSON.parse(
        (await runCli(["bundle", "report", source, "--key", keys.pub, "--json"], { env })).stdout,
      ) as ReportJson;
      const text = readFileSync(file, "utf8");
      for (const item of inventoryItems()) expect(text).toContain(item.digest);
      expect(text).toContain(json.checksums.sha256);
      expect(text).toContain(json.signingKey!.fingerprint);
      expect(text).toMatch(/container-baseline/);
      expect(text).toMatch(/dep-lib/);
      texts.push(text);
    }
    const [mdText, htmlText] = texts as [string, string];
    // one file: no scripts, stylesheets, images or fonts from anywhere else
    expect(htmlText).not.toMatch(/<script|<link|src=|url\(|@import/i);
    expect(htmlText).toMatch(/<style>[^<]*@media print/);
    // the bundle's strings are text, never markup or extra table cells
    expect(htmlText).toContain("&#60;script&#62;alert(1)&#60;/script&#62; | a &#38; b");
    expect(mdText).toContain("\\<script\\>alert\\(1\\)\\</script\\> \\| a \\& b");
    expect(mdText).not.toContain("<script>");
  });

  it("reads a bundle from a pipe (one verifying pass) and reports the same items", async () => {
    const r = await runCli(["bundle", "report", "-", "--key", keys.pub, "--json"], {
      env,
      input: readFileSync(tar),
    });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as ReportJson;
    expect(report.items.map((i) => i.digest)).toEqual(inventoryItems().map((i) => i.digest));
    const tampered = Buffer.from(readFileSync(tar));
    const at = tampered.length - 20_000;
    tampered.writeUInt8(tampered.readUInt8(at) ^ 1, at);
    const bad = await runCli(["bundle", "report", "-", "--key", keys.pub], { env, input: tampered });
    expect(bad.code, bad.stderr).toBe(3);
    expect(bad.stdout).toBe("");
  });

  it("refuses (exit 3, no file) a bundle that does not verify, naming the file at fault", async () => {
    const bad = join(work, "tampered");
    cpSync(bundle, bad, { recursive: true });
    appendFileSync(join(bad, "bundle.json"), " ");
    const out = join(work, "tampered.md");
    const r = await runCli(["bundle", "report", bad, "--key", keys.pub, "-o", out], { env });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/bundle\.json/);
    expect(() => readFileSync(out)).toThrow();
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const otherPub = join(work, "other.pub");
    writeFileSync(otherPub, other.publicKey.export({ type: "spki", format: "pem" }));
    const w = await runCli(["bundle", "report", bundle, "--key", otherPub], { env });
    expect(w.code, w.stderr).toBe(3);
    expect(w.stdout).toBe("");
  });

  it("without --key it still reports, and says authenticity was not checked", async () => {
    const r = await runCli(["bundle", "report", bundle], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/NOT checked/);
    expect(r.stdout).toMatch(/not given/);
  });

  it("an output that is neither .md nor .html is a usage error (exit 2)", async () => {
    const r = await runCli(["bundle", "report", bundle, "-o", join(work, "r.pdf")], { env });
    expect(r.code, r.stderr).toBe(2);
  });
});
