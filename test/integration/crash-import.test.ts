/**
 * `bundle import` stopped at many points (SIGKILL at fractions of a clean run's duration and after some
 * blobs were pushed; SIGINT and SIGTERM), then run again: the rerun completes and every pushed manifest
 * has the digest of a clean import; an interrupt stops quickly, says how to resume, and leaves no
 * temporary files.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import {
  blobExists,
  closeFixtures,
  listTags,
  manifestDigest,
  type PushedImage,
  plainTarget,
  pushImage,
  uniqueRepo,
} from "../helpers/fixtures.js";
import { lastLine, partialFiles, runAndStop } from "./crash-helpers.js";
import { createBundle, writeBundleConfig } from "./import-helpers.js";

const registry = plainTarget();
const ns = uniqueRepo("crash-import");
let work: string;
let bundle: string;
/** The same bundle as one tar file: import streams it in one pass. */
let tarBundle: string;
let images: { name: string; image: PushedImage }[];
let baselineMs: number;

const importArgs = (prefix: string, out: string, input = bundle) => [
  "bundle",
  "import",
  input,
  "--registry",
  `${registry.host}/${prefix}`,
  "--plain-http",
  "--concurrency",
  "2",
  "--out",
  out,
];

let scenario = 0;
function fresh(): { prefix: string; dir: string; out: string } {
  const dir = join(work, `run-${++scenario}`);
  mkdirSync(dir);
  return { prefix: uniqueRepo("ci"), dir, out: join(dir, "airgap-out") };
}

/** Every image's tag in the target points at the digest it has at the source; no temp files. */
async function expectImported(run: { prefix: string; dir: string }): Promise<void> {
  for (const { name, image } of images) {
    expect(await manifestDigest(registry, `${run.prefix}/${ns}/${name}`, "1"), name).toBe(image.digest);
  }
  expect(partialFiles(run.dir)).toEqual([]);
}

async function rerun(run: { prefix: string; dir: string; out: string }, input = bundle): Promise<void> {
  const r = await runCli(importArgs(run.prefix, run.out, input));
  expect(r.code, r.stderr).toBe(0);
  await expectImported(run);
}

/** Layer blobs of the big image that already reached the target repository. */
async function landed(prefix: string): Promise<number> {
  const repo = `${prefix}/${ns}/big`;
  const found = await Promise.all(images[0]!.image.layers.map((l) => blobExists(registry, repo, l.digest)));
  return found.filter(Boolean).length;
}

/**
 * A stop condition for runAndStop: at least `n` layers of the big image are in the target. The
 * registry is asked in the background, one question at a time, so the 5 ms poll never waits on it.
 */
function landedAtLeast(run: { prefix: string }, n: number): () => boolean {
  let count = 0;
  let asking = false;
  return () => {
    if (!asking) {
      asking = true;
      void landed(run.prefix)
        .then((c) => {
          count = c;
        })
        .finally(() => {
          asking = false;
        });
    }
    return count >= n;
  };
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-crash-import-"));
  const big = await pushImage(registry, `${ns}/big`, "1", {
    layerSizes: [8_000_000, 8_000_000, 8_000_000, 8_000_000, 8_000_000],
  });
  const small = await pushImage(registry, `${ns}/small`, "1", {
    layerSizes: [6_000_000, 4_000_000],
    sharedLayers: [big.layers[0]!],
  });
  images = [
    { name: "big", image: big },
    { name: "small", image: small },
  ];
  const config = writeBundleConfig(work, "crash", [
    `${registry.host}/${ns}/big:1`,
    `${registry.host}/${ns}/small:1`,
  ]);
  bundle = join(work, "bundle");
  await createBundle(config, bundle, { cache: join(work, "cache") });
  tarBundle = join(work, "bundle.tar");
  await createBundle(config, tarBundle, { cache: join(work, "cache") });
  rmSync(join(work, "cache"), { recursive: true, force: true });
  const base = fresh();
  const start = Date.now();
  const r = await runCli(importArgs(base.prefix, base.out));
  baselineMs = Date.now() - start;
  if (r.code !== 0) throw new Error(`baseline import failed: ${r.stderr}`);
  await expectImported(base);
}, 180_000);

afterAll(async () => {
  await closeFixtures();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("bundle import killed with SIGKILL, then run again", () => {
  it.each([0.1, 0.3, 0.6, 0.9])("at %s of a clean run's duration", async (fraction) => {
    const run = fresh();
    const stop = await runAndStop(
      importArgs(run.prefix, run.out),
      "SIGKILL",
      (ms) => ms >= fraction * baselineMs,
    );
    if (fraction <= 0.6) expect(stop.stopped, `killed at ${stop.atMs} ms of ${baselineMs}`).toBe(true);
    await rerun(run);
  });

  it("after some blobs were pushed: no tag points at half-imported content, and a rerun completes", async () => {
    const run = fresh();
    const stop = await runAndStop(importArgs(run.prefix, run.out), "SIGKILL", landedAtLeast(run, 2));
    expect(stop.stopped).toBe(true);
    expect(await listTags(registry, `${run.prefix}/${ns}/big`)).toEqual([]);
    // what a kill while the cluster configuration is written leaves: the rerun removes it
    mkdirSync(run.out, { recursive: true });
    writeFileSync(join(run.out, "images.json.partial-0badc0de"), "[");
    await rerun(run);
  });

  it("while streaming a tar bundle, after some blobs were pushed", async () => {
    const run = fresh();
    const stop = await runAndStop(
      importArgs(run.prefix, run.out, tarBundle),
      "SIGKILL",
      landedAtLeast(run, 2),
    );
    expect(stop.stopped).toBe(true);
    expect(await listTags(registry, `${run.prefix}/${ns}/big`)).toEqual([]);
    await rerun(run, tarBundle);
  });
});

describe("bundle import stopped with SIGINT or SIGTERM", () => {
  it.each([
    ["SIGINT", 130, "folder"],
    ["SIGTERM", 143, "folder"],
    ["SIGTERM", 143, "tar"],
  ] as const)(
    "%s while pushing: exits %s within 2 s with a resume hint, and resumes (%s bundle)",
    async (signal, code, kind) => {
      const input = kind === "tar" ? tarBundle : bundle;
      const run = fresh();
      const stop = await runAndStop(importArgs(run.prefix, run.out, input), signal, landedAtLeast(run, 1));
      expect(stop.stopped).toBe(true);
      expect(stop.result.code, stop.result.stderr).toBe(code);
      expect(stop.exitMs).toBeLessThan(2000);
      expect(lastLine(stop.result.stderr)).toMatch(
        new RegExp(`^airgap: interrupted by ${signal}; rerun the same command to resume`),
      );
      expect(partialFiles(run.dir)).toEqual([]);
      await rerun(run, input);
    },
  );
});
