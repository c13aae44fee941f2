/**
 * Charts end to end through the CLI: a chart folder with `images: auto` whose values name two images
 * of the test registry (a map with registry/repository/tag and a `:latest` string) is packaged and
 * stored as `helm push` writes it; its images join the bundle pinned by digest; the bundle verifies
 * and inspects. Import pushes the chart to PREFIX/charts/NAME:VERSION, writes one values file that
 * names only internal references pinned by digest, and publishes a Helm repository (NAME-V.tgz +
 * index.yaml) to S3, read back and hashed. A second bundle takes the imported chart as an oci://
 * chart, copied as it is.
 */
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { CreateBucketCommand, GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { helmRepositoryIndex } from "../../src/sources/charts/index.js";
import { runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import {
  closeFixtures,
  cosignTag,
  getManifest,
  plainTarget,
  pushCosignSignature,
  pushImage,
  uniqueRepo,
} from "../helpers/fixtures.js";
import { generateKey, PASSWORD } from "./import-helpers.js";

const uid = `cb-${process.pid}-${Date.now().toString(36)}`;
const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
const registry = plainTarget().host;

let work: string;
let bundleDir: string;
let keys: { key: string; pub: string };
let appRepo: string;
let toolRepo: string;
let appDigest: string;

interface ChartItemJson {
  kind: string;
  name: string;
  digest: string;
  chart: {
    name: string;
    version: string;
    sha256: string;
    images: { ref: string; digest: string; valuesPath: (string | number)[] }[];
  };
}

async function create(config: string, out: string, cache = path.join(work, "cache")) {
  return await runCli(["bundle", "create", "-c", config, "-o", out, "--cache", cache, "--key", keys.key], {
    env: { COSIGN_PASSWORD: PASSWORD },
  });
}

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "airgap-charts-bundle-"));
  keys = await generateKey(work, "cosign");
  appRepo = uniqueRepo("chart-app");
  toolRepo = uniqueRepo("chart-tool");
  appDigest = (await pushImage(plainTarget(), appRepo, "1.0", { layerSizes: [2000] })).digest;
  await pushImage(plainTarget(), toolRepo, "latest", { layerSizes: [1000] });
  const chartDir = path.join(work, "charts", "scanner");
  await mkdir(path.join(chartDir, "templates"), { recursive: true });
  await writeFile(
    path.join(chartDir, "Chart.yaml"),
    "apiVersion: v2\nname: scanner\nversion: 0.3.0\nappVersion: '1.0'\ndescription: test scanner\n",
  );
  await writeFile(
    path.join(chartDir, "values.yaml"),
    `app:\n  image:\n    registry: ${registry}\n    repository: ${appRepo}\n    tag: "1.0"\ntool:\n  image: ${registry}/${toolRepo}:latest\n`,
  );
  await writeFile(path.join(chartDir, "templates", "pod.yaml"), "apiVersion: v1\nkind: Pod\n");
  const config = path.join(work, "bundle.config.yaml");
  await writeFile(
    config,
    `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: charts, version: 1.0.0 }
platforms: [linux/amd64]
registries:
  - host: "${registry}"
    plainHTTP: true
charts:
  - path: charts/scanner
    images: auto
`,
  );
  bundleDir = path.join(work, "bundle");
  const r = await create(config, bundleDir);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr).toMatch(/warning: chart scanner 0\.3\.0 names .*:latest/);
});

afterAll(async () => {
  await closeFixtures();
  if (work) await rm(work, { recursive: true, force: true });
  await rm(path.join(needEnv("AIRGAP_TEST_HTTP_ROOT"), uid), { recursive: true, force: true });
});

describe("charts in a bundle", () => {
  it("the chart is a Helm OCI artifact and the images its values name are in the bundle, pinned", async () => {
    const inv = JSON.parse(await readFile(path.join(bundleDir, "bundle.json"), "utf8")) as {
      items: ChartItemJson[];
    };
    const chart = inv.items.find((i) => i.kind === "chart")!;
    expect(chart.name).toBe("localhost/charts/scanner:0.3.0");
    const manifest = JSON.parse(
      await readFile(path.join(bundleDir, "blobs", "sha256", chart.digest.slice(7)), "utf8"),
    ) as { config: { mediaType: string }; layers: { mediaType: string; digest: string }[] };
    expect(manifest.config.mediaType).toBe("application/vnd.cncf.helm.config.v1+json");
    expect(manifest.layers.map((l) => l.mediaType)).toEqual([
      "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
    ]);
    expect(manifest.layers[0]!.digest).toBe(`sha256:${chart.chart.sha256}`);
    const images = inv.items.filter((i) => i.kind === "image").map((i) => i.name);
    expect(images.sort()).toEqual([`${registry}/${appRepo}:1.0`, `${registry}/${toolRepo}:latest`].sort());
    const app = chart.chart.images.find((i) => i.ref === `${registry}/${appRepo}:1.0`)!;
    expect(app.digest).toBe(appDigest);
    expect(app.valuesPath).toEqual(["app", "image"]);
    const v = await runCli(["bundle", "verify", bundleDir, "--key", keys.pub]);
    expect(v.code, v.stderr).toBe(0);
    const i = await runCli(["bundle", "inspect", bundleDir]);
    expect(i.stdout).toMatch(/chart\s+localhost\/charts\/scanner:0\.3\.0/);
  });

  it("import pushes PREFIX/charts/NAME:VERSION, writes values/NAME.yaml with internal pins, publishes a Helm repository", async () => {
    const bucket = uid
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, "-")
      .slice(0, 40);
    const s3 = new S3Client({
      endpoint: needEnv("AIRGAP_TEST_S3_ENDPOINT"),
      forcePathStyle: true,
      region: "us-east-1",
      requestChecksumCalculation: "WHEN_REQUIRED",
    });
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const out = path.join(work, "out");
    const r = await runCli(
      [
        "bundle",
        "import",
        bundleDir,
        "--registry",
        `${registry}/${uid}`,
        "--plain-http",
        "--key",
        keys.pub,
        "--artifacts",
        `s3://${bucket}/site`,
        "--out",
        out,
        "--json",
      ],
      { env: { AWS_ENDPOINT_URL_S3: needEnv("AIRGAP_TEST_S3_ENDPOINT") } },
    );
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as {
      charts: { name: string; version: string; sha256: string; artifact: string; oci: string }[];
    };
    const chart = result.charts[0]!;
    expect(chart.oci).toBe(`oci://${registry}/${uid}/charts/scanner`);
    const pushed = await getManifest(plainTarget(), `${uid}/charts/scanner`, "0.3.0");
    expect(chart.artifact).toBe(`${registry}/${uid}/charts/scanner@${pushed.digest}`);

    // one values file, naming only internal references pinned by digest
    const valuesText = await readFile(path.join(out, "values", "scanner.yaml"), "utf8");
    const values = parseYaml(valuesText) as {
      app: { image: { registry: string; repository: string; tag: string } };
      tool: { image: string };
    };
    expect(values.app.image).toEqual({
      registry,
      repository: `${uid}/${appRepo}`,
      tag: `1.0@${appDigest}`,
    });
    expect(values.tool.image).toMatch(new RegExp(`^${registry}/${uid}/${toolRepo}@sha256:[a-f0-9]{64}$`));
    // no source reference is left: every repository is under the import's prefix
    expect(valuesText).not.toContain(`${registry}/${toolRepo}`);
    expect(valuesText).not.toMatch(new RegExp(`repository: ${appRepo}$`, "m"));
    const listed = JSON.parse(await readFile(path.join(out, "charts.json"), "utf8")) as { values: string }[];
    expect(listed[0]!.values).toBe("values/scanner.yaml");

    // the Helm repository in S3
    const tgz = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "site/charts/scanner-0.3.0.tgz" }));
    expect(sha256(Buffer.from(await tgz.Body!.transformToByteArray()))).toBe(chart.sha256);
    const indexObj = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "site/charts/index.yaml" }));
    const index = parseYaml(await indexObj.Body!.transformToString()) as {
      entries: Record<string, { version: string; digest: string; urls: string[] }[]>;
    };
    expect(index.entries.scanner).toEqual([
      expect.objectContaining({ version: "0.3.0", digest: chart.sha256, urls: ["scanner-0.3.0.tgz"] }),
    ]);
  });

  it("a bundle on a pipe imports the same way: values file, Helm repository on WebDAV read back", async () => {
    const tar = path.join(work, "bundle.tar");
    const c = await create(path.join(work, "bundle.config.yaml"), tar);
    expect(c.code, c.stderr).toBe(0);
    const user = needEnv("AIRGAP_TEST_DAV_USER");
    const password = needEnv("AIRGAP_TEST_DAV_PASSWORD");
    const dav = `${needEnv("AIRGAP_TEST_DAV_URL")}/${uid}/`;
    const out = path.join(work, "out-pipe");
    const r = await runCli(
      [
        "bundle",
        "import",
        "-",
        "--registry",
        `${registry}/${uid}-pipe`,
        "--plain-http",
        "--key",
        keys.pub,
      ].concat(["--artifacts", dav, "--out", out, "--json"]),
      {
        env: { AIRGAP_ARTIFACTS_USER: user, AIRGAP_ARTIFACTS_PASSWORD: password },
        input: await readFile(tar),
      },
    );
    expect(r.code, r.stderr).toBe(0);
    const chart = (JSON.parse(r.stdout) as { charts: { sha256: string; url: string; repository: string }[] })
      .charts[0]!;
    expect(chart.url).toBe(`${dav}charts/scanner-0.3.0.tgz`);
    const auth = { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` };
    const tgz = await fetch(chart.url, { headers: auth });
    expect(sha256(Buffer.from(await tgz.arrayBuffer()))).toBe(chart.sha256);
    const index = await fetch(`${chart.repository}/index.yaml`, { headers: auth });
    expect(await index.text()).toContain(chart.sha256);
    const values = await readFile(path.join(out, "values", "scanner.yaml"), "utf8");
    expect(values).toContain(`${uid}-pipe/${appRepo}`);
    expect(values).toContain(`@${appDigest}`);
  });

  it("a new chart version: diff shows one change, and the Helm repository keeps both versions", async () => {
    const chartYaml = path.join(work, "charts", "scanner", "Chart.yaml");
    await writeFile(
      chartYaml,
      (await readFile(chartYaml, "utf8")).replace("version: 0.3.0", "version: 0.4.0"),
    );
    const out = path.join(work, "bundle-040");
    const c = await create(path.join(work, "bundle.config.yaml"), out);
    expect(c.code, c.stderr).toBe(0);
    const d = await runCli(["bundle", "diff", bundleDir, out]);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toContain("~ chart localhost/charts/scanner 0.3.0 → 0.4.0");
    const user = needEnv("AIRGAP_TEST_DAV_USER");
    const password = needEnv("AIRGAP_TEST_DAV_PASSWORD");
    const dav = `${needEnv("AIRGAP_TEST_DAV_URL")}/${uid}/`;
    const r = await runCli(
      [
        "bundle",
        "import",
        out,
        "--registry",
        `${registry}/${uid}-pipe`,
        "--plain-http",
        "--key",
        keys.pub,
      ].concat(["--artifacts", dav, "--out", path.join(work, "out-040"), "--json"]),
      { env: { AIRGAP_ARTIFACTS_USER: user, AIRGAP_ARTIFACTS_PASSWORD: password } },
    );
    expect(r.code, r.stderr).toBe(0);
    const auth = { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` };
    const index = parseYaml(await (await fetch(`${dav}charts/index.yaml`, { headers: auth })).text()) as {
      entries: Record<string, { version: string; urls: string[] }[]>;
    };
    expect(index.entries.scanner!.map((e) => e.version)).toEqual(["0.4.0", "0.3.0"]);
    for (const e of index.entries.scanner!) {
      const res = await fetch(`${dav}charts/${e.urls[0]}`, { headers: auth });
      expect(res.status).toBe(200);
    }
  });

  it("an oci:// chart is copied as it is (same manifest digest, its signature carried) and diff names what changed", async () => {
    const signed = await getManifest(plainTarget(), `${uid}/charts/scanner`, "0.3.0");
    const signature = await pushCosignSignature(plainTarget(), `${uid}/charts/scanner`, signed.digest);
    const config = path.join(work, "oci.config.yaml");
    await writeFile(
      config,
      `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: charts, version: 1.0.1 }
registries:
  - host: "${registry}"
    plainHTTP: true
charts:
  - oci: oci://${registry}/${uid}/charts/scanner
    version: "^0.3"
`,
    );
    const out = path.join(work, "bundle-oci");
    // a cold cache: the chart's layer is read once, into the cache, and the graph copy finds it there
    const r = await create(config, out, path.join(work, "cache-oci"));
    expect(r.code, r.stderr).toBe(0);
    const inv = JSON.parse(await readFile(path.join(out, "bundle.json"), "utf8")) as {
      items: ChartItemJson[];
    };
    const chart = inv.items.find((i) => i.kind === "chart")!;
    const pushed = await getManifest(plainTarget(), `${uid}/charts/scanner`, "0.3.0");
    expect(chart.name).toBe("localhost/charts/scanner:0.3.0");
    expect(chart.digest).toBe(pushed.digest);
    const first = JSON.parse(await readFile(path.join(bundleDir, "bundle.json"), "utf8")) as {
      items: ChartItemJson[];
    };
    expect(first.items.find((i) => i.kind === "chart")!.digest).toBe(chart.digest);
    // the cosign signature tag travels with it, as a root of the chart's repository
    const index = JSON.parse(await readFile(path.join(out, "index.json"), "utf8")) as {
      manifests: { digest: string; annotations: Record<string, string> }[];
    };
    const sigRoot = index.manifests.find(
      (m) =>
        m.annotations["org.opencontainers.image.ref.name"] ===
        `localhost/charts/scanner:${cosignTag(signed.digest)}`,
    );
    expect(sigRoot?.digest).toBe(signature.digest);
    expect((chart as unknown as { blobs: string[] }).blobs).toContain(signature.digest);
    const d = await runCli(["bundle", "diff", bundleDir, out, "--json"]);
    expect(d.code, d.stderr).toBe(0);
    const diff = JSON.parse(d.stdout) as { removed: { kind: string }[]; unchanged: string[] };
    expect(diff.unchanged).toContain("localhost/charts/scanner:0.3.0");
    // the oci entry has no images: auto, so the two images are not in this bundle
    expect(diff.removed.map((x) => x.kind)).toEqual(["image", "image"]);
  });

  it("a chart from a Helm repository gives the same artifact as the same package from a folder", async () => {
    const first = JSON.parse(await readFile(path.join(bundleDir, "bundle.json"), "utf8")) as {
      items: ChartItemJson[];
    };
    const packaged = first.items.find((i) => i.kind === "chart")!;
    const tgz = await readFile(path.join(bundleDir, "blobs", "sha256", packaged.chart.sha256));
    const repoRoot = path.join(needEnv("AIRGAP_TEST_HTTP_ROOT"), uid, "helm");
    await mkdir(repoRoot, { recursive: true });
    await writeFile(path.join(repoRoot, "scanner-0.3.0.tgz"), tgz);
    const meta = (packaged.chart as unknown as { metadata: object }).metadata;
    await writeFile(
      path.join(repoRoot, "index.yaml"),
      helmRepositoryIndex(
        [
          {
            name: "scanner",
            version: "0.3.0",
            sha256: sha256(tgz),
            url: "scanner-0.3.0.tgz",
            chartYamlJson: meta,
          },
        ],
        new Date(),
      ),
    );
    const config = path.join(work, "repo.config.yaml");
    await writeFile(
      config,
      `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: charts, version: 1.0.2 }
charts:
  - repo: ${needEnv("AIRGAP_TEST_HTTP_URL")}/${uid}/helm
    name: scanner
    version: ">=0.3.0 <1"
`,
    );
    const out = path.join(work, "bundle-repo");
    const r = await create(config, out);
    expect(r.code, r.stderr).toBe(0);
    const inv = JSON.parse(await readFile(path.join(out, "bundle.json"), "utf8")) as {
      items: ChartItemJson[];
    };
    const chart = inv.items.find((i) => i.kind === "chart")!;
    expect(chart.chart.sha256).toBe(packaged.chart.sha256);
    expect(chart.digest).toBe(packaged.digest);
  });
});
