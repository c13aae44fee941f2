import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import {
  closeFixtures,
  cosignTag,
  getManifest,
  listStoredBlobs,
  listTags,
  type PushedArtifact,
  type PushedImage,
  type PushedIndex,
  plainTarget,
  pushArtifact,
  pushCosignSignature,
  pushImage,
  pushIndex,
  tlsTarget,
  uniqueRepo,
} from "../helpers/fixtures.js";
import {
  bundleBlobHexes,
  bundleRoots,
  catalog,
  closeAgents,
  createBundle,
  generateKey,
  isolatedEnv,
  writeBundleConfig,
} from "./import-helpers.js";

const source = plainTarget();
const tls = tlsTarget();
const ns = uniqueRepo("imp");
const prefix = uniqueRepo("team");
let work: string;
let keys: { key: string; pub: string };
let dir: string;
let single: PushedImage;
let multi: PushedIndex;
let docker: PushedImage;
let sig: PushedImage;
let referrer: PushedArtifact;
let roots: Map<string, { digest: string; mediaType: string; size: number }>;
let env: NodeJS.ProcessEnv;

const src = (repo: string, tag: string) => `${source.host}/${ns}/${repo}:${tag}`;
const tgtRepo = (repo: string) => `${prefix}/${ns}/${repo}`;

function importArgs(extra: string[] = [], registry = `${tls.host}/${prefix}`): string[] {
  return [
    "bundle",
    "import",
    dir,
    "--registry",
    registry,
    "--key",
    keys.pub,
    "--ca-file",
    needEnv("AIRGAP_TEST_CA"),
    ...extra,
  ];
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-import-"));
  env = isolatedEnv(work);
  single = await pushImage(source, `${ns}/single`, "1.0", { layerSizes: [300_000, 20_000] });
  sig = await pushCosignSignature(source, `${ns}/single`, single.digest);
  referrer = await pushArtifact(source, `${ns}/single`, {
    artifactType: "application/vnd.example.sbom.v1+json",
    files: [{ name: "sbom.json", content: '{"packages":[]}' }],
    subject: single,
  });
  multi = await pushIndex(source, `${ns}/multi`, "2", { layerSizes: [30_000] });
  docker = await pushImage(source, `${ns}/docker`, "v2s2", { layerSizes: [40_000], format: "docker" });
  keys = await generateKey(work, "cosign");
  const cfg = writeBundleConfig(work, "import", [
    src("single", "1.0"),
    src("multi", "2"),
    src("docker", "v2s2"),
  ]);
  dir = join(work, "bundle");
  await createBundle(cfg, dir, { key: keys.key, cache: join(work, "cache") });
  roots = bundleRoots(dir);
});

afterAll(async () => {
  await closeFixtures();
  await closeAgents();
});

describe("bundle import into the TLS registry with Basic auth and a prefix", () => {
  it("--dry-run lists every target and pushes nothing", async () => {
    const dryPrefix = uniqueRepo("dry");
    const r = await runCli(importArgs(["--dry-run", "--json"], `${tls.host}/${dryPrefix}`), { env });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as {
      dryRun: boolean;
      images: { source: string; target: string; digest: string; exists: boolean }[];
    };
    expect(out.dryRun).toBe(true);
    const bySource = new Map(out.images.map((i) => [i.source, i]));
    expect(bySource.get(src("single", "1.0"))?.target).toBe(`${tls.host}/${dryPrefix}/${ns}/single:1.0`);
    expect(bySource.get(src("docker", "v2s2"))?.digest).toBe(docker.digest);
    expect(bySource.get(src("multi", "2"))?.digest).toBe(roots.get(src("multi", "2"))?.digest);
    for (const i of out.images) expect(i.exists).toBe(false);
    expect((await catalog()).filter((r) => r.startsWith(`${dryPrefix}/`))).toEqual([]);
    const human = await runCli(importArgs(["--dry-run"], `${tls.host}/${dryPrefix}`), { env });
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain(`${tls.host}/${dryPrefix}/${ns}/docker:v2s2`);
    expect((await catalog()).filter((r) => r.startsWith(`${dryPrefix}/`))).toEqual([]);
  });

  it("pushes every root with its digest unchanged: OCI image, Docker v2s2, platform-filtered index", async () => {
    const out = join(work, "out");
    const r = await runCli(importArgs(["--out", out, "--json"]), { env });
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as {
      imported: boolean;
      images: { source: string; target: string; digest: string }[];
      stats: { blobsUploaded: number; bytesUploaded: number };
    };
    expect(result.imported).toBe(true);
    expect(result.stats.blobsUploaded).toBeGreaterThan(5);

    const cases: [string, string, string][] = [
      ["single", "1.0", single.digest],
      ["docker", "v2s2", docker.digest],
      ["multi", "2", roots.get(src("multi", "2"))!.digest],
    ];
    for (const [repo, tag, digest] of cases) {
      expect(roots.get(src(repo, tag))?.digest).toBe(digest);
      const got = await getManifest(tls, tgtRepo(repo), tag);
      expect(got.digest, `${repo}:${tag}`).toBe(digest);
      // byte for byte what the bundle holds
      expect(got.bytes.equals(readFileSync(join(dir, "blobs", "sha256", digest.slice(7))))).toBe(true);
    }
    expect((await getManifest(tls, tgtRepo("docker"), "v2s2")).mediaType).toBe(
      "application/vnd.docker.distribution.manifest.v2+json",
    );
    // the filtered index names only amd64, and that child is in the target; arm64 is not
    const filtered = JSON.parse((await getManifest(tls, tgtRepo("multi"), "2")).bytes.toString("utf8")) as {
      manifests: { digest: string; platform: { architecture: string } }[];
    };
    expect(filtered.manifests.map((m) => m.platform.architecture)).toEqual(["amd64"]);
    const amd = multi.children.find((c) => c.platform.architecture === "amd64")!;
    expect((await getManifest(tls, tgtRepo("multi"), amd.digest)).bytes.equals(amd.manifestBytes)).toBe(true);
    expect(multi.digest).not.toBe(roots.get(src("multi", "2"))!.digest);
  });

  it("the cosign .sig tag and the referrer came along (referrers tag schema lists it)", async () => {
    const sigTag = cosignTag(single.digest);
    const tags = await listTags(tls, tgtRepo("single"));
    expect(tags).toContain(sigTag);
    expect((await getManifest(tls, tgtRepo("single"), sigTag)).digest).toBe(sig.digest);
    const art = await getManifest(tls, tgtRepo("single"), referrer.digest);
    expect(art.digest).toBe(referrer.digest);
    const schemaTag = single.digest.replace(":", "-");
    expect(tags).toContain(schemaTag);
    const index = JSON.parse(
      (await getManifest(tls, tgtRepo("single"), schemaTag)).bytes.toString("utf8"),
    ) as {
      manifests: { digest: string; artifactType?: string }[];
    };
    const entry = index.manifests.find((m) => m.digest === referrer.digest);
    expect(entry?.artifactType).toBe("application/vnd.example.sbom.v1+json");
  });

  it("--out: images.json, hosts.toml, registries.conf and Helm values name every target by digest", () => {
    const out = join(work, "out");
    const images = JSON.parse(readFileSync(join(out, "images.json"), "utf8")) as {
      source: string;
      target: string;
      digest: string;
      targetPinned: string;
    }[];
    const bySource = new Map(images.map((i) => [i.source, i]));
    for (const [repo, tag] of [
      ["single", "1.0"],
      ["docker", "v2s2"],
      ["multi", "2"],
    ] as const) {
      const digest = roots.get(src(repo, tag))!.digest;
      expect(bySource.get(src(repo, tag))).toEqual({
        source: src(repo, tag),
        target: `${tls.host}/${tgtRepo(repo)}:${tag}`,
        digest,
        targetPinned: `${tls.host}/${tgtRepo(repo)}@${digest}`,
      });
    }
    // signatures are carried, but not listed as images a cluster runs
    expect(images.some((i) => i.source.includes(".sig"))).toBe(false);

    const hosts = readFileSync(join(out, "certs.d", source.host, "hosts.toml"), "utf8");
    expect(hosts).toContain(`server = "https://${source.host}"`);
    expect(hosts).toContain(`[host."https://${tls.host}/v2/${prefix}"]`);
    expect(hosts).toMatch(/capabilities = \["pull", "resolve"\]/);
    expect(hosts).toMatch(/override_path = true/);
    expect(hosts).toContain(`ca = "${needEnv("AIRGAP_TEST_CA")}"`);
    expect(hosts).not.toMatch(/skip_verify/);

    const conf = readFileSync(join(out, "registries.conf"), "utf8");
    for (const repo of ["single", "docker", "multi"]) {
      expect(conf).toContain(
        `[[registry]]\nprefix = "${source.host}/${ns}/${repo}"\nlocation = "${tls.host}/${tgtRepo(repo)}"`,
      );
    }
    expect(conf).not.toMatch(/insecure = true/);

    const values = parseYaml(readFileSync(join(out, "values-airgap.yaml"), "utf8")) as {
      global: { imageRegistry: string };
      images: Record<string, { image: string; digest: string; repository: string; tag?: string }>;
    };
    expect(values.global.imageRegistry).toBe(tls.host);
    for (const [repo, tag] of [
      ["single", "1.0"],
      ["docker", "v2s2"],
      ["multi", "2"],
    ] as const) {
      const digest = roots.get(src(repo, tag))!.digest;
      expect(values.images[src(repo, tag)]).toMatchObject({
        image: `${tls.host}/${tgtRepo(repo)}@${digest}`,
        repository: tgtRepo(repo),
        tag,
        digest,
      });
    }
  });

  it("no registry password or credential anywhere in --out or the output", async () => {
    const out = join(work, "out-secrets");
    const r = await runCli(importArgs(["--out", out]), { env });
    expect(r.code, r.stderr).toBe(0);
    const password = needEnv("AIRGAP_TEST_REGISTRY_PASSWORD");
    const basic = Buffer.from(`${needEnv("AIRGAP_TEST_REGISTRY_USER")}:${password}`).toString("base64");
    const files = readdirSync(out, { recursive: true, encoding: "utf8" })
      .map((f) => join(out, f))
      .filter((f) => statSync(f).isFile());
    expect(files.length).toBeGreaterThanOrEqual(4);
    for (const text of [r.stdout, r.stderr, ...files.map((f) => readFileSync(f, "utf8"))]) {
      expect(text).not.toContain(password);
      expect(text).not.toContain(basic);
    }
  });

  it("a re-import uploads nothing: stats say 0 and no blob of the bundle is written again", async () => {
    const storage = needEnv("AIRGAP_TEST_REGISTRY_TLS_STORAGE");
    const before = await listStoredBlobs(storage);
    const hexes = bundleBlobHexes(dir);
    for (const hex of hexes) expect(before.has(`sha256:${hex}`), hex).toBe(true);
    const marker = Date.now();
    const r = await runCli(importArgs(["--out", join(work, "out-again"), "--json"]), { env });
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as {
      stats: { blobsUploaded: number; bytesUploaded: number; blobsSkipped: number };
    };
    expect(result.stats.blobsUploaded).toBe(0);
    expect(result.stats.bytesUploaded).toBe(0);
    const after = await listStoredBlobs(storage);
    for (const hex of hexes) {
      const b = before.get(`sha256:${hex}`)!;
      const a = after.get(`sha256:${hex}`)!;
      expect(a.ino, hex).toBe(b.ino);
      expect(a.mtimeMs, hex).toBe(b.mtimeMs);
      expect(a.mtimeMs).toBeLessThan(marker);
    }
    expect((await getManifest(tls, tgtRepo("single"), "1.0")).digest).toBe(single.digest);
  });
});
