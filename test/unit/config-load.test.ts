import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigValidationError, loadBundleConfig, parseBundleConfig } from "../../src/config/index.js";
import { ConfigError, exitCodeOf } from "../../src/errors.js";

const HEX_A = "a".repeat(64);
const HEX_B = "b".repeat(64);

const FULL = `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: cinc-secure-scanner, version: 2026.11.0, description: Scanner bundle }
platforms: [linux/amd64, linux/arm64]
registries:
  - host: registry.example:5000
    ca: certs/ca.crt
    cert: certs/client.crt
    key: certs/client.key
    insecure: false
    plainHTTP: false
images:
  - ref: docker.io/cincproject/auditor:6.8.24
  - ref: busybox:1.37@sha256:${HEX_A}
    platforms: [linux/amd64]
    carry: [signatures, sboms]
verify:
  - match: "docker.io/cincproject/*"
    key: keys/cinc.pub
profiles:
  - git: https://github.com/dev-sec/linux-baseline.git
    tag: 2.9.0
  - url: https://example.org/profile.tar.gz
    sha256: ${HEX_B}
  - path: profiles/container-baseline
  - supermarket: supermarket://owner/name
    version: 1.2.3
  - oci: oci://ghcr.io/org/profile:1.0
    name: from-oci
charts:
  - repo: https://charts.example.org/
    name: scanner
    version: "^1.2"
  - oci: oci://ghcr.io/org/charts/scanner
    version: 1.2.3
  - git: https://github.com/mitre/kube-secure-scanner.git
    ref: main
    path: helm-charts/standard-scanner
    images: auto
  - path: charts/local-scanner
  - path: charts/no-images
    images: false
gems:
  - name: train-k8s-container
    version: "~> 1.3"
    source: https://rubygems.org
    provided: [train]
  - name: inspec-reporter
files:
  - name: kubectl
    url: https://dl.k8s.io/release/v1.31.4/bin/{os}/{arch}/kubectl
    platforms: [linux/amd64, linux/arm64]
    sha256: { linux/amd64: ${HEX_A}, linux/arm64: ${HEX_B} }
  - name: readme
    url: https://example.org/README.md
`;

function problemsOf(text: string, file = "/cfg/bundle.config.yaml"): string[] {
  try {
    parseBundleConfig(text, file);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect(err).toBeInstanceOf(ConfigValidationError);
    expect(exitCodeOf(err)).toBe(2);
    return (err as ConfigValidationError).lines;
  }
  throw new Error("expected a ConfigError");
}

const HEAD = "apiVersion: cinc-airgap/v1\nkind: Bundle\nmetadata: { name: b, version: '1' }\n";

describe("parseBundleConfig: the full contract example", () => {
  const config = parseBundleConfig(FULL, "/site/cfg/bundle.config.yaml");

  it("resolves paths against the config folder and applies defaults", () => {
    expect(config.file).toBe("/site/cfg/bundle.config.yaml");
    expect(config.dir).toBe("/site/cfg");
    expect(config.metadata).toEqual({
      name: "cinc-secure-scanner",
      version: "2026.11.0",
      description: "Scanner bundle",
    });
    expect(config.platforms).toEqual(["linux/amd64", "linux/arm64"]);
    expect(config.registries).toEqual([
      {
        host: "registry.example:5000",
        ca: "/site/cfg/certs/ca.crt",
        cert: "/site/cfg/certs/client.crt",
        key: "/site/cfg/certs/client.key",
        insecure: false,
        plainHTTP: false,
      },
    ]);
    expect(config.verify).toEqual([{ match: "docker.io/cincproject/*", key: "/site/cfg/keys/cinc.pub" }]);
  });

  it("normalizes images, inheriting platforms and carrying everything by default", () => {
    expect(config.images).toEqual([
      {
        ref: "docker.io/cincproject/auditor:6.8.24",
        reference: { registry: "docker.io", repository: "cincproject/auditor", tag: "6.8.24" },
        platforms: ["linux/amd64", "linux/arm64"],
        carry: ["signatures", "attestations", "sboms", "referrers"],
      },
      {
        ref: `busybox:1.37@sha256:${HEX_A}`,
        reference: {
          registry: "docker.io",
          repository: "library/busybox",
          tag: "1.37",
          digest: `sha256:${HEX_A}`,
        },
        platforms: ["linux/amd64"],
        carry: ["signatures", "sboms"],
      },
    ]);
  });

  it("normalizes every profile, chart, gem and file kind", () => {
    expect(config.profiles).toEqual([
      { type: "git", git: "https://github.com/dev-sec/linux-baseline.git", refKind: "tag", ref: "2.9.0" },
      { type: "url", url: "https://example.org/profile.tar.gz", sha256: HEX_B },
      { type: "path", path: "/site/cfg/profiles/container-baseline" },
      {
        type: "supermarket",
        supermarket: "owner/name",
        version: "1.2.3",
        url: "https://supermarket.chef.io",
      },
      {
        type: "oci",
        reference: { registry: "ghcr.io", repository: "org/profile", tag: "1.0" },
        name: "from-oci",
      },
    ]);
    expect(config.charts).toEqual([
      { type: "repo", repo: "https://charts.example.org/", name: "scanner", version: "^1.2" },
      {
        type: "oci",
        oci: "oci://ghcr.io/org/charts/scanner",
        reference: { registry: "ghcr.io", repository: "org/charts/scanner" },
        version: "1.2.3",
      },
      {
        type: "git",
        git: "https://github.com/mitre/kube-secure-scanner.git",
        ref: "main",
        path: "helm-charts/standard-scanner",
        images: "auto",
      },
      { type: "path", path: "/site/cfg/charts/local-scanner", images: "auto" },
      { type: "path", path: "/site/cfg/charts/no-images", images: false },
    ]);
    expect(config.gems).toEqual([
      { name: "train-k8s-container", version: "~> 1.3", source: "https://rubygems.org", provided: ["train"] },
      { name: "inspec-reporter", source: "https://rubygems.org", provided: [] },
    ]);
    expect(config.files).toEqual([
      {
        name: "kubectl",
        url: "https://dl.k8s.io/release/v1.31.4/bin/{os}/{arch}/kubectl",
        platforms: ["linux/amd64", "linux/arm64"],
        sha256: { "linux/amd64": HEX_A, "linux/arm64": HEX_B },
      },
      { name: "readme", url: "https://example.org/README.md", platforms: [] },
    ]);
  });

  it("accepts a minimal config: absent sections are empty, platforms [] means all", () => {
    const minimal = parseBundleConfig(`${HEAD}images:\n  - ref: alpine\n`, "b.yaml");
    expect(minimal.platforms).toEqual([]);
    expect(minimal.images[0]!.platforms).toEqual([]);
    expect(minimal.images[0]!.reference).toEqual({
      registry: "docker.io",
      repository: "library/alpine",
      tag: "latest",
    });
    expect(minimal.profiles).toEqual([]);
    expect(minimal.files).toEqual([]);
  });
});

describe("parseBundleConfig: problems with file:line:column", () => {
  it("names an unknown top-level key at the key and suggests the closest one", () => {
    expect(problemsOf(`${HEAD}imgaes:\n  - ref: alpine\n`)).toEqual([
      '/cfg/bundle.config.yaml:4:1: imgaes: unknown key "imgaes" (did you mean "images"?)',
    ]);
  });

  it("does not also report a required key as missing when a misspelling of it was found", () => {
    expect(
      problemsOf("apiVersion: cinc-airgap/v1\nkind: Bundle\nmetdata: { name: b, version: '1' }\n"),
    ).toEqual(['/cfg/bundle.config.yaml:3:1: metdata: unknown key "metdata" (did you mean "metadata"?)']);
    expect(problemsOf(`${HEAD}images:\n  - rfe: alpine\n  - {}\n`)).toEqual([
      '/cfg/bundle.config.yaml:5:5: images[0].rfe: unknown key "rfe" (did you mean "ref"?)',
      '/cfg/bundle.config.yaml:6:5: images[1].ref: missing required key "ref"',
    ]);
  });

  it("points at the value of an invalid image ref with its field path", () => {
    const lines = problemsOf(`${HEAD}images:\n  - ref: alpine\n  - ref: ok/x:1\n  - ref: "Bad Ref"\n`);
    expect(lines).toEqual([
      expect.stringMatching(
        /^\/cfg\/bundle\.config\.yaml:7:10: images\[2\]\.ref: invalid image reference "Bad Ref"/,
      ),
    ]);
  });

  it("normalizes the runner image's base, inheriting the top-level platforms, and checks it", () => {
    const cfg = parseBundleConfig(
      `${HEAD}platforms: [linux/amd64]\nrunner:\n  base: node:20-bookworm-slim@sha256:${HEX_A}\n`,
      "/cfg/b.yaml",
    );
    expect(cfg.runner).toEqual({
      base: `node:20-bookworm-slim@sha256:${HEX_A}`,
      reference: {
        registry: "docker.io",
        repository: "library/node",
        tag: "20-bookworm-slim",
        digest: `sha256:${HEX_A}`,
      },
      platforms: ["linux/amd64"],
    });
    expect(parseBundleConfig(`${HEAD}images: [{ ref: alpine }]\n`, "/cfg/b.yaml").runner).toBeUndefined();
    expect(problemsOf(`${HEAD}runner:\n  base: "Bad Ref"\n  platform: [linux/amd64]\n`)).toEqual([
      expect.stringMatching(
        /^\/cfg\/bundle\.config\.yaml:5:9: runner\.base: invalid image reference "Bad Ref"/,
      ),
      expect.stringMatching(
        /^\/cfg\/bundle\.config\.yaml:6:3: runner\.platform: unknown key "platform" \(did you mean "platforms"\?\)/,
      ),
    ]);
  });

  it("points at the parent mapping for a missing key", () => {
    expect(problemsOf(`${HEAD}images:\n  - platforms: [linux/amd64]\n`)).toEqual([
      '/cfg/bundle.config.yaml:5:5: images[0].ref: missing required key "ref"',
    ]);
  });

  it("reports every problem at once, in file order", () => {
    const text = `apiVersion: cinc-airgap/v2
kind: Bundle
metadata: { name: b, version: 1.5 }
platforms: [linux]
images:
  - ref: alpine
    carry: [signatures, sbom]
files:
  - name: f
    url: ftp://x
    sha256: xyz
`;
    expect(problemsOf(text)).toEqual([
      '/cfg/bundle.config.yaml:1:13: apiVersion: expected "cinc-airgap/v1", got the string "cinc-airgap/v2"',
      '/cfg/bundle.config.yaml:3:31: metadata.version: expected a string, got number 1.5 (put it in quotes: "1.5")',
      '/cfg/bundle.config.yaml:4:13: platforms[0]: expected a platform "os/arch" or "os/arch/variant", e.g. "linux/amd64"',
      '/cfg/bundle.config.yaml:7:25: images[0].carry[1]: expected "signatures" or "attestations" or "sboms" or "referrers", got the string "sbom"',
      "/cfg/bundle.config.yaml:10:10: files[0].url: url must be an http:// or https:// URL",
      "/cfg/bundle.config.yaml:11:13: files[0].sha256: expected a sha256 checksum: 64 lowercase hexadecimal characters",
    ]);
  });

  it("refuses credentials with a message that says where they belong", () => {
    const lines = problemsOf(`${HEAD}registries:\n  - host: r.example\n    password: hunter2\n`);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^\/cfg\/bundle\.config\.yaml:6:5: registries\[0\]\.password: unknown key "password": registry credentials never go in this file/,
    );
    expect(lines[0]).toContain("docker config.json");
    expect(lines[0]).toContain("auth.json");
    expect(lines[0]).not.toContain("hunter2");
  });

  it("explains the problems of the profile kind the user meant", () => {
    const text = `${HEAD}profiles:
  - git: https://example.org/p.git
    tag: 1.0.0
    relativ_path: x
  - url: https://example.org/p.tgz
    sha256: nope
  - nothing: here
  - git: https://example.org/q.git
`;
    expect(problemsOf(text)).toEqual([
      '/cfg/bundle.config.yaml:7:5: profiles[0].relativ_path: unknown key "relativ_path" (did you mean "relative_path"?)',
      "/cfg/bundle.config.yaml:9:13: profiles[1].sha256: expected a sha256 checksum: 64 lowercase hexadecimal characters",
      "/cfg/bundle.config.yaml:10:5: profiles[2]: expected one of the keys git, supermarket, url, path, oci to say what kind of source this is",
    ]);
    // Cross-field rules run once the shape is right.
    expect(
      problemsOf(
        `${HEAD}profiles:\n  - git: https://example.org/q.git\n  - git: x\n    tag: a\n    branch: b\n`,
      ),
    ).toEqual([
      "/cfg/bundle.config.yaml:5:5: profiles[0]: a git profile needs one of branch, tag or ref",
      "/cfg/bundle.config.yaml:6:5: profiles[1]: give only one of branch, tag or ref (found branch, tag)",
    ]);
  });

  it("says what a source entry must look like when it is not a mapping", () => {
    expect(problemsOf(`${HEAD}charts:\n  - https://charts.example.org/\n`)).toEqual([
      '/cfg/bundle.config.yaml:5:5: charts[0]: expected a mapping with one of the keys repo, oci, git, path, got the string "https://charts.example.org/"',
    ]);
  });

  it("checks charts by kind", () => {
    const text = `${HEAD}charts:
  - oci: ghcr.io/org/chart
    version: 1.0.0
  - git: https://example.org/c.git
    ref: main
    path: chart
    images: yes
`;
    expect(problemsOf(text)).toEqual([
      '/cfg/bundle.config.yaml:5:10: charts[0].oci: expected "oci://registry/repository"',
      '/cfg/bundle.config.yaml:10:13: charts[1].images: expected "auto" or false, got the string "yes"',
    ]);
  });

  it("checks per-platform file checksums against the file's platforms", () => {
    const text = `${HEAD}platforms: [linux/amd64]
files:
  - name: kubectl
    url: https://dl.k8s.io/bin/{os}/{arch}/kubectl
    sha256: { linux/amd64: ${HEX_A}, linux/arm64: ${HEX_B}, "Linux": ${HEX_A} }
  - name: tool
    url: https://example.org/{os}/{arch}/tool
    platforms: [linux/amd64, linux/arm64]
    sha256: ${HEX_A}
  - name: kubectl
    url: https://example.org/x
`;
    expect(problemsOf(text)).toEqual([
      expect.stringMatching(
        /^\/cfg\/bundle\.config\.yaml:8:\d+: files\[0\]\.sha256\.Linux: invalid key "Linux": expected a platform/,
      ),
    ]);
    const fixed = text.replace(`, "Linux": ${HEX_A}`, "");
    expect(problemsOf(fixed)).toEqual([
      expect.stringMatching(
        /^\/cfg\/bundle\.config\.yaml:8:\d+: files\[0\]\.sha256\["linux\/arm64"\]: platform "linux\/arm64" is not among this file's platforms \(linux\/amd64\)$/,
      ),
      "/cfg/bundle.config.yaml:12:13: files[1].sha256: one checksum cannot match the download of several platforms; give a map of platform to checksum",
      '/cfg/bundle.config.yaml:13:11: files[2].name: duplicate file name "kubectl", already at files[0]',
    ]);
  });

  it("flags duplicates and half-configured mTLS", () => {
    const text = `${HEAD}registries:
  - host: r.example:5000
    cert: c.pem
  - host: R.example:5000
images:
  - ref: alpine
  - ref: docker.io/library/alpine:latest
`;
    expect(problemsOf(text)).toEqual([
      "/cfg/bundle.config.yaml:5:5: registries[0]: cert needs key (the client certificate's private key)",
      '/cfg/bundle.config.yaml:7:11: registries[1].host: duplicate host "R.example:5000", already at registries[0]',
      "/cfg/bundle.config.yaml:10:10: images[1].ref: duplicate image docker.io/library/alpine:latest, already at images[0]",
    ]);
  });

  it("reports YAML syntax errors with line and column", () => {
    const lines = problemsOf(`${HEAD}images:\n  - ref: [unclosed\n`);
    expect(lines[0]).toMatch(/^\/cfg\/bundle\.config\.yaml:\d+:\d+: YAML: /);
    expect(problemsOf(`${HEAD}kind: Bundle\n`)[0]).toMatch(
      /^\/cfg\/bundle\.config\.yaml:4:1: YAML: Map keys must be unique/,
    );
  });

  it("names an empty file, a non-mapping and a wrong kind", () => {
    expect(problemsOf("")).toEqual([
      "/cfg/bundle.config.yaml:1:1: the file is empty; expected a mapping with apiVersion and kind",
    ]);
    expect(problemsOf("- a\n- b\n")).toEqual(["/cfg/bundle.config.yaml:1:1: expected a mapping, got a list"]);
    expect(problemsOf(HEAD.replace("Bundle", "Import"))).toEqual([
      '/cfg/bundle.config.yaml:2:7: kind: expected "Bundle", got the string "Import"',
    ]);
  });
});

describe("loadBundleConfig", () => {
  it("returns the file text unchanged next to the config", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "airgap-config-"));
    const file = path.join(dir, "bundle.config.yaml");
    await writeFile(file, FULL);
    const { config, raw } = await loadBundleConfig(file);
    expect(raw).toBe(FULL);
    expect(config.dir).toBe(dir);
    expect(config.registries[0]!.ca).toBe(path.join(dir, "certs/ca.crt"));
  });

  it("names a missing file as a config error", async () => {
    await expect(loadBundleConfig("/nonexistent/bundle.config.yaml")).rejects.toThrow(
      /cannot read config \/nonexistent\/bundle\.config\.yaml: no such file/,
    );
    await expect(loadBundleConfig("/nonexistent/bundle.config.yaml")).rejects.toBeInstanceOf(ConfigError);
  });
});
