/**
 * The shipped bundle.config.yaml, scaled down and served by the local test servers: the same shape
 * (the five scanner charts from one git folder chained by file:// dependencies with `images: auto`,
 * the container baseline from that repository with a git dependency, two more profiles, the
 * train-k8s-container gem with `provided:`, kubectl-like files for two platforms with their sha256,
 * a threshold file, images of which one is multi-platform, and the runner image built from a
 * Node-like base). It is created, verified, imported into another registry and artifact
 * repository with --out, and the import output is checked the way a site would: nothing in it
 * points outside, the manifests validate, the runner image is in the registry, the report lists
 * every item, and the single-file tool the bundle carries runs with `node` alone.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { gemSourceFiles } from "../../src/sources/gems/index.js";
import { VERSION } from "../../src/version.js";
import { scannerChartFiles } from "../helpers/charts.js";
import { runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import {
  blobExists,
  closeFixtures,
  getManifest,
  plainTarget,
  pushImage,
  pushIndex,
  tlsTarget,
  uniqueRepo,
} from "../helpers/fixtures.js";
import { buildGem, describeGems, requireRuby, writeGemSource } from "../helpers/gems.js";
import { makeGitRepo } from "../helpers/git.js";
import { validateObject } from "../helpers/k8s-schema.js";
import { kustomize } from "../helpers/kustomize.js";
import { closeAgents, generateKey, isolatedEnv, PASSWORD } from "./import-helpers.js";

const uid = `e2e-${process.pid}-${Date.now().toString(36)}`;
const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
const source = plainTarget();
const target = tlsTarget();
const ns = uniqueRepo("e2e");
const prefix = uniqueRepo("site");
const TOOL = `tools/airgap-${VERSION}.mjs`;

/** Hosts the shipped config names: none may reach the isolated side's output. */
const PUBLIC_HOSTS = [
  "docker.io",
  "index.docker.io",
  "registry-1.docker.io",
  "gcr.io",
  "ghcr.io",
  "quay.io",
  "github.com",
  "rubygems.org",
  "dl.k8s.io",
];

let work: string;
let keys: { key: string; pub: string };
let bundleTar: string;
let out: string;
let sourceHosts: string[];

interface InventoryJson {
  items: {
    kind: string;
    name: string;
    digest: string;
    platforms?: string[];
    built?: { base: string; baseDigest: string; file: string; layer: string };
  }[];
}

function filesUnder(dir: string): string[] {
  const found: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) found.push(...filesUnder(full));
    else found.push(full);
  }
  return found;
}

function inventory(): InventoryJson {
  const listing = execFileSync("tar", ["-xOf", bundleTar, "bundle.json"], { maxBuffer: 64 << 20 });
  return JSON.parse(listing.toString()) as InventoryJson;
}

beforeAll(async () => {
  requireRuby();
  work = mkdtempSync(path.join(tmpdir(), "airgap-e2e-"));
  keys = await generateKey(work, "cosign");
  const S = source.host;
  const httpUrl = needEnv("AIRGAP_TEST_HTTP_URL");
  const httpRoot = path.join(needEnv("AIRGAP_TEST_HTTP_ROOT"), uid);
  sourceHosts = [S, new URL(needEnv("AIRGAP_TEST_GIT_URL")).host, new URL(httpUrl).host];

  // images: the scanner (one platform), the targets and SAF, a multi-platform busybox (three
  // platforms offered, two carried) and the Node-like base of the runner image
  const auditor = `${S}/${ns}/cincproject/auditor:6.8.24`;
  const busybox = `${S}/${ns}/library/busybox:1.37`;
  const distroless = `${S}/${ns}/distroless/static:nonroot`;
  const saf = `${S}/${ns}/mitre/saf:1.5.3`;
  await pushImage(source, `${ns}/cincproject/auditor`, "6.8.24", { layerSizes: [30_000] });
  await pushImage(source, `${ns}/distroless/static`, "nonroot", { layerSizes: [5_000] });
  await pushImage(source, `${ns}/mitre/saf`, "1.5.3", { layerSizes: [8_000] });
  const threePlatforms = [
    { os: "linux", architecture: "amd64" },
    { os: "linux", architecture: "arm64", variant: "v8" },
    { os: "linux", architecture: "s390x" },
  ];
  await pushIndex(source, `${ns}/library/busybox`, "1.37", {
    layerSizes: [4_000],
    platforms: threePlatforms,
  });
  await pushIndex(source, `${ns}/library/node`, "20-bookworm-slim", {
    layerSizes: [20_000, 3_000],
    platforms: threePlatforms,
  });

  // the scanner repository: five charts whose values name the images above, and the container
  // baseline profile, which depends on the linux baseline by git tag
  const linuxBaseline = await makeGitRepo(`linux-baseline-${uid}`, [
    {
      files: {
        "inspec.yml": "name: linux-baseline\nversion: 2.10.0\n",
        "controls/os.rb": 'control "os-01" do\n  describe true do\n    it { should eq true }\n  end\nend\n',
      },
      tags: ["2.10.0"],
    },
  ]);
  const stig = await makeGitRepo(`rhel-9-stig-${uid}`, [
    {
      files: {
        "inspec.yml": "name: redhat-enterprise-linux-9-stig-baseline\nversion: 2.4.0\n",
        "controls/stig.rb": 'control "SV-1" do\n  describe true do\n    it { should eq true }\n  end\nend\n',
      },
      tags: ["v2.4.0"],
    },
  ]);
  const charts = Object.fromEntries(
    Object.entries(scannerChartFiles()).map(([file, text]) => [
      file,
      text
        .replace("ghcr.io/distroless/static:nonroot", distroless)
        .replace("docker.io/library/busybox:1.37", busybox)
        .replace(/busybox:latest/g, busybox)
        .replace("docker.io/cincproject/auditor:latest", auditor),
    ]),
  );
  const kss = await makeGitRepo(`kube-secure-scanner-${uid}`, [
    {
      files: {
        ...charts,
        "examples/cinc-profiles/container-baseline/inspec.yml": [
          "name: container-baseline",
          "version: 1.0.0",
          "depends:",
          "  - name: linux-baseline",
          `    git: ${linuxBaseline.url}`,
          "    tag: 2.10.0",
          "",
        ].join("\n"),
        "examples/cinc-profiles/container-baseline/controls/c.rb":
          'control "container-1" do\n  describe true do\n    it { should eq true }\n  end\nend\n',
      },
    },
  ]);
  const commit = kss.commits[0]!;

  // the gem source: train-k8s-container needs train, which CINC Auditor provides
  const gems = [
    { name: "train-k8s-container", version: "1.3.1", runtime: { train: [">= 3.0"], "k8s-exec": ["~> 0.2"] } },
    { name: "train", version: "3.12.0" },
    { name: "k8s-exec", version: "0.2.4" },
  ];
  const built: string[] = [];
  mkdirSync(path.join(work, "gems"), { recursive: true });
  for (const g of gems) built.push(await buildGem(path.join(work, "gem-src"), path.join(work, "gems"), g));
  await writeGemSource(path.join(httpRoot, "rubygems"), gemSourceFiles(await describeGems(built)));

  // kubectl-like binaries per platform and a threshold file, with their published checksums
  const kubectl: Record<string, string> = {};
  for (const arch of ["amd64", "arm64"]) {
    const bytes = `#!/bin/sh\necho kubectl ${arch}\n`;
    const file = path.join(httpRoot, "release", "v1.31.4", "bin", "linux", arch, "kubectl");
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, bytes);
    kubectl[`linux/${arch}`] = sha256(bytes);
  }
  const threshold = "compliance:\n  min: 80\npassed:\n  critical:\n    min: 0\n";
  await writeFile(path.join(httpRoot, "threshold.yml"), threshold);

  const chartEntries = [
    "scanner-infrastructure",
    "common-scanner",
    "standard-scanner",
    "distroless-scanner",
    "sidecar-scanner",
  ]
    .map((c) => `  - git: ${kss.url}\n    ref: ${commit}\n    path: helm-charts/${c}\n    images: auto\n`)
    .join("");
  const config = path.join(work, "bundle.config.yaml");
  writeFileSync(
    config,
    `apiVersion: cinc-airgap/v1
kind: Bundle
metadata:
  name: cinc-secure-scanner
  version: 2026.11.0-e2e
platforms: [linux/amd64, linux/arm64]
registries:
  - host: "${S}"
    plainHTTP: true
images:
  - ref: ${auditor}
  - ref: ${distroless}
  - ref: ${busybox}
  - ref: ${saf}
runner:
  base: ${S}/${ns}/library/node:20-bookworm-slim
profiles:
  - git: ${kss.url}
    ref: ${commit}
    relative_path: examples/cinc-profiles/container-baseline
  - git: ${linuxBaseline.url}
    tag: 2.10.0
  - git: ${stig.url}
    tag: v2.4.0
charts:
${chartEntries}gems:
  - name: train-k8s-container
    version: "~> 1.3"
    source: ${httpUrl}/${uid}/rubygems
    provided: [train]
files:
  - name: kubectl
    url: ${httpUrl}/${uid}/release/v1.31.4/bin/{os}/{arch}/kubectl
    platforms: [linux/amd64, linux/arm64]
    sha256:
      linux/amd64: ${kubectl["linux/amd64"]}
      linux/arm64: ${kubectl["linux/arm64"]}
  - name: saf-threshold.yml
    url: ${httpUrl}/${uid}/threshold.yml
    sha256: ${sha256(threshold)}
`,
  );

  bundleTar = path.join(work, "scanner-bundle.tar");
  const created = await runCli(
    [
      "bundle",
      "create",
      "-c",
      config,
      "-o",
      bundleTar,
      "--cache",
      path.join(work, "cache"),
      "--key",
      keys.key,
    ],
    { env: { COSIGN_PASSWORD: PASSWORD } },
  );
  expect(created.code, created.stderr).toBe(0);
  const verified = await runCli(["bundle", "verify", bundleTar, "--key", keys.pub, "--require-signature"]);
  expect(verified.code, verified.stderr).toBe(0);

  out = path.join(work, "airgap-out");
  const imported = await runCli(
    [
      "bundle",
      "import",
      bundleTar,
      "--registry",
      `${target.host}/${prefix}`,
      "--key",
      keys.pub,
      "--require-signature",
      "--ca-file",
      needEnv("AIRGAP_TEST_CA"),
      "--artifacts",
      `${needEnv("AIRGAP_TEST_DAV_URL")}/${uid}/`,
      "--out",
      out,
    ],
    {
      env: {
        ...isolatedEnv(work),
        AIRGAP_ARTIFACTS_USER: needEnv("AIRGAP_TEST_DAV_USER"),
        AIRGAP_ARTIFACTS_PASSWORD: needEnv("AIRGAP_TEST_DAV_PASSWORD"),
      },
    },
  );
  expect(imported.code, imported.stderr).toBe(0);
}, 300_000);

afterAll(async () => {
  await closeFixtures();
  await closeAgents();
  await rm(path.join(needEnv("AIRGAP_TEST_HTTP_ROOT"), uid), { recursive: true, force: true });
  if (work) await rm(work, { recursive: true, force: true });
});

describe("the default config's shape, end to end on local servers", () => {
  it("carries every kind of item the shipped config names, the runner image built from its base", () => {
    const inv = inventory();
    const byKind = (k: string) => inv.items.filter((i) => i.kind === k).map((i) => i.name);
    expect(byKind("chart").sort()).toEqual(
      [
        "common-scanner",
        "distroless-scanner",
        "scanner-infrastructure",
        "sidecar-scanner",
        "standard-scanner",
      ].map((c) => `localhost/charts/${c}:0.1.0`),
    );
    expect(byKind("profile").sort()).toEqual([
      "localhost/profiles/container-baseline:1.0.0",
      "localhost/profiles/linux-baseline:2.10.0",
      "localhost/profiles/redhat-enterprise-linux-9-stig-baseline:2.4.0",
    ]);
    // train is provided by CINC Auditor: not carried
    expect(byKind("gem").sort()).toEqual([
      "localhost/gems/k8s-exec:0.2.4",
      "localhost/gems/train-k8s-container:1.3.1",
    ]);
    expect(byKind("file").sort()).toEqual([
      "localhost/files/kubectl:linux-amd64",
      "localhost/files/kubectl:linux-arm64",
      "localhost/files/saf-threshold.yml:any",
    ]);
    const busybox = inv.items.find((i) => i.name.endsWith("/library/busybox:1.37"))!;
    expect(busybox.platforms!.sort()).toEqual(["linux/amd64", "linux/arm64/v8"]);
    const runner = inv.items.find((i) => i.name === `localhost/cinc-airgap/airgap:${VERSION}`)!;
    expect(runner.kind).toBe("image");
    expect(runner.platforms!.sort()).toEqual(["linux/amd64", "linux/arm64/v8"]);
    expect(runner.built).toMatchObject({
      base: expect.stringContaining(`/${ns}/library/node:20-bookworm-slim@sha256:`),
      file: TOOL,
    });
  });

  it("no public host, and no source host of the bundle, in what the isolated side consumes", () => {
    const consumed = filesUnder(out);
    expect(consumed.map((f) => path.relative(out, f))).toEqual(
      expect.arrayContaining([
        "images.json",
        "registries.conf",
        "charts.json",
        "gems.json",
        "files.json",
        "profiles.json",
        "values/standard-scanner.yaml",
        "manifests/kustomization.yaml",
      ]),
    );
    for (const file of consumed) {
      const rel = path.relative(out, file);
      const text = readFileSync(file, "utf8");
      for (const host of PUBLIC_HOSTS) {
        expect(text.includes(host), `${rel} names ${host}`).toBe(false);
        expect(rel.includes(host), `${rel} is named for ${host}`).toBe(false);
      }
      // The mirror configuration must name the source host as the name it rewrites, and the
      // image lists record where each image came from ("source"); nothing else may name it.
      const mapping =
        ["registries.conf", "images.json", "charts.json"].includes(rel) || rel.startsWith("certs.d/");
      for (const host of sourceHosts) {
        if (!text.includes(host)) continue;
        expect(mapping, `${rel} names the source host ${host}`).toBe(true);
        for (const line of text.split("\n").filter((l) => l.includes(host))) {
          expect(line, `${rel}: ${line}`).toMatch(/^\s*(prefix = |server = |#|"source": )/);
        }
      }
    }
    // every place the cluster pulls from is the internal registry
    const conf = readFileSync(path.join(out, "registries.conf"), "utf8");
    const locations = [...conf.matchAll(/^location = "([^"]+)"/gm)].map((m) => m[1]!);
    // the four images; the runner image is named by its internal reference, never mirrored
    expect(locations).toHaveLength(4);
    for (const l of locations) expect(l.startsWith(`${target.host}/${prefix}/`), l).toBe(true);
    const images = JSON.parse(readFileSync(path.join(out, "images.json"), "utf8")) as {
      target: string;
      targetPinned: string;
    }[];
    for (const i of images) expect(i.targetPinned.startsWith(`${target.host}/${prefix}/`)).toBe(true);
    const charts = JSON.parse(readFileSync(path.join(out, "charts.json"), "utf8")) as {
      oci: string;
      images: { target: string }[];
    }[];
    expect(charts).toHaveLength(5);
    for (const c of charts) {
      expect(c.oci.startsWith(`oci://${target.host}/${prefix}/`), c.oci).toBe(true);
      for (const i of c.images) expect(i.target.startsWith(`${target.host}/${prefix}/`), i.target).toBe(true);
    }
    // the profile, gem and file URLs are the artifact repository's
    const dav = `${needEnv("AIRGAP_TEST_DAV_URL")}/${uid}/`;
    const profiles = JSON.parse(readFileSync(path.join(out, "profiles.json"), "utf8")) as { url: string }[];
    expect(profiles).toHaveLength(3);
    for (const p of profiles) expect(p.url.startsWith(dav), p.url).toBe(true);
    const files = JSON.parse(readFileSync(path.join(out, "files.json"), "utf8")) as { url: string }[];
    for (const f of files) expect(f.url.startsWith(dav), f.url).toBe(true);
  });

  it("the manifests overlay renders, every component enabled, to objects the Kubernetes schemas accept; the Job runs the imported runner image", async () => {
    const kustomization = path.join(out, "manifests", "kustomization.yaml");
    const text = readFileSync(kustomization, "utf8");
    // what the runbook tells a site to do: enable the components it uses (here, all of them)
    const doc = parseYaml(text) as { components: string[] };
    doc.components = ["kubernetes-api", "debug-container", "sidecar", "import-job"].map(
      (c) => `components/${c}`,
    );
    writeFileSync(kustomization, stringifyYaml(doc));
    const objects = kustomize(path.join(out, "manifests"));
    writeFileSync(kustomization, text);
    for (const o of objects) validateObject(o);
    const job = objects.find((o) => o.kind === "Job" && o.metadata.name === "airgap-import");
    expect(job, "the import-job component was not enabled").toBeDefined();
    const runnerDigest = (await getManifest(target, `${prefix}/cinc-airgap/airgap`, VERSION)).digest;
    const pod = (job as unknown as { spec: { template: { spec: { containers: { image: string }[] } } } }).spec
      .template.spec;
    expect(pod.containers[0]!.image).toBe(`${target.host}/${prefix}/cinc-airgap/airgap@${runnerDigest}`);
  });

  it("the runner image is in the target registry: per platform, the base plus one layer holding the tool the bundle carries", async () => {
    const repo = `${prefix}/cinc-airgap/airgap`;
    const index = await getManifest(target, repo, VERSION);
    const runner = inventory().items.find((i) => i.name === `localhost/cinc-airgap/airgap:${VERSION}`)!;
    expect(index.digest).toBe(runner.digest);
    const children = (
      JSON.parse(index.bytes.toString()) as {
        manifests: { digest: string; platform: { architecture: string } }[];
      }
    ).manifests;
    expect(children.map((c) => c.platform.architecture).sort()).toEqual(["amd64", "arm64"]);
    const tool = execFileSync("tar", ["-xOf", bundleTar, TOOL], { maxBuffer: 64 << 20 });
    for (const child of children) {
      const m = JSON.parse((await getManifest(target, repo, child.digest)).bytes.toString()) as {
        layers: { digest: string }[];
      };
      // the base's two layers, then the one added, the same on every platform
      expect(m.layers).toHaveLength(3);
      const added = m.layers.at(-1)!.digest;
      expect(added).toBe(runner.built!.layer);
      expect(await blobExists(target, repo, added)).toBe(true);
    }
    // the added layer, as the bundle carries it, holds exactly the tool the bundle carries
    const layer = path.join(work, "runner-layer.tar");
    writeFileSync(
      layer,
      execFileSync("tar", ["-xOf", bundleTar, `blobs/sha256/${runner.built!.layer.slice(7)}`], {
        maxBuffer: 64 << 20,
      }),
    );
    expect(execFileSync("tar", ["-tf", layer], { encoding: "utf8" }).trim().split("\n")).toEqual([
      "opt/",
      "opt/cinc-airgap/",
      "opt/cinc-airgap/airgap.mjs",
    ]);
    // compared by digest: a deep equality of two 5 MB buffers takes the test runner a minute
    const inLayer = execFileSync("tar", ["-xOf", layer, "opt/cinc-airgap/airgap.mjs"], {
      maxBuffer: 64 << 20,
    });
    expect(sha256(inLayer)).toBe(sha256(tool));
  });

  it("bundle report lists every item of the bundle", async () => {
    const r = await runCli(["bundle", "report", bundleTar, "--key", keys.pub, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as {
      items: { kind: string; name: string; digest: string; details: Record<string, unknown> }[];
    };
    const items = inventory().items;
    // 4 images and the runner, 3 profiles, 5 charts, 2 gems (train is provided), 3 files
    expect(items).toHaveLength(18);
    expect(report.items.map((i) => [i.kind, i.name, i.digest]).sort()).toEqual(
      items.map((i) => [i.kind, i.name, i.digest]).sort(),
    );
    // the review board sees what the runner image was built from
    const runner = report.items.find((i) => i.name === `localhost/cinc-airgap/airgap:${VERSION}`)!;
    expect(runner.details.built).toMatchObject({ base: expect.stringContaining("@sha256:"), file: TOOL });
  });

  it("the single-file tool extracted from the bundle runs --version and bundle verify with node alone", () => {
    // a folder outside the checkout: no node_modules anywhere above it
    const extracted = mkdtempSync(path.join(tmpdir(), "airgap-e2e-extracted-"));
    try {
      execFileSync("tar", ["-xf", bundleTar, "-C", extracted]);
      for (let dir = extracted; dir !== path.dirname(dir); dir = path.dirname(dir)) {
        expect(existsSync(path.join(dir, "node_modules")), `${dir}/node_modules`).toBe(false);
      }
      const env = { PATH: path.dirname(process.execPath), HOME: extracted };
      const run = (...args: string[]) =>
        spawnSync(process.execPath, [TOOL, ...args], { cwd: extracted, env, encoding: "utf8" });
      const version = run("--version");
      expect(version.status, version.stderr).toBe(0);
      expect(version.stdout.trim()).toBe(VERSION);
      const verify = run("bundle", "verify", ".", "--key", keys.pub, "--require-signature");
      expect(verify.status, verify.stderr).toBe(0);
      expect(statSync(path.join(extracted, TOOL)).size).toBeGreaterThan(100_000);
    } finally {
      execFileSync("rm", ["-rf", extracted]);
    }
  });
});
