import { existsSync, mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import {
  closeFixtures,
  getManifest,
  listTags,
  type PushedImage,
  plainTarget,
  pushImage,
  tlsTarget,
  uniqueRepo,
} from "../helpers/fixtures.js";
import {
  bundleBlobHexes,
  catalog,
  closeAgents,
  copyTree,
  createBundle,
  flipByte,
  generateKey,
  isolatedEnv,
  writeBundleConfig,
} from "./import-helpers.js";

// Import of a directory bundle verifies what it pushes while it pushes: a tampered layer is named
// (exit 3) and leaves no manifest or tag of its image behind; a blob the target holds is never read.
const source = plainTarget();
const tls = tlsTarget();
const ns = uniqueRepo("onepass");
let work: string;
let keys: { key: string; pub: string };
let env: NodeJS.ProcessEnv;
let small: string;
let full: string;
let single: PushedImage;
let other: PushedImage;
let layerHex: string;

const src = (repo: string, tag: string) => `${source.host}/${ns}/${repo}:${tag}`;

function importArgs(input: string, prefix: string, extra: string[] = []): string[] {
  return [
    "bundle",
    "import",
    input,
    "--registry",
    `${tls.host}/${prefix}`,
    "--key",
    keys.pub,
    "--ca-file",
    needEnv("AIRGAP_TEST_CA"),
    "--out",
    join(work, `out-${prefix}`),
    ...extra,
  ];
}

/** Does the TLS registry's storage hold this manifest in this repository (as a revision)? */
function storedManifest(repo: string, digest: string): boolean {
  const storage = needEnv("AIRGAP_TEST_REGISTRY_TLS_STORAGE");
  return existsSync(
    join(storage, "docker/registry/v2/repositories", repo, "_manifests/revisions/sha256", digest.slice(7)),
  );
}

interface ImportJson {
  stats: { bundleBlobsRead: number; bundleBytesRead: number; blobsUploaded: number; blobsSkipped: number };
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-import-onepass-"));
  env = isolatedEnv(work);
  single = await pushImage(source, `${ns}/single`, "1.0", { layerSizes: [600_000, 300_000, 20_000] });
  layerHex = single.layers[1]!.digest.slice(7);
  other = await pushImage(source, `${ns}/other`, "2", { layerSizes: [70_000] });
  keys = await generateKey(work, "cosign");
  const cache = join(work, "cache");
  small = join(work, "small");
  full = join(work, "full");
  await createBundle(writeBundleConfig(work, "small", [src("single", "1.0")]), small, {
    key: keys.key,
    cache,
  });
  await createBundle(writeBundleConfig(work, "full", [src("single", "1.0"), src("other", "2")]), full, {
    key: keys.key,
    cache,
  });
});

afterAll(async () => {
  await closeFixtures();
  await closeAgents();
});

describe("bundle import of a directory in one pass", () => {
  for (const mode of [[], ["--verify-all"]]) {
    const label = mode.length ? "with --verify-all" : "by default";
    it(`${label}: a tampered layer exits 3 naming it, and leaves no tag and no manifest of its image`, async () => {
      const prefix = uniqueRepo("tamper");
      const bad = join(work, `tampered-${prefix}`);
      copyTree(full, bad);
      flipByte(join(bad, "blobs", "sha256", layerHex));
      const r = await runCli(importArgs(bad, prefix, mode), { env });
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(new RegExp(`FAIL \\w+ blobs/sha256/${layerHex}`));
      const repos = (await catalog()).filter((x) => x.startsWith(`${prefix}/`));
      for (const repo of repos) expect(await listTags(tls, repo), repo).toEqual([]);
      for (const [repo, img] of [
        ["single", single],
        ["other", other],
      ] as const) {
        expect(storedManifest(`${prefix}/${ns}/${repo}`, img.digest), repo).toBe(false);
      }
      // The tampered bytes never landed under their digest.
      expect(storedManifest(`${prefix}/${ns}/single`, `sha256:${layerHex}`)).toBe(false);
      if (mode.length) expect(repos, "the full pass pushes nothing").toEqual([]);
    });
  }

  it("reads each blob once, and a re-import reads no blob of the bundle: the target holds them", async () => {
    const prefix = uniqueRepo("reread");
    const first = await runCli(importArgs(small, prefix, ["--json"]), { env });
    expect(first.code, first.stderr).toBe(0);
    const smallHexes = bundleBlobHexes(small);
    const smallBytes = smallHexes.reduce((n, h) => n + statSync(join(small, "blobs/sha256", h)).size, 0);
    const a = JSON.parse(first.stdout) as ImportJson;
    expect(a.stats.bundleBlobsRead).toBe(smallHexes.length);
    expect(a.stats.bundleBytesRead).toBe(smallBytes);

    // The full bundle into the same target: only what the first import did not bring is read.
    const second = await runCli(importArgs(full, prefix, ["--json"]), { env });
    expect(second.code, second.stderr).toBe(0);
    const newHexes = bundleBlobHexes(full).filter((h) => !smallHexes.includes(h));
    const b = JSON.parse(second.stdout) as ImportJson;
    expect(b.stats.bundleBlobsRead).toBe(newHexes.length);
    expect(b.stats.bundleBytesRead).toBe(
      newHexes.reduce((n, h) => n + statSync(join(full, "blobs/sha256", h)).size, 0),
    );

    const again = await runCli(importArgs(full, prefix, ["--json"]), { env });
    expect(again.code, again.stderr).toBe(0);
    const c = JSON.parse(again.stdout) as ImportJson;
    expect(c.stats.bundleBlobsRead).toBe(0);
    expect(c.stats.bundleBytesRead).toBe(0);
    expect(c.stats.blobsUploaded).toBe(0);
    expect((await getManifest(tls, `${prefix}/${ns}/single`, "1.0")).digest).toBe(single.digest);
    expect((await getManifest(tls, `${prefix}/${ns}/other`, "2")).digest).toBe(other.digest);
  });
});
