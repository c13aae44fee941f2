/**
 * Charts as OCI artifacts on the real registry: pushed as `helm push` writes them (the registry
 * accepts Helm's media types and returns the bytes unchanged), pulled back for an oci:// dependency
 * (version range over the tag list) and for a top-level oci chart.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryClient } from "../../src/oci/registry/client.js";
import {
  type HelmChartArtifact,
  ociChartPuller,
  resolveChart,
  storeHelmChartArtifact,
} from "../../src/sources/charts/index.js";
import { type PackagedChart, packageChartDir } from "../../src/sources/charts/package.js";
import { registryRepository } from "../../src/store/registry.js";
import { minimalChart, writeTree } from "../helpers/charts.js";
import { closeFixtures, getBlob, getManifest, plainTarget, uniqueRepo } from "../helpers/fixtures.js";

const target = plainTarget();
const host = target.host;
const client = new RegistryClient({ hosts: [{ host, plainHTTP: true }] });
const base = uniqueRepo("charts");
let work: string;
const pushed = new Map<string, { chart: PackagedChart; artifact: HelmChartArtifact }>();

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "airgap-charts-oci-"));
  for (const version of ["1.0.0", "1.0.1", "1.1.0", "2.0.0+build.1"]) {
    const dir = path.join(work, "src", version);
    await writeTree(dir, {
      "Chart.yaml": `${minimalChart("lib", version)}description: lib & <friends>\nhome: https://example.org/lib\n`,
      "values.yaml": "image:\n  repository: org/lib\n  tag: v1\n",
    });
    const chart = await packageChartDir(dir, {
      boundary: dir,
      boundaryName: "src",
      outDir: work,
      fetchRepo: async () => {
        throw new Error("none");
      },
    });
    const artifact = await storeHelmChartArtifact(
      registryRepository(client, host, `${base}/lib`),
      chart,
      chart.metadata.raw,
      {
        tag: version.replace("+", "_"),
      },
    );
    pushed.set(version, { chart, artifact });
  }
});

afterAll(async () => {
  await client.close();
  await closeFixtures();
  await rm(work, { recursive: true, force: true });
});

describe("Helm charts in an OCI registry", () => {
  it("pushes manifest, config and chart layer the registry serves back byte for byte", async () => {
    const { chart, artifact } = pushed.get("1.1.0")!;
    const m = await getManifest(target, `${base}/lib`, "1.1.0");
    expect(m.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
    expect(m.bytes).toEqual(artifact.manifest);
    expect(m.digest).toBe(artifact.manifestDescriptor.digest);
    const doc = JSON.parse(m.bytes.toString());
    expect(doc.config.mediaType).toBe("application/vnd.cncf.helm.config.v1+json");
    expect(doc.layers[0].mediaType).toBe("application/vnd.cncf.helm.chart.content.v1.tar+gzip");
    expect(doc.annotations["org.opencontainers.image.title"]).toBe("lib");
    expect(doc.annotations["org.opencontainers.image.version"]).toBe("1.1.0");
    expect(await getBlob(target, `${base}/lib`, artifact.configDescriptor.digest)).toEqual(artifact.config);
    expect(JSON.parse(artifact.config.toString())).toEqual({
      name: "lib",
      home: "https://example.org/lib",
      version: "1.1.0",
      description: "lib & <friends>",
      apiVersion: "v2",
    });
    expect(await getBlob(target, `${base}/lib`, artifact.layer.digest)).toEqual(await readFile(chart.file));
  });

  it("pulls an oci:// dependency by range from the tag list into charts/", async () => {
    const cfg = path.join(work, "cfg");
    await writeTree(cfg, {
      "app/Chart.yaml": minimalChart("app", "0.1.0", [
        { name: "lib", version: "~1.0", repository: `oci://${host}/${base}` },
      ]),
    });
    const r = await resolveChart(
      { type: "path", path: path.join(cfg, "app"), images: "auto" },
      {
        workDir: path.join(work, "w1"),
        configDir: cfg,
        pullOci: ociChartPuller((registry, repository) => registryRepository(client, registry, repository)),
      },
    );
    expect(r.dependencies).toEqual([
      {
        name: "lib",
        version: "1.0.1",
        key: "lib",
        repository: `oci://${host}/${base}`,
        sha256: pushed.get("1.0.1")!.chart.sha256,
        dependencies: [],
      },
    ]);
    expect(r.images.map((i) => [i.chartPath.join("/"), i.ref])).toEqual([
      ["app/lib", "docker.io/org/lib:v1"],
    ]);
  });

  it("pulls a top-level oci chart, its version tag written with _ for +", async () => {
    const r = await resolveChart(
      {
        type: "oci",
        oci: `oci://${host}/${base}/lib`,
        reference: { registry: host, repository: `${base}/lib` },
        version: "2.0.0+build.1",
      },
      {
        workDir: path.join(work, "w2"),
        configDir: work,
        pullOci: ociChartPuller((registry, repository) => registryRepository(client, registry, repository)),
      },
    );
    expect(r).toMatchObject({
      name: "lib",
      version: "2.0.0+build.1",
      sha256: pushed.get("2.0.0+build.1")!.chart.sha256,
      pinned: { digest: pushed.get("2.0.0+build.1")!.artifact.manifestDescriptor.digest },
    });
    expect(await readFile(r.file)).toEqual(await readFile(pushed.get("2.0.0+build.1")!.chart.file));
  });

  it("lists the versions there are when no tag satisfies the range", async () => {
    await expect(
      ociChartPuller((registry, repository) => registryRepository(client, registry, repository))(
        { name: "lib", version: "^3", repository: `oci://${host}/${base}` },
        work,
      ),
    ).rejects.toThrow(`no version satisfies "^3"; the repository has 2.0.0+build.1, 1.1.0, 1.0.1, 1.0.0`);
  });
});
