/**
 * `bundle import` through a proxy that cuts blob uploads in the middle of their body and answers
 * some of them 503: from a directory or tar bundle each failed blob copy starts again (source read
 * again, new upload session) and the import completes with every digest right, saying how often it
 * retried; from a pipe, which cannot be read twice, it stops with a clear error.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { FaultProxy, type Schedule } from "../helpers/fault-proxy.js";
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
import { createBundle, writeBundleConfig } from "./import-helpers.js";

const registry = plainTarget();
const ns = uniqueRepo("upfaults");
const MiB = 1024 * 1024;
let work: string;
let app: PushedImage;
let tool: PushedImage;
const bundles = { dir: "", tar: "" };
const proxies: FaultProxy[] = [];

/** Every third upload cut halfway, every fifth answered 503: never the same blob twice in a row. */
const uploadFaults: Schedule = (r) => {
  if (r.upload === 0) return undefined;
  if (r.upload % 3 === 1) return { kind: "cut-upload", at: 0.5 };
  if (r.upload % 5 === 0) return { kind: "status", status: 503 };
  return undefined;
};

async function proxy(schedule: Schedule): Promise<FaultProxy> {
  const p = await FaultProxy.start({ upstream: registry.host, schedule });
  proxies.push(p);
  return p;
}

function importArgs(input: string, target: string, json = true): string[] {
  return [
    "bundle",
    "import",
    input,
    "--registry",
    target,
    "--plain-http",
    "--out",
    join(work, `out-${Math.random().toString(36).slice(2)}`),
    ...(json ? ["--json"] : []),
  ];
}

/** What a user checks afterwards: each image's digest under its tag, and every blob of it there. */
async function expectImported(prefix: string): Promise<void> {
  for (const [name, img] of [
    ["app", app],
    ["tool", tool],
  ] as const) {
    const repo = `${prefix}/${ns}/${name}`;
    expect(await manifestDigest(registry, repo, "1")).toBe(img.digest);
    const blobs = await listBlobs(registry, repo, "1");
    expect(blobs).toEqual([img.config.digest, ...img.layers.map((l) => l.digest)].sort());
    for (const b of blobs) expect(await blobExists(registry, repo, b), `${b} in ${repo}`).toBe(true);
  }
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-upfaults-"));
  app = await pushImage(registry, `${ns}/app`, "1", { layerSizes: [3 * MiB, 1 * MiB, 2 * MiB, 500_000] });
  tool = await pushImage(registry, `${ns}/tool`, "1", { layerSizes: [2 * MiB, 700_000] });
  const cfg = writeBundleConfig(work, "upfaults", [
    `${registry.host}/${ns}/app:1`,
    `${registry.host}/${ns}/tool:1`,
  ]);
  bundles.dir = join(work, "bundle");
  bundles.tar = join(work, "bundle.tar");
  await createBundle(cfg, bundles.dir, { cache: join(work, "cache") });
  await createBundle(cfg, bundles.tar, { cache: join(work, "cache") });
}, 120_000);

afterAll(async () => {
  for (const p of proxies) await p.close();
  await closeFixtures();
});

describe("bundle import through cut and refused uploads", () => {
  for (const kind of ["dir", "tar"] as const) {
    it(`from a ${kind} bundle: restarts each cut upload and completes, counting the retries`, async () => {
      const p = await proxy(uploadFaults);
      const prefix = uniqueRepo(`up-${kind}`);
      const r = await runCli(importArgs(bundles[kind], `${p.host}/${prefix}`));
      expect(r.code, r.stderr).toBe(0);
      const stats = (JSON.parse(r.stdout) as { stats: { retries: number; uploadsRestarted: number } }).stats;
      expect(p.counts.faults["cut-upload"]).toBeGreaterThanOrEqual(2);
      expect(p.counts.faults["status-503"]).toBeGreaterThanOrEqual(1);
      // every injected fault cost one blob copy a fresh start, and nothing else failed
      expect(stats.uploadsRestarted).toBe(p.injected);
      expect(stats.retries).toBeGreaterThanOrEqual(stats.uploadsRestarted);
      await expectImported(prefix);
    });
  }

  it("says how often it retried in its summary", async () => {
    const p = await proxy(uploadFaults);
    const r = await runCli(importArgs(bundles.tar, `${p.host}/${uniqueRepo("up-human")}`, false));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/\(\d+ retr(y|ies), \d+ uploads? restarted\)/);
  });

  it("from a pipe: stops at the cut upload and says to import from the file", async () => {
    const p = await proxy((r) => (r.upload === 1 ? { kind: "cut-upload", at: 0.5 } : undefined));
    const prefix = uniqueRepo("up-pipe");
    const r = await runCli(importArgs("-", `${p.host}/${prefix}`), { input: readFileSync(bundles.tar) });
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBe(3);
    expect(r.stderr).toContain("cannot be read again");
    expect(r.stderr).toContain("import from the bundle file or directory");
    expect(p.counts.faults["cut-upload"]).toBe(1);
    // nothing tagged: the roots go last
    expect(await manifestDigest(registry, `${prefix}/${ns}/app`, "1")).toBeUndefined();
    // the rerun from the file completes
    const again = await runCli(importArgs(bundles.tar, `${p.host}/${prefix}`));
    expect(again.code, again.stderr).toBe(0);
    await expectImported(prefix);
  });
});
