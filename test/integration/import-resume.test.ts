import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import {
  closeFixtures,
  getManifest,
  listStoredBlobs,
  listTags,
  type PushedImage,
  plainTarget,
  pushImage,
  type StoredBlob,
  tlsTarget,
  uniqueRepo,
} from "../helpers/fixtures.js";
import {
  bundleBlobHexes,
  closeAgents,
  createBundle,
  generateKey,
  isolatedEnv,
  writeBundleConfig,
} from "./import-helpers.js";

const source = plainTarget();
const tls = tlsTarget();
const ns = uniqueRepo("resume");
const prefix = uniqueRepo("res");
let work: string;
let dir: string;
let big: PushedImage;
let keys: { key: string; pub: string };
let env: NodeJS.ProcessEnv;

const args = (extra: string[] = []) => [
  "bundle",
  "import",
  dir,
  "--registry",
  `${tls.host}/${prefix}`,
  "--key",
  keys.pub,
  "--ca-file",
  needEnv("AIRGAP_TEST_CA"),
  "--concurrency",
  "1",
  "--out",
  join(work, "out"),
  ...extra,
];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-import-resume-"));
  env = isolatedEnv(work);
  big = await pushImage(source, `${ns}/big`, "1", {
    layerSizes: [40_000_000, 40_000_000, 40_000_000, 40_000_000],
  });
  keys = await generateKey(work, "cosign");
  dir = join(work, "bundle");
  const cache = join(work, "cache");
  await createBundle(writeBundleConfig(work, "resume", [`${source.host}/${ns}/big:1`]), dir, {
    key: keys.key,
    cache,
  });
  rmSync(cache, { recursive: true, force: true });
}, 600_000);

afterAll(async () => {
  await closeFixtures();
  await closeAgents();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("bundle import resumes", () => {
  it("after the process is killed mid-import, a rerun completes without uploading the finished layers again", async () => {
    const storage = needEnv("AIRGAP_TEST_REGISTRY_TLS_STORAGE");
    const layerDigests = big.layers.map((l) => l.digest);
    const landedNow = async () => {
      const stored = await listStoredBlobs(storage);
      return layerDigests.map((d) => stored.get(d)).filter((b): b is StoredBlob => b !== undefined);
    };
    expect(await landedNow()).toEqual([]);

    let child: ChildProcess | undefined;
    const first = runCli(args(), {
      env,
      killAfterMs: 300_000,
      onSpawn: (c) => {
        child = c;
      },
    });
    let finished = false;
    void first.then(() => {
      finished = true;
    });
    let landed: StoredBlob[] = [];
    while (!finished) {
      landed = await landedNow();
      if (landed.length >= 1 && landed.length < layerDigests.length) {
        child?.kill("SIGKILL");
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    const r1 = await first;
    expect(finished && r1.code === 0 ? `first run ended on its own: ${r1.stderr}` : "killed").toBe("killed");
    expect(landed.length).toBeGreaterThanOrEqual(1);
    expect(landed.length).toBeLessThan(layerDigests.length);
    // no tag points at half-imported content
    expect(await listTags(tls, `${prefix}/${ns}/big`)).toEqual([]);
    const landedAfterKill = await landedNow();

    const r2 = await runCli(args(["--json"]), { env });
    expect(r2.code, r2.stderr).toBe(0);
    const result = JSON.parse(r2.stdout) as { stats: { blobsUploaded: number; bytesUploaded: number } };
    expect((await getManifest(tls, `${prefix}/${ns}/big`, "1")).digest).toBe(big.digest);

    // the layers that had landed were not uploaded again: same file, same mtime; and the bytes say so
    const after = await listStoredBlobs(storage);
    for (const b of landedAfterKill) {
      const a = after.get(b.digest)!;
      expect(a.ino, b.digest).toBe(b.ino);
      expect(a.mtimeMs, b.digest).toBe(b.mtimeMs);
    }
    const total = bundleBlobHexes(dir).reduce(
      (n, hex) => n + statSync(join(dir, "blobs", "sha256", hex)).size,
      0,
    );
    const landedBytes = landedAfterKill.reduce((n, b) => n + b.size, 0);
    expect(result.stats.bytesUploaded).toBeLessThanOrEqual(total - landedBytes);
    expect(result.stats.blobsUploaded).toBeLessThanOrEqual(
      bundleBlobHexes(dir).length - landedAfterKill.length,
    );
    for (const d of layerDigests) expect(after.has(d), d).toBe(true);
  });
});
