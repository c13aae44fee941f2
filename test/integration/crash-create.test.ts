/**
 * `bundle create` stopped at many points (SIGKILL at fractions of a clean run's duration and at chosen
 * events; SIGINT and SIGTERM), then run again: the rerun completes with the same bundle, the cache
 * never holds a blob whose bytes differ from its name, and an interrupt stops quickly, cleans up and
 * says how to resume.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { closeFixtures, type PushedImage, plainTarget, pushImage, uniqueRepo } from "../helpers/fixtures.js";
import { auditCache, cachedBlobs, lastLine, partialFiles, runAndStop } from "./crash-helpers.js";
import { tarEntry, writeBundleConfig } from "./import-helpers.js";

const source = plainTarget();
const ns = uniqueRepo("crash-create");
let work: string;
let config: string;
let images: PushedImage[];
let expected: { index: unknown; items: unknown };
let baselineMs: number;

const createArgs = (out: string, cache: string, extra: string[] = []) => [
  "bundle",
  "create",
  "-c",
  config,
  "-o",
  out,
  "--cache",
  cache,
  "--concurrency",
  "2",
  ...extra,
];

/** index.json and the items of bundle.json of a tar bundle: what must not depend on interruptions. */
function contentOf(tar: string): { index: unknown; items: unknown } {
  const bytes = readFileSync(tar);
  const file = (name: string) => {
    const { offset, size } = tarEntry(tar, name);
    return JSON.parse(bytes.subarray(offset, offset + size).toString("utf8")) as Record<string, unknown>;
  };
  return { index: file("index.json"), items: file("bundle.json").items };
}

let scenario = 0;
function fresh(): { dir: string; out: string; cache: string } {
  const dir = join(work, `run-${++scenario}`);
  mkdirSync(dir);
  return { dir, out: join(dir, "bundle.tar"), cache: join(dir, "cache") };
}

function expectCacheSound(cache: string, when: string): string[] {
  const audit = auditCache(cache);
  expect(audit.wrong, `cache blobs whose bytes differ from their name ${when}`).toEqual([]);
  return audit.partial;
}

/** Rerun the same command; it must complete with the bundle of the clean run and leave no temp files. */
async function rerunAndCompare(run: { dir: string; out: string; cache: string }, leftInCache: string[]) {
  if (existsSync(run.out)) {
    // the run got as far as renaming its finished bundle into place: that bundle is complete, and a
    // rerun refuses to replace it without --force
    expect(contentOf(run.out)).toEqual(expected);
    const again = await runCli(createArgs(run.out, run.cache));
    expect(again.code, again.stderr).toBe(2);
    expect(lastLine(again.stderr)).toMatch(/already exists.*--force/);
    expectCacheSound(run.cache, "after the run");
    return;
  }
  const r = await runCli(createArgs(run.out, run.cache));
  expect(r.code, r.stderr).toBe(0);
  expect(contentOf(run.out)).toEqual(expected);
  // a temp file of the stopped run may stay in the cache (it is ignored, and removed once stale);
  // the rerun leaves none of its own, and none anywhere in the output folder
  expect(expectCacheSound(run.cache, "after the rerun").every((p) => leftInCache.includes(p))).toBe(true);
  expect(partialFiles(run.dir).filter((p) => !p.startsWith(run.cache))).toEqual([]);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-crash-create-"));
  const big = await pushImage(source, `${ns}/big`, "1", {
    layerSizes: [8_000_000, 8_000_000, 8_000_000, 8_000_000, 8_000_000],
  });
  const small = await pushImage(source, `${ns}/small`, "1", {
    layerSizes: [6_000_000, 4_000_000],
    sharedLayers: [big.layers[0]!],
  });
  images = [big, small];
  config = writeBundleConfig(work, "crash", [`${source.host}/${ns}/big:1`, `${source.host}/${ns}/small:1`]);
  const base = fresh();
  const start = Date.now();
  const r = await runCli(createArgs(base.out, base.cache));
  baselineMs = Date.now() - start;
  if (r.code !== 0) throw new Error(`baseline create failed: ${r.stderr}`);
  expected = contentOf(base.out);
}, 180_000);

afterAll(async () => {
  await closeFixtures();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("bundle create killed with SIGKILL, then run again", () => {
  it.each([0.1, 0.3, 0.6, 0.9])("at %s of a clean run's duration", async (fraction) => {
    const run = fresh();
    const stop = await runAndStop(
      createArgs(run.out, run.cache),
      "SIGKILL",
      (ms) => ms >= fraction * baselineMs,
    );
    // late kills may miss a run that happens to be faster than the clean one; early ones may not
    if (fraction <= 0.6) expect(stop.stopped, `killed at ${stop.atMs} ms of ${baselineMs}`).toBe(true);
    const left = expectCacheSound(run.cache, "after the kill");
    await rerunAndCompare(run, left);
  });

  it("after the first blob landed in the cache", async () => {
    const run = fresh();
    const layers = new Set(images.flatMap((i) => i.layers.map((l) => l.digest.slice(7))));
    const stop = await runAndStop(createArgs(run.out, run.cache), "SIGKILL", () =>
      cachedBlobs(run.cache).some((hex) => layers.has(hex)),
    );
    expect(stop.stopped).toBe(true);
    const left = expectCacheSound(run.cache, "after the kill");
    expect(cachedBlobs(run.cache).filter((hex) => layers.has(hex)).length).toBeLessThan(layers.size);
    // a temp file that no writer touched for long is a killed run's: the next run removes it; a
    // recent one may belong to a run still writing, and stays
    const blobs = join(run.cache, "blobs", "sha256");
    const stale = join(blobs, `${"0".repeat(64)}.partial-000000000000`);
    const recent = join(blobs, `${"1".repeat(64)}.partial-000000000000`);
    writeFileSync(stale, "left by a run killed long ago");
    writeFileSync(recent, "being written");
    const longAgo = new Date(Date.now() - 11 * 60 * 1000);
    utimesSync(stale, longAgo, longAgo);
    await rerunAndCompare(run, [...left, basename(recent)]);
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(recent)).toBe(true);
  });

  it("while the tar is being written", async () => {
    const run = fresh();
    const writing = () =>
      readdirSync(run.dir).some(
        (n) => n.startsWith("bundle.tar.partial-") && statSync(join(run.dir, n)).size > 1_000_000,
      );
    const stop = await runAndStop(createArgs(run.out, run.cache), "SIGKILL", () => writing());
    expect(stop.stopped).toBe(true);
    // the killed writer's temp file is there; nothing looks like a finished bundle
    expect(readdirSync(run.dir)).not.toContain("bundle.tar");
    const left = expectCacheSound(run.cache, "after the kill");
    await rerunAndCompare(run, left);
  });
});

describe("bundle create stopped with SIGINT or SIGTERM", () => {
  const resumeHint = /^airgap: interrupted by SIG(INT|TERM); rerun the same command to resume/;

  it.each([
    ["SIGTERM", 143],
    ["SIGINT", 130],
  ] as const)(
    "%s while pulling: exits %s within 2 s, with no temp files, and resumes",
    async (signal, code) => {
      const run = fresh();
      const stop = await runAndStop(
        createArgs(run.out, run.cache),
        signal,
        () => cachedBlobs(run.cache).length >= 2,
      );
      expect(stop.stopped).toBe(true);
      expect(stop.result.code, stop.result.stderr).toBe(code);
      expect(stop.exitMs).toBeLessThan(2000);
      expect(lastLine(stop.result.stderr)).toMatch(resumeHint);
      expect(expectCacheSound(run.cache, "after the interrupt")).toEqual([]);
      expect(partialFiles(run.dir)).toEqual([]);
      await rerunAndCompare(run, []);
    },
  );

  it("a second SIGTERM 10 ms after the first (it ends the run at once): exit 143, no temp files, resumes", async () => {
    const run = fresh();
    const stop = await runAndStop(
      createArgs(run.out, run.cache),
      "SIGTERM",
      () => cachedBlobs(run.cache).length >= 2,
      {},
      2,
    );
    expect(stop.stopped).toBe(true);
    expect(stop.result.code, stop.result.stderr).toBe(143);
    expect(stop.exitMs).toBeLessThan(2000);
    expect(lastLine(stop.result.stderr)).toMatch(resumeHint);
    expect(expectCacheSound(run.cache, "after the interrupt")).toEqual([]);
    expect(partialFiles(run.dir)).toEqual([]);
    await rerunAndCompare(run, []);
  });

  it("SIGTERM while writing 1 MiB split parts: exits 143 within 2 s and removes every part", async () => {
    const run = fresh();
    const split = ["--split", "1M"];
    const stop = await runAndStop(createArgs(run.out, run.cache, split), "SIGTERM", () =>
      readdirSync(run.dir).some((n) => /^bundle\.tar\.part-0010\.partial-/.test(n)),
    );
    expect(stop.stopped).toBe(true);
    expect(stop.result.code, stop.result.stderr).toBe(143);
    expect(stop.exitMs).toBeLessThan(2000);
    expect(lastLine(stop.result.stderr)).toMatch(resumeHint);
    expect(partialFiles(run.dir)).toEqual([]);
    expect(readdirSync(run.dir).filter((n) => n.startsWith("bundle.tar"))).toEqual([]);
    expect(expectCacheSound(run.cache, "after the interrupt")).toEqual([]);

    const r = await runCli(createArgs(run.out, run.cache, split));
    expect(r.code, r.stderr).toBe(0);
    const manifest = JSON.parse(readFileSync(`${run.out}.parts.json`, "utf8")) as { parts: unknown[] };
    expect(manifest.parts.length).toBeGreaterThan(40);
    expect(partialFiles(run.dir)).toEqual([]);
  });
});
