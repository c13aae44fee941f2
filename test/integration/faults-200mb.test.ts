/**
 * The bar, measured: about 200 MB created and imported through the fault proxy with its
 * default schedule (cut downloads and uploads, 503 and 429 now and then). Both runs complete, every
 * digest is right, and each reports how many retries it made.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { defaultSchedule, FaultProxy } from "../helpers/fault-proxy.js";
import {
  blobExists,
  closeFixtures,
  listBlobs,
  manifestDigest,
  type PushedImage,
  plainTarget,
  pushImage,
  uniqueRepo,
} from "../helpers/fixtures.js";

const registry = plainTarget();
const ns = uniqueRepo("f200");
const MiB = 1024 * 1024;
let work: string;
let big: PushedImage;
const proxies: FaultProxy[] = [];

interface Stats {
  retries: number;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-f200-"));
  // 10 layers of 20 MiB: random bytes, so nothing compresses the 200 MB away
  big = await pushImage(registry, `${ns}/big`, "1", {
    layerSizes: Array.from({ length: 10 }, () => 20 * MiB),
  });
}, 300_000);

afterAll(async () => {
  for (const p of proxies) await p.close();
  await closeFixtures();
  rmSync(work, { recursive: true, force: true });
});

describe("200 MB through the fault proxy's default schedule", () => {
  it("create and import complete, every digest right, retries reported", async () => {
    const pullProxy = await FaultProxy.start({ upstream: registry.host, schedule: defaultSchedule() });
    proxies.push(pullProxy);
    const bundle = join(work, "bundle");
    const cfg = join(work, "f200.yaml");
    writeFileSync(
      cfg,
      `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: f200, version: 1.0.0 }
platforms: [linux/amd64]
registries: [{ host: "${pullProxy.host}", plainHTTP: true }]
images: [{ ref: "${pullProxy.host}/${ns}/big:1" }]
`,
    );
    const created = await runCli([
      "bundle",
      "create",
      "-c",
      cfg,
      "-o",
      bundle,
      "--cache",
      join(work, "cache"),
      "--json",
    ]);
    expect(created.code, created.stderr).toBe(0);
    const createStats = (JSON.parse(created.stdout) as { stats: Stats & { resumes: number } }).stats;
    expect(pullProxy.injected).toBeGreaterThan(0);
    expect(createStats.retries).toBe(pullProxy.injected);
    const files = readdirSync(join(bundle, "blobs", "sha256"));
    for (const l of big.layers) expect(files).toContain(l.digest.slice(7));
    const verified = await runCli(["bundle", "verify", bundle]);
    expect(verified.code, verified.stderr).toBe(0);

    const pushProxy = await FaultProxy.start({ upstream: registry.host, schedule: defaultSchedule() });
    proxies.push(pushProxy);
    const prefix = uniqueRepo("f200-in");
    const imported = await runCli([
      "bundle",
      "import",
      bundle,
      "--registry",
      `${pushProxy.host}/${prefix}`,
      "--plain-http",
      "--out",
      join(work, "out"),
      "--json",
    ]);
    expect(imported.code, imported.stderr).toBe(0);
    const importStats = (JSON.parse(imported.stdout) as { stats: Stats & { uploadsRestarted: number } })
      .stats;
    expect(pushProxy.counts.faults["cut-upload"]).toBeGreaterThan(0);
    expect(importStats.uploadsRestarted).toBeGreaterThanOrEqual(pushProxy.counts.faults["cut-upload"] ?? 0);
    // (a 503 that meets the clean-up DELETE of a cut upload needs no retry)
    expect(importStats.retries).toBeGreaterThanOrEqual(importStats.uploadsRestarted);
    expect(importStats.retries).toBeLessThanOrEqual(pushProxy.injected);

    // the source is named through the pull proxy's host; the target under the push proxy's prefix
    const repo = `${prefix}/${ns}/big`;
    expect(await manifestDigest(registry, repo, "1")).toBe(big.digest);
    const blobs = await listBlobs(registry, repo, "1");
    expect(blobs).toEqual([big.config.digest, ...big.layers.map((l) => l.digest)].sort());
    for (const b of blobs) expect(await blobExists(registry, repo, b)).toBe(true);
    process.stderr.write(
      `200 MB through the default fault schedule: create ${createStats.retries} retries (${pullProxy.injected} faults: ${JSON.stringify(pullProxy.counts.faults)}), import ${importStats.retries} retries, ${importStats.uploadsRestarted} uploads restarted (${pushProxy.injected} faults: ${JSON.stringify(pushProxy.counts.faults)})\n`,
    );
  }, 600_000);
});
