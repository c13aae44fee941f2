/**
 * A packaged chart as Helm's OCI artifact (what `helm push` writes), and a Helm repository index for
 * publishing charts on the isolated side.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { parseChartYaml } from "../../src/sources/charts/chart-yaml.js";
import { goJson, helmChartArtifact, helmRepositoryIndex } from "../../src/sources/charts/index.js";

const CHART_YAML = `apiVersion: v2
name: standard-scanner
description: Standard <container> scanning & more
type: application
version: 0.1.0
appVersion: 1.10
home: https://github.com/mitre/kube-secure-scanner
sources:
  - https://github.com/mitre/kube-secure-scanner
  - https://example.org/mirror
keywords: [security, inspec]
maintainers:
  - name: Security Team
    email: sec@example.org
  - name: Second
annotations:
  org.opencontainers.image.title: not-the-title
  artifacthub.io/license: Apache-2.0
dependencies:
  - name: common-scanner
    version: 0.1.0
    repository: "file://../common-scanner"
unknownKey: dropped
`;

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

describe("helmChartArtifact", () => {
  const meta = parseChartYaml(CHART_YAML, "Chart.yaml");
  const chart = {
    file: "/x.tgz",
    sha256: "a".repeat(64),
    size: 1234,
    name: "standard-scanner",
    version: "0.1.0",
  };

  it("writes the config as Helm marshals chart.Metadata: its field order, strings as written, Go escaping", () => {
    const a = helmChartArtifact(chart, meta);
    expect(a.config.toString()).toBe(
      '{"name":"standard-scanner","home":"https://github.com/mitre/kube-secure-scanner",' +
        '"sources":["https://github.com/mitre/kube-secure-scanner","https://example.org/mirror"],' +
        '"version":"0.1.0","description":"Standard \\u003ccontainer\\u003e scanning \\u0026 more",' +
        '"keywords":["security","inspec"],' +
        '"maintainers":[{"name":"Security Team","email":"sec@example.org"},{"name":"Second"}],' +
        '"apiVersion":"v2","appVersion":"1.10",' +
        '"annotations":{"artifacthub.io/license":"Apache-2.0","org.opencontainers.image.title":"not-the-title"},' +
        '"dependencies":[{"name":"common-scanner","version":"0.1.0","repository":"file://../common-scanner"}],' +
        '"type":"application"}',
    );
    expect(a.configDescriptor).toEqual({
      mediaType: "application/vnd.cncf.helm.config.v1+json",
      digest: sha(a.config),
      size: a.config.length,
    });
  });

  it("writes an OCI manifest with Helm's media types and annotations", () => {
    const a = helmChartArtifact(chart, meta);
    const m = JSON.parse(a.manifest.toString());
    expect(Object.keys(m)).toEqual(["schemaVersion", "mediaType", "config", "layers", "annotations"]);
    expect(m.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
    expect(m.layers).toEqual([
      {
        mediaType: "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
        digest: `sha256:${"a".repeat(64)}`,
        size: 1234,
      },
    ]);
    expect(m.annotations).toEqual({
      "artifacthub.io/license": "Apache-2.0",
      "org.opencontainers.image.authors": "Security Team (sec@example.org), Second",
      "org.opencontainers.image.description": "Standard <container> scanning & more",
      "org.opencontainers.image.source": "https://github.com/mitre/kube-secure-scanner",
      "org.opencontainers.image.title": "standard-scanner",
      "org.opencontainers.image.url": "https://github.com/mitre/kube-secure-scanner",
      "org.opencontainers.image.version": "0.1.0",
    });
    expect(Object.keys(m.annotations)).toEqual(Object.keys(m.annotations).sort());
    expect(a.manifestDescriptor).toEqual({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: sha(a.manifest),
      size: a.manifest.length,
    });
  });

  it("is stable: the same chart gives the same manifest digest; created only when asked", () => {
    const a = helmChartArtifact(chart, meta);
    const b = helmChartArtifact(chart, parseChartYaml(CHART_YAML, "Chart.yaml"));
    expect(b.manifestDescriptor.digest).toBe(a.manifestDescriptor.digest);
    const c = helmChartArtifact(chart, meta, { created: "2026-11-30T10:00:00Z" });
    expect(c.annotations["org.opencontainers.image.created"]).toBe("2026-11-30T10:00:00Z");
  });

  it("refuses metadata of another chart", () => {
    expect(() => helmChartArtifact({ ...chart, version: "0.2.0" }, meta)).toThrow(
      "chart metadata names standard-scanner 0.1.0, but the package is standard-scanner 0.2.0",
    );
  });

  it("escapes like Go's encoding/json", () => {
    expect(goJson({ a: "<&>\u2028" })).toBe('{"a":"\\u003c\\u0026\\u003e\\u2028"}');
  });
});

describe("helmRepositoryIndex", () => {
  it("lists every chart by name, newest first, with digest, URL and metadata", () => {
    const meta = (name: string, version: string) =>
      parseChartYaml(`apiVersion: v2\nname: ${name}\nversion: ${version}\nappVersion: "1.0"\n`, "Chart.yaml");
    const text = helmRepositoryIndex(
      [
        {
          name: "b",
          version: "1.0.0",
          sha256: "1".repeat(64),
          url: "b-1.0.0.tgz",
          chartYamlJson: meta("b", "1.0.0"),
        },
        {
          name: "a",
          version: "0.9.0",
          sha256: "2".repeat(64),
          url: "a-0.9.0.tgz",
          chartYamlJson: meta("a", "0.9.0"),
        },
        {
          name: "a",
          version: "0.10.0",
          sha256: "3".repeat(64),
          url: "a-0.10.0.tgz",
          chartYamlJson: meta("a", "0.10.0"),
        },
      ],
      new Date("2026-11-30T12:00:00Z"),
    );
    const doc = parse(text);
    expect(doc).toEqual({
      apiVersion: "v1",
      entries: {
        a: [
          {
            apiVersion: "v2",
            appVersion: "1.0",
            created: "2026-11-30T12:00:00.000Z",
            digest: "3".repeat(64),
            name: "a",
            urls: ["a-0.10.0.tgz"],
            version: "0.10.0",
          },
          {
            apiVersion: "v2",
            appVersion: "1.0",
            created: "2026-11-30T12:00:00.000Z",
            digest: "2".repeat(64),
            name: "a",
            urls: ["a-0.9.0.tgz"],
            version: "0.9.0",
          },
        ],
        b: [
          {
            apiVersion: "v2",
            appVersion: "1.0",
            created: "2026-11-30T12:00:00.000Z",
            digest: "1".repeat(64),
            name: "b",
            urls: ["b-1.0.0.tgz"],
            version: "1.0.0",
          },
        ],
      },
      generated: "2026-11-30T12:00:00.000Z",
    });
    expect(text.startsWith("apiVersion: v1\nentries:\n")).toBe(true);
  });
});
