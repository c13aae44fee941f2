import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { human } from "../../src/pipeline/progress.js";
import { runCli } from "../helpers/cli.js";
import { closeFixtures, plainTarget, pushImage, uniqueRepo } from "../helpers/fixtures.js";
import { writeBundleConfig } from "./import-helpers.js";

// Small enough that the progress lines show KiB to one decimal (±51 bytes): a manifest or config
// blob left out of a count (hundreds of bytes), or a shared layer counted twice, changes the figure.
const target = plainTarget();
const ns = uniqueRepo("progress");
let work: string;
let bundle: string;
let createStderr: string;

function files(dir: string): { path: string; size: number }[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => {
      const path = join(e.parentPath, e.name);
      return { path: relative(dir, path), size: statSync(path).size };
    });
}

/** The closing line of a phase: "  NAME: FIGURES". */
function summaryOf(stderr: string, phase: string): string {
  const lines = stderr.split("\n").filter((l) => l.startsWith(`  ${phase}: `));
  expect(lines.length, stderr).toBeGreaterThan(0);
  return lines[lines.length - 1]!;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-progress-"));
  const base = await pushImage(target, `${ns}/base`, "1", { layerSizes: [90_000, 45_000] });
  await pushImage(target, `${ns}/a`, "1", { layerSizes: [20_000], sharedLayers: base.layers });
  await pushImage(target, `${ns}/b`, "1", { layerSizes: [11_000], sharedLayers: base.layers });
  const cfg = writeBundleConfig(work, "progress", [`${target.host}/${ns}/a:1`, `${target.host}/${ns}/b:1`]);
  bundle = join(work, "bundle");
  const r = await runCli(["bundle", "create", "-c", cfg, "-o", bundle, "--cache", join(work, "cache")]);
  expect(r.code, r.stderr).toBe(0);
  createStderr = r.stderr;
});

afterAll(async () => {
  await closeFixtures();
});

describe("progress lines report what really moved", () => {
  it("create: pulling ends at the bytes of every blob in the bundle (a shared layer once), writing at the bundle's size", () => {
    const all = files(bundle);
    const blobBytes = all.filter((f) => f.path.startsWith("blobs/")).reduce((n, f) => n + f.size, 0);
    const bundleBytes = all.reduce((n, f) => n + f.size, 0);
    const pulling = summaryOf(createStderr, "pulling");
    expect(pulling).toMatch(
      new RegExp(`^  pulling: ${human(blobBytes)} in \\d+\\.\\ds( \\(.*/s\\))?, 2 items$`),
    );
    expect(createStderr).toContain(`pulling ${human(blobBytes)}…`);
    expect(summaryOf(createStderr, "writing")).toMatch(new RegExp(`^  writing: ${human(bundleBytes)} in `));
    // No running line claims more than the total, or a rate from a handful of bytes.
    for (const line of createStderr.split("\n").filter((l) => / \/ .*\/s/.test(l))) {
      expect(line).not.toMatch(/ETA \d{3,}s/);
    }
  });

  it("verify: verifying ends at the bytes of every file SHA256SUMS lists", async () => {
    const listed = readFileSync(join(bundle, "SHA256SUMS"), "utf8")
      .trim()
      .split("\n")
      .map((l) => l.replace(/^[0-9a-f]{64} [ *]/, ""));
    const bytes = listed.reduce((n, p) => n + statSync(join(bundle, p)).size, 0);
    const r = await runCli(["bundle", "verify", bundle], { env: { AIRGAP_REQUIRE_SIGNATURE: undefined } });
    expect(r.code, r.stderr).toBe(0);
    expect(summaryOf(r.stderr, "verifying")).toMatch(new RegExp(`^  verifying: ${human(bytes)} in `));
  });
});
