/**
 * `bundle import` into registries that behave like Harbor, Nexus, Artifactory, GitLab, Quay, ECR,
 * ACR, Gitea and Zot (and a registry refusing manifests over 4 MB, and a token service with one
 * scope per request): the real plain registry behind the quirk-emulating proxy. One bundle holds an
 * OCI image, a Docker v2s2 image, a multi-arch index, a cosign signature, a referrer artifact, a
 * CINC profile and a Helm chart. Through each profile it lands digest-identical (read back from the
 * real registry, not through the proxy), or the import stops before any push with every problem
 * and its fix (and the registry holds nothing of it); a re-import uploads nothing.
 */
import { createReadStream, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import {
  closeFixtures,
  getManifest,
  MT,
  plainTarget,
  pushArtifact,
  pushCosignSignature,
  pushImage,
  pushIndex,
  uniqueRepo,
} from "../helpers/fixtures.js";
import {
  ARTIFACTORY_PATH_PREFIX,
  type ProfileName,
  profile,
  type Quirks,
  RegistryQuirksProxy,
} from "../helpers/registry-quirks-proxy.js";
import { bundleRoots, createBundle, generateKey, isolatedEnv, PASSWORD } from "./import-helpers.js";

const upstream = plainTarget();
const ns = uniqueRepo("quirks");
const SBOM = "application/vnd.example.sbom.v1+json";
const PROFILE_TYPE = "application/vnd.cinc.profile.v1+tar+gzip";
let work: string;
let dir: string;
let tarBundle: string;
let keys: { key: string; pub: string };
let roots: Map<string, { digest: string; mediaType: string; size: number }>;
const proxies: RegistryQuirksProxy[] = [];
const agent = new Agent();

interface ImportJson {
  imported: boolean;
  stats: { blobsUploaded: number; bytesUploaded: number; blobsMounted: number; manifestsPushed: number };
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-import-quirks-"));
  keys = await generateKey(work, "cosign");
  const single = await pushImage(upstream, `${ns}/single`, "1.0", { layerSizes: [120_000, 3_000] });
  await pushCosignSignature(upstream, `${ns}/single`, single.digest);
  await pushArtifact(upstream, `${ns}/single`, {
    artifactType: SBOM,
    files: [{ name: "sbom.json", content: '{"packages":[]}' }],
    subject: single,
  });
  await pushIndex(upstream, `${ns}/multi`, "2", { layerSizes: [20_000] });
  await pushImage(upstream, `${ns}/docker`, "v2s2", { layerSizes: [30_000], format: "docker" });

  const profileDir = join(work, "profiles", "scanner");
  mkdirSync(join(profileDir, "controls"), { recursive: true });
  writeFileSync(join(profileDir, "inspec.yml"), "name: scanner\nversion: 1.2.3\n");
  writeFileSync(
    join(profileDir, "controls", "s.rb"),
    'control "s-1" do\n  describe true do\n    it { should eq true }\n  end\nend\n',
  );
  const chartDir = join(work, "charts", "scanner");
  mkdirSync(join(chartDir, "templates"), { recursive: true });
  writeFileSync(join(chartDir, "Chart.yaml"), "apiVersion: v2\nname: scanner\nversion: 0.3.0\n");
  writeFileSync(join(chartDir, "values.yaml"), "replicas: 1\n");
  writeFileSync(join(chartDir, "templates", "pod.yaml"), "apiVersion: v1\nkind: Pod\n");

  const config = join(work, "bundle.config.yaml");
  writeFileSync(
    config,
    `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: quirks, version: 1.0.0 }
platforms: [linux/amd64, linux/arm64]
registries:
  - host: ${upstream.host}
    plainHTTP: true
images:
  - ref: ${upstream.host}/${ns}/single:1.0
  - ref: ${upstream.host}/${ns}/multi:2
  - ref: ${upstream.host}/${ns}/docker:v2s2
profiles:
  - path: profiles/scanner
charts:
  - path: charts/scanner
`,
  );
  dir = join(work, "bundle");
  await createBundle(config, dir, { key: keys.key, cache: join(work, "cache") });
  tarBundle = join(work, "bundle.tar");
  await createBundle(config, tarBundle, { key: keys.key, cache: join(work, "cache") });
  roots = bundleRoots(dir);
}, 120_000);

afterAll(async () => {
  await Promise.all(proxies.map((p) => p.close()));
  await agent.close();
  await closeFixtures();
});

/** Where a bundle root goes under `prefix` (the default mapping: the source host is dropped). */
function targetOf(name: string, prefix: string): { repo: string; tag: string } {
  const path = name.slice(name.indexOf("/") + 1);
  const colon = path.lastIndexOf(":");
  return { repo: `${prefix}/${path.slice(0, colon)}`, tag: path.slice(colon + 1) };
}

/** Repositories of the real registry under this prefix (its catalog, read directly). */
async function reposUnder(prefix: string): Promise<string[]> {
  const res = await request(`http://${upstream.host}/v2/_catalog?n=100000`, { dispatcher: agent });
  const json = (await res.body.json()) as { repositories: string[] | null };
  return (json.repositories ?? []).filter((r) => r === prefix || r.startsWith(`${prefix}/`));
}

async function importThrough(
  proxy: RegistryQuirksProxy,
  prefix: string,
  env: NodeJS.ProcessEnv,
  extra: string[] = [],
) {
  const r = await runCli(
    [
      "bundle",
      "import",
      dir,
      "--registry",
      `${proxy.host}/${prefix}`,
      "--plain-http",
      "--key",
      keys.pub,
      "--json",
      "--out",
      mkdtempSync(join(work, "out-")),
      ...extra,
    ],
    { env: { ...env, COSIGN_PASSWORD: PASSWORD, AIRGAP_REGISTRY_TIMEOUT_MS: "20000" } },
  );
  return r;
}

async function expectImported(
  proxy: RegistryQuirksProxy,
  prefix: string,
  env: NodeJS.ProcessEnv,
  extra: string[] = [],
) {
  const first = await importThrough(proxy, prefix, env, extra);
  expect(first.code, first.stderr).toBe(0);
  const stats = (JSON.parse(first.stdout) as ImportJson).stats;
  expect(stats.blobsUploaded + stats.blobsMounted).toBeGreaterThan(5);
  expect(roots.size).toBeGreaterThanOrEqual(6);
  for (const [name, root] of roots) {
    const { repo, tag } = targetOf(name, prefix);
    const got = await getManifest(upstream, repo, tag);
    expect(got.digest, name).toBe(root.digest);
  }
  const writesBefore = proxy.counts.writes;
  const again = await importThrough(proxy, prefix, env, extra);
  expect(again.code, again.stderr).toBe(0);
  // Everything is there under its tags: no upload session, no probe, no tag written again.
  expect(proxy.counts.writes - writesBefore).toBe(0);
  const second = (JSON.parse(again.stdout) as ImportJson).stats;
  expect(second.blobsUploaded).toBe(0);
  expect(second.bytesUploaded).toBe(0);
  expect(second.blobsMounted).toBe(0);
}

async function expectStopped(
  proxy: RegistryQuirksProxy,
  prefix: string,
  env: NodeJS.ProcessEnv,
  extra: string[] = [],
) {
  const r = await importThrough(proxy, prefix, env, extra);
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr).toContain("nothing was pushed");
  expect(await reposUnder(prefix)).toEqual([]);
  return r.stderr;
}

async function start(quirks: Quirks): Promise<RegistryQuirksProxy> {
  const p = await RegistryQuirksProxy.start(upstream.host, quirks);
  proxies.push(p);
  return p;
}

function env(): NodeJS.ProcessEnv {
  return isolatedEnv(mkdtempSync(join(work, "env-")), false);
}

describe("bundle import through emulated registries", () => {
  it("the bundle holds every kind of item", () => {
    const names = [...roots.keys()];
    expect(names.some((n) => n.endsWith(`${ns}/single:1.0`))).toBe(true);
    expect(names.some((n) => n.endsWith(".sig"))).toBe(true);
    expect(names.some((n) => n.includes("/charts/scanner:"))).toBe(true);
    expect(names.some((n) => n.includes("/profiles/scanner:") || n.includes("scanner:1.2.3"))).toBe(true);
    expect([...roots.values()].some((r) => r.mediaType === MT.dockerManifest)).toBe(true);
    expect([...roots.values()].some((r) => r.mediaType === MT.ociIndex)).toBe(true);
  });

  for (const name of ["nexus", "acr", "gitea", "manifest-4mb", "one-scope-token"] as ProfileName[]) {
    it(`${name}: imports digest-identical; a re-import uploads nothing`, async () => {
      const quirks = profile(name);
      const proxy = await start(quirks);
      let e = env();
      if (quirks.basicAuth) {
        const cfg = mkdtempSync(join(work, "nexus-"));
        const auth = Buffer.from(`${quirks.basicAuth.user}:${quirks.basicAuth.password}`).toString("base64");
        writeFileSync(join(cfg, "config.json"), JSON.stringify({ auths: { [proxy.host]: { auth } } }));
        e = { ...e, DOCKER_CONFIG: cfg };
      }
      await expectImported(proxy, uniqueRepo(`imp-${name}`), e);
      if (name === "nexus") expect(proxy.counts.applied.unauthorized).toBeGreaterThanOrEqual(1);
      if (name === "one-scope-token")
        expect(proxy.counts.applied["multi-scope-refused"]).toBeGreaterThanOrEqual(1);
    });
  }

  it("artifactory: blob HEADs that lie are caught at the manifest PUT and healed", async () => {
    const proxy = await start(profile("artifactory"));
    await expectImported(proxy, uniqueRepo("imp-art-a"), env());
    // a second target on the same registry: every blob is known elsewhere, so every HEAD lies
    await expectImported(proxy, uniqueRepo("imp-art-b"), env());
    expect(proxy.counts.applied["lying-head"]).toBeGreaterThan(3);
  });

  it("artifactory under a path prefix: create pulls from it and import pushes into it, digest-identical; a re-import uploads nothing", async () => {
    const proxy = await start(profile("artifactory-path"));
    const importConfig = join(work, "import-artifactory-path.yaml");
    writeFileSync(
      importConfig,
      `apiVersion: cinc-airgap/v1
kind: Import
registries:
  - host: ${proxy.host}
    plainHTTP: true
    pathPrefix: ${ARTIFACTORY_PATH_PREFIX}/
`,
    );
    // without the prefix the registry is not found at all: the pre-flight says so and names the setting
    const lostPrefix = uniqueRepo("imp-art-path-lost");
    const lost = await importThrough(proxy, lostPrefix, env());
    expect(lost.code, lost.stderr).toBe(2);
    expect(lost.stderr).toContain("nothing was pushed");
    expect(lost.stderr).toContain(`no registry API at /v2/`);
    expect(lost.stderr).toContain("`pathPrefix:`");
    expect(lost.stderr).toContain("Artifactory repository-path access");
    expect(lost.stderr).not.toContain("ECR");
    expect(await reposUnder(lostPrefix)).toEqual([]);
    expect(proxy.counts.applied["unprefixed-404"]).toBeGreaterThanOrEqual(1);
    let misses = proxy.counts.applied["unprefixed-404"];

    const prefix = uniqueRepo("imp-art-path");
    await expectImported(proxy, prefix, env(), ["--config", importConfig]);
    expect(proxy.counts.applied["unprefixed-404"]).toBe(misses);
    // upload sessions went on at the Location the registry gave, under the prefix
    expect(proxy.counts.applied["location-prefixed"]).toBeGreaterThan(5);
    // containerd on the nodes is pointed at the API root under the prefix
    const out = mkdtempSync(join(work, "out-path-"));
    const written = await importThrough(proxy, prefix, env(), ["--config", importConfig, "--out", out]);
    expect(written.code, written.stderr).toBe(0);
    expect(readFileSync(join(out, "certs.d", upstream.host, "hosts.toml"), "utf8")).toContain(
      `[host."http://${proxy.host}${ARTIFACTORY_PATH_PREFIX}/v2/${prefix}"]`,
    );

    // create reads the same images back through the prefix (tags, manifests, blobs, referrers)
    const config = join(work, "bundle-artifactory-path.yaml");
    writeFileSync(
      config,
      `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: quirks-path, version: 1.0.0 }
platforms: [linux/amd64, linux/arm64]
registries:
  - host: ${proxy.host}
    plainHTTP: true
    pathPrefix: ${ARTIFACTORY_PATH_PREFIX}
images:
  - ref: ${proxy.host}/${prefix}/${ns}/single:1.0
  - ref: ${proxy.host}/${prefix}/${ns}/multi:2
  - ref: ${proxy.host}/${prefix}/${ns}/docker:v2s2
`,
    );
    // create from it without the prefix: the missing manifest is explained by the missing prefix
    const unprefixed = join(work, "bundle-artifactory-path-lost.yaml");
    writeFileSync(unprefixed, readFileSync(config, "utf8").replace(/^ {4}pathPrefix: .*\n/m, ""));
    expect(readFileSync(unprefixed, "utf8")).not.toContain("pathPrefix");
    const missed = await runCli(
      [
        "bundle",
        "create",
        "-c",
        unprefixed,
        "-o",
        join(work, "bundle-path-lost"),
        "--cache",
        mkdtempSync(join(work, "cache-lost-")),
      ],
      { env: { COSIGN_PASSWORD: PASSWORD } },
    );
    expect(missed.code, missed.stderr).not.toBe(0);
    expect(missed.stderr).toContain(`answers 404 at its API base /v2/ too`);
    expect(missed.stderr).toContain("`pathPrefix:`");
    misses = proxy.counts.applied["unprefixed-404"];

    const pulled = join(work, "bundle-artifactory-path");
    await createBundle(config, pulled, { key: keys.key, cache: mkdtempSync(join(work, "cache-path-")) });
    const again = bundleRoots(pulled);
    const images = [...roots].filter(([n]) => !n.includes("/charts/") && !n.includes("/profiles/"));
    expect(images.length).toBeGreaterThanOrEqual(4);
    for (const [name, root] of images) {
      const found = [...again].find(([n]) => n.endsWith(name.slice(name.indexOf("/") + 1)));
      expect(found?.[1].digest, name).toBe(root.digest);
    }
    expect(proxy.counts.applied["unprefixed-404"]).toBe(misses);
  });

  it("harbor: a missing project stops the import before any push; once created, it imports", async () => {
    const quirks = profile("harbor");
    const proxy = await start(quirks);
    const project = uniqueRepo("imp-harbor");
    const stderr = await expectStopped(proxy, project, env());
    expect(stderr).toContain(`Harbor project "${project}" does not exist`);
    expect(stderr).toMatch(/create the Harbor project/);
    quirks.projects!.add(project);
    await expectImported(proxy, project, env());
  });

  it("harbor --create-repositories: the project is created through Harbor's API with the registry credentials", async () => {
    const quirks = profile("harbor");
    const proxy = await start(quirks);
    const project = uniqueRepo("imp-harbor-create");
    // without credentials Harbor refuses to create it: still nothing pushed, and the refusal named
    const refused = await expectStopped(proxy, project, env(), ["--create-repositories"]);
    expect(refused).toContain(`Harbor project "${project}" does not exist and creating it was refused (401`);
    expect(quirks.projects!.has(project)).toBe(false);

    const cfg = mkdtempSync(join(work, "harbor-"));
    const auth = Buffer.from(`${quirks.projectAdmin!.user}:${quirks.projectAdmin!.password}`).toString(
      "base64",
    );
    writeFileSync(join(cfg, "config.json"), JSON.stringify({ auths: { [proxy.host]: { auth } } }));
    await expectImported(proxy, project, { ...env(), DOCKER_CONFIG: cfg }, ["--create-repositories"]);
    expect(quirks.projects!.has(project)).toBe(true);
    expect(proxy.counts.applied["project-created"]).toBe(1);
  });

  it("ecr: missing repositories are all listed before any push; once created, it imports", async () => {
    const quirks = profile("ecr");
    const proxy = await start(quirks);
    const prefix = uniqueRepo("imp-ecr");
    const stderr = await expectStopped(proxy, prefix, env());
    const wanted = [...new Set([...roots.keys()].map((n) => targetOf(n, prefix).repo))];
    for (const repo of wanted) expect(stderr).toContain(`/${repo} (`);
    // one line per repository, each escaped on its own
    expect(stderr.split("\n").filter((l) => l.startsWith("  - "))).toHaveLength(wanted.length);
    expect(stderr).toContain("aws ecr create-repository");
    for (const repo of wanted) quirks.repositories!.add(repo);
    await expectImported(proxy, prefix, env());
  });

  it("--dry-run checks the repositories (Harbor project, ECR repositories), exits 2 with the list and writes nothing", async () => {
    const harbor = profile("harbor");
    const harborProxy = await start(harbor);
    const project = uniqueRepo("imp-harbor-dry");
    const cfg = mkdtempSync(join(work, "harbor-dry-"));
    const auth = Buffer.from(`${harbor.projectAdmin!.user}:${harbor.projectAdmin!.password}`).toString(
      "base64",
    );
    writeFileSync(join(cfg, "config.json"), JSON.stringify({ auths: { [harborProxy.host]: { auth } } }));
    // even with the right and --create-repositories, a dry run creates no project
    const dry = await importThrough(harborProxy, project, { ...env(), DOCKER_CONFIG: cfg }, [
      "--dry-run",
      "--create-repositories",
    ]);
    expect(dry.code, dry.stderr).toBe(2);
    expect(dry.stderr).toContain(`Harbor project "${project}" does not exist`);
    expect(dry.stderr).toMatch(/create the Harbor project/);
    expect(harbor.projects!.has(project)).toBe(false);
    expect(harborProxy.counts.applied["project-created"]).toBeUndefined();
    expect(harborProxy.counts.writes).toBe(0);
    expect(await reposUnder(project)).toEqual([]);

    const ecr = profile("ecr");
    const ecrProxy = await start(ecr);
    const prefix = uniqueRepo("imp-ecr-dry");
    const wanted = [...new Set([...roots.keys()].map((n) => targetOf(n, prefix).repo))];
    const listed = await importThrough(ecrProxy, prefix, env(), ["--dry-run"]);
    expect(listed.code, listed.stderr).toBe(2);
    for (const repo of wanted) expect(listed.stderr).toContain(`/${repo} (`);
    expect(listed.stderr).toContain("aws ecr create-repository");
    expect(ecrProxy.counts.writes).toBe(0);
    // once they exist the dry run passes; the pre-flight's upload sessions were cancelled, no content written
    for (const repo of wanted) ecr.repositories!.add(repo);
    const ok = await importThrough(ecrProxy, prefix, env(), ["--dry-run"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(await reposUnder(prefix)).toEqual([]);
    for (const [name] of roots) {
      const { repo, tag } = targetOf(name, prefix);
      const head = await request(`http://${upstream.host}/v2/${repo}/manifests/${tag}`, {
        method: "HEAD",
        dispatcher: agent,
      });
      await head.body.dump();
      expect(head.statusCode, name).toBe(404);
    }
  });

  it("ecr, bundle on a pipe: the repositories are checked before the first push too (and in a dry run)", async () => {
    const proxy = await start(profile("ecr"));
    const prefix = uniqueRepo("imp-ecr-pipe");
    for (const extra of [["--dry-run"], []]) {
      const r = await runCli(
        [
          "bundle",
          "import",
          "-",
          "--registry",
          `${proxy.host}/${prefix}`,
          "--plain-http",
          "--key",
          keys.pub,
          "--out",
          mkdtempSync(join(work, "out-")),
          ...extra,
        ],
        { env: { ...env(), COSIGN_PASSWORD: PASSWORD }, input: createReadStream(tarBundle) },
      );
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain("nothing was pushed");
      expect(r.stderr).toContain("aws ecr create-repository");
      expect(await reposUnder(prefix)).toEqual([]);
      expect(proxy.counts.writes).toBe(0);
    }
    expect(proxy.counts.applied["repository-missing"]).toBeGreaterThanOrEqual(10);
  });

  it("gitlab: paths deeper than allowed stop the import with the limit; a shorter prefix imports", async () => {
    const proxy = await start(profile("gitlab"));
    const group = uniqueRepo("imp-gitlab");
    const stderr = await expectStopped(proxy, `${group}/project/extra`, env());
    expect(stderr).toMatch(/has 5 levels, the registry takes at most 4/);
    expect(stderr).toContain("--flatten");
    await expectImported(proxy, `${group}/project`, env());
  });

  it("quay: items of kinds outside the allow-list are named before any push; allowed, it imports", async () => {
    const quirks = profile("quay");
    const proxy = await start(quirks);
    const prefix = uniqueRepo("imp-quay");
    const stderr = await expectStopped(proxy, prefix, env());
    expect(stderr).toContain(`artifactType ${SBOM}`);
    expect(stderr).toContain(`artifactType ${PROFILE_TYPE}`);
    expect(stderr).toContain("ALLOWED_OCI_ARTIFACT_TYPES");
    expect(stderr).not.toContain(MT.dockerManifest);
    for (const t of [SBOM, PROFILE_TYPE, MT.ociEmpty]) quirks.allowedConfigTypes!.add(t);
    await expectImported(proxy, prefix, env());
    expect(proxy.counts.applied["type-refused"]).toBeGreaterThanOrEqual(2);
  });

  it("zot (OCI only): the Docker image is named before any push", async () => {
    const proxy = await start(profile("zot"));
    const prefix = uniqueRepo("imp-zot");
    const stderr = await expectStopped(proxy, prefix, env());
    expect(stderr).toContain(`refuses manifests of the kind ${MT.dockerManifest}`);
    expect(stderr).toContain(`${ns}/docker:v2s2`);
    expect(stderr).toContain("docker2s2");
  });
});
