/**
 * Image discovery in a chart's values (all three forms, subcharts with the parent's overrides,
 * lists) and the values override that points every one of them at the internal registry.
 */
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { parseReference } from "../../src/oci/reference.js";
import { readChartArchive } from "../../src/sources/charts/archive.js";
import { coalesce } from "../../src/sources/charts/images.js";
import { chartValuesOverride, type DiscoveredImage, discoverImages } from "../../src/sources/charts/index.js";
import { packageChartDir } from "../../src/sources/charts/package.js";
import { minimalChart, writeTree } from "../helpers/charts.js";

const BUSYBOX_DIGEST = `sha256:${"b".repeat(64)}`;

const APP_VALUES = `
image: registry.example:5000/team/app:2.1
worker:
  image:
    repository: cincproject/auditor
    tag: 6.8.24
metrics:
  image:
    registry: ghcr.io
    repository: org/exporter
    tag: "1.10"
    digest: ""
pinned:
  image:
    repository: docker.io/library/busybox
    digest: ${BUSYBOX_DIGEST}
defaulted:
  image:
    repository: org/uses-appversion
    tag: ""
sidecars:
  - name: a
    image: busybox:latest
  - name: b
    image: alpine:3.20
notAnImage:
  image: "{{ .Values.global.image }}"
  repository: https://github.com/org/repo
lib:
  image:
    tag: "9.9"
`;

let root: string;
let images: DiscoveredImage[];
let warnings: string[];
let tree: Awaited<ReturnType<typeof readChartArchive>>;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), "airgap-charts-images-"));
  await writeTree(root, {
    "app/Chart.yaml": `${minimalChart("app", "1.0.0", [{ name: "library", alias: "lib", repository: "file://../library" }])}appVersion: "1.0.0"\n`,
    "app/values.yaml": APP_VALUES,
    // a subchart kept as a folder, the way helm package writes dependencies
    "app/charts/vendored/Chart.yaml": minimalChart("vendored", "3.0.0"),
    "app/charts/vendored/values.yaml": "exporter:\n  image: quay.io/prometheus/node-exporter:v1.8.2\n",
    "library/Chart.yaml": minimalChart("library", "0.2.0"),
    "library/values.yaml": "image:\n  repository: org/library\n  tag: '1.0'\n  pullPolicy: IfNotPresent\n",
  });
  const out = await packageChartDir(path.join(root, "app"), {
    boundary: root,
    boundaryName: "the test folder",
    outDir: root,
    fetchRepo: async () => {
      throw new Error("no repository here");
    },
  });
  tree = await readChartArchive(out.file, "app");
  warnings = [];
  images = discoverImages(tree, warnings);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function internalRef(source: string): string {
  const r = parseReference(source);
  const hex = createHash("sha256").update(source).digest("hex");
  return `reg.internal:5000/mirror/${r.repository}@sha256:${hex}`;
}

describe("image discovery", () => {
  it("finds string and map forms in the chart and its subcharts, with where they are", () => {
    const summary = images.map((i) => [i.chartPath.join("/"), i.valuesPath.join("."), i.form, i.ref]);
    expect(summary).toEqual([
      ["app", "image", "string", "registry.example:5000/team/app:2.1"],
      ["app", "worker.image", "map", "docker.io/cincproject/auditor:6.8.24"],
      ["app", "metrics.image", "map", "ghcr.io/org/exporter:1.10"],
      ["app", "pinned.image", "map", `docker.io/library/busybox@${BUSYBOX_DIGEST}`],
      ["app", "defaulted.image", "map", "docker.io/org/uses-appversion:1.0.0"],
      ["app", "sidecars.0.image", "string", "docker.io/library/busybox:latest"],
      ["app", "sidecars.1.image", "string", "docker.io/library/alpine:3.20"],
      // the parent's lib.image.tag overrides the subchart's default 1.0
      ["app/lib", "image", "map", "docker.io/org/library:9.9"],
      ["app/vendored", "exporter.image", "string", "quay.io/prometheus/node-exporter:v1.8.2"],
    ]);
  });

  it("flags :latest and warns once per such image", () => {
    expect(images.filter((i) => i.latest).map((i) => i.valuesPath.join("."))).toEqual(["sidecars.0.image"]);
    expect(warnings).toEqual([
      'chart app: sidecars.0.image names docker.io/library/busybox:latest; ":latest" moves, so the bundle pins the digest it had when it was created',
    ]);
  });

  it("keeps the map's keys so an override writes the same shape", () => {
    const byPath = (p: string) => images.find((i) => i.valuesPath.join(".") === p)!;
    expect(byPath("metrics.image").fields).toEqual({
      registry: "ghcr.io",
      repository: "org/exporter",
      tag: "1.10",
      digest: "",
    });
    expect(byPath("worker.image").fields).toEqual({ repository: "cincproject/auditor", tag: "6.8.24" });
    expect(byPath("sidecars.1.image").list?.path).toEqual(["sidecars"]);
  });

  it("coalesces like Helm: maps merge, other values replace, null deletes", () => {
    expect(coalesce({ a: { b: 1, c: 2 }, l: [1, 2], d: 1 }, { a: { c: 3 }, l: [9], d: null })).toEqual({
      a: { b: 1, c: 3 },
      l: [9],
    });
  });
});

describe("values override for import", () => {
  it("points every image at the internal registry, pinned by digest, under the chart's own keys", () => {
    const text = chartValuesOverride(images, internalRef);
    expect(text.startsWith("# Generated by airgap")).toBe(true);
    const pin = (ref: string) => internalRef(ref).split("@")[1];
    expect(parse(text)).toEqual({
      image: internalRef("registry.example:5000/team/app:2.1"),
      worker: {
        image: {
          repository: "reg.internal:5000/mirror/cincproject/auditor",
          tag: `6.8.24@${pin("docker.io/cincproject/auditor:6.8.24")}`,
        },
      },
      metrics: {
        image: {
          registry: "reg.internal:5000",
          repository: "mirror/org/exporter",
          digest: pin("ghcr.io/org/exporter:1.10"),
        },
      },
      pinned: {
        image: {
          repository: "reg.internal:5000/mirror/library/busybox",
          digest: pin(`docker.io/library/busybox@${BUSYBOX_DIGEST}`),
        },
      },
      defaulted: {
        image: {
          repository: "reg.internal:5000/mirror/org/uses-appversion",
          tag: `1.0.0@${pin("docker.io/org/uses-appversion:1.0.0")}`,
        },
      },
      // a list is written whole, its other fields kept
      sidecars: [
        { name: "a", image: internalRef("docker.io/library/busybox:latest") },
        { name: "b", image: internalRef("docker.io/library/alpine:3.20") },
      ],
      lib: {
        image: {
          repository: "reg.internal:5000/mirror/org/library",
          tag: `9.9@${pin("docker.io/org/library:9.9")}`,
        },
      },
      vendored: { exporter: { image: internalRef("quay.io/prometheus/node-exporter:v1.8.2") } },
    });
  });

  it("leaves no image outside once Helm merges it over the chart's values", () => {
    const override = parse(chartValuesOverride(images, internalRef)) as Record<string, unknown>;
    const merged = { ...tree, values: coalesce(tree.values, override) as Record<string, unknown> };
    const after = discoverImages(merged);
    expect(after).toHaveLength(images.length);
    for (const img of after) {
      const ref = parseReference(img.ref);
      expect(ref.registry).toBe("reg.internal:5000");
      expect(ref.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    }
  });

  it("refuses an internal reference that is not pinned by digest", () => {
    expect(() => chartValuesOverride(images, () => "reg.internal:5000/x:1")).toThrow(
      /is not pinned by digest/,
    );
  });
});
