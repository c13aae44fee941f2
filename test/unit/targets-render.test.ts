import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { formatReference, parseReference } from "../../src/oci/reference.js";
import {
  containerdMirrorPlan,
  type ImportedImage,
  type MappingOptions,
  mapReference,
  renderContainerdHosts,
  renderHelmValues,
  renderImagesJson,
  renderRegistriesConf,
} from "../../src/targets/index.js";

const D1 = `sha256:${"1".repeat(64)}`;
const D2 = `sha256:${"2".repeat(64)}`;
const D3 = `sha256:${"3".repeat(64)}`;
const TARGET = "registry.internal:5000";

function imported(sources: [string, string][], opts: MappingOptions): ImportedImage[] {
  return sources.map(([s, digest]) => {
    const source = parseReference(s);
    const target = mapReference(source, opts);
    return {
      source: formatReference(source),
      target: formatReference(target),
      digest,
      targetPinned: `${target.registry}/${target.repository}@${digest}`,
    };
  });
}

// Given out of order on purpose: every output is sorted.
const IMAGES = imported(
  [
    ["localhost:5000/x/y:1", D1],
    [`ghcr.io/org/tool@${D3}`, D3],
    ["busybox:1.37", D2],
    ["docker.io/cincproject/auditor:6.8.24", D1],
  ],
  { registry: TARGET, prefix: "team", mappings: [{ from: "ghcr.io/org/tool", to: "tools/t" }] },
);

describe("renderImagesJson", () => {
  it("lists every image sorted by source, with the pinned target", () => {
    expect(renderImagesJson(IMAGES)).toBe(`[
  {
    "source": "docker.io/cincproject/auditor:6.8.24",
    "target": "registry.internal:5000/team/cincproject/auditor:6.8.24",
    "digest": "${D1}",
    "targetPinned": "registry.internal:5000/team/cincproject/auditor@${D1}"
  },
  {
    "source": "docker.io/library/busybox:1.37",
    "target": "registry.internal:5000/team/library/busybox:1.37",
    "digest": "${D2}",
    "targetPinned": "registry.internal:5000/team/library/busybox@${D2}"
  },
  {
    "source": "ghcr.io/org/tool@${D3}",
    "target": "registry.internal:5000/tools/t@${D3}",
    "digest": "${D3}",
    "targetPinned": "registry.internal:5000/tools/t@${D3}"
  },
  {
    "source": "localhost:5000/x/y:1",
    "target": "registry.internal:5000/team/x/y:1",
    "digest": "${D1}",
    "targetPinned": "registry.internal:5000/team/x/y@${D1}"
  }
]
`);
    expect(renderImagesJson([])).toBe("[]\n");
  });
});

describe("renderContainerdHosts", () => {
  it("writes one hosts.toml per source host with override_path under a prefix", () => {
    const files = renderContainerdHosts(IMAGES, TARGET, { caFile: "/etc/containerd/certs.d/ca.crt" });
    // ghcr.io's only image went to an explicit mapping a mirror cannot express: no file for it.
    expect([...files.keys()]).toEqual(["certs.d/docker.io/hosts.toml", "certs.d/localhost:5000/hosts.toml"]);
    expect(
      files.get("certs.d/docker.io/hosts.toml"),
    ).toBe(`# docker.io: pull from registry.internal:5000/team (written by airgap bundle import)
server = "https://registry-1.docker.io"

[host."https://registry.internal:5000/v2/team"]
  capabilities = ["pull", "resolve"]
  override_path = true
  ca = "/etc/containerd/certs.d/ca.crt"
`);
    expect(
      files.get("certs.d/localhost:5000/hosts.toml"),
    ).toBe(`# localhost:5000: pull from registry.internal:5000/team (written by airgap bundle import)
server = "https://localhost:5000"

[host."https://registry.internal:5000/v2/team"]
  capabilities = ["pull", "resolve"]
  override_path = true
  ca = "/etc/containerd/certs.d/ca.crt"
`);
  });

  it("uses the registry root without override_path when there is no prefix, and http for plain HTTP", () => {
    const images = imported([["busybox:1", D1]], { registry: "10.0.0.5:5000" });
    expect(renderContainerdHosts(images, "10.0.0.5:5000", { plainHTTP: true, skipVerify: false })).toEqual(
      new Map([
        [
          "certs.d/docker.io/hosts.toml",
          `# docker.io: pull from 10.0.0.5:5000 (written by airgap bundle import)
server = "https://registry-1.docker.io"

[host."http://10.0.0.5:5000"]
  capabilities = ["pull", "resolve"]
`,
        ],
      ]),
    );
  });

  it("names the API root under the registry's path prefix, with override_path even at the root", () => {
    const pathPrefix = "/artifactory/api/docker/docker-local";
    const atRoot = imported([["busybox:1", D1]], { registry: TARGET });
    expect(renderContainerdHosts(atRoot, TARGET, { pathPrefix }).get("certs.d/docker.io/hosts.toml")).toBe(
      `# docker.io: pull from registry.internal:5000 (written by airgap bundle import)
server = "https://registry-1.docker.io"

[host."https://registry.internal:5000/artifactory/api/docker/docker-local/v2"]
  capabilities = ["pull", "resolve"]
  override_path = true
`,
    );
    expect(
      renderContainerdHosts(IMAGES, TARGET, { pathPrefix }).get("certs.d/docker.io/hosts.toml"),
    ).toContain(
      `[host."https://registry.internal:5000/artifactory/api/docker/docker-local/v2/team"]\n  capabilities = ["pull", "resolve"]\n  override_path = true\n`,
    );
    expect(renderRegistriesConf(IMAGES, TARGET, { pathPrefix })).toContain(
      `# registry.internal:5000 serves its API under ${pathPrefix}/v2/, which registries.conf cannot express:`,
    );
  });

  it("mirrors keepSourceRegistry paths and lists images the mirror cannot reach", () => {
    const images = imported(
      [
        ["docker.io/a/b:1", D1],
        ["docker.io/a/c:1", D2],
        ["docker.io/special/x:1", D3],
      ],
      {
        registry: TARGET,
        prefix: "p",
        keepSourceRegistry: true,
        mappings: [{ from: "docker.io/special/x", to: "elsewhere/x" }],
      },
    );
    expect(containerdMirrorPlan(images)).toEqual([
      { sourceHost: "docker.io", path: "p/docker.io", uncovered: [images[2]] },
    ]);
    expect(
      renderContainerdHosts(images, TARGET, { skipVerify: true }).get("certs.d/docker.io/hosts.toml"),
    ).toBe(`# docker.io: pull from registry.internal:5000/p/docker.io (written by airgap bundle import)
server = "https://registry-1.docker.io"

[host."https://registry.internal:5000/v2/p/docker.io"]
  capabilities = ["pull", "resolve"]
  override_path = true
  skip_verify = true

# Not reachable through this mirror (mapped elsewhere); reference these by target name:
#   docker.io/special/x:1 -> registry.internal:5000/elsewhere/x:1
`);
  });

  it("writes nothing for flattened images, which no mirror path can express", () => {
    const images = imported([["docker.io/a/b:1", D1]], { registry: TARGET, prefix: "p", flatten: true });
    expect(renderContainerdHosts(images, TARGET).size).toBe(0);
    expect(containerdMirrorPlan(images)[0]!.uncovered).toEqual(images);
  });
});

describe("renderRegistriesConf", () => {
  it("rewrites every source repository to its target, explicit mappings included", () => {
    expect(
      renderRegistriesConf(IMAGES, TARGET, { plainHTTP: true }),
    ).toBe(`# Imported images under their original names (written by airgap bundle import).
# Install as /etc/containers/registries.conf.d/50-airgap.conf

[[registry]]
prefix = "docker.io/cincproject/auditor"
location = "registry.internal:5000/team/cincproject/auditor"
insecure = true

[[registry]]
prefix = "docker.io/library/busybox"
location = "registry.internal:5000/team/library/busybox"
insecure = true

[[registry]]
prefix = "ghcr.io/org/tool"
location = "registry.internal:5000/tools/t"
insecure = true

[[registry]]
prefix = "localhost:5000/x/y"
location = "registry.internal:5000/team/x/y"
insecure = true
`);
  });

  it("writes one entry per repository and says where the CA goes", () => {
    const images = imported(
      [
        ["docker.io/a/b:1", D1],
        ["docker.io/a/b:2", D2],
      ],
      { registry: TARGET, flatten: true },
    );
    expect(
      renderRegistriesConf(images, TARGET, { caFile: "ca.crt" }),
    ).toBe(`# Imported images under their original names (written by airgap bundle import).
# Install as /etc/containers/registries.conf.d/50-airgap.conf
# Trust the registry's CA: copy ca.crt to /etc/containers/certs.d/registry.internal:5000/ca.crt

[[registry]]
prefix = "docker.io/a/b"
location = "registry.internal:5000/a-b"
`);
  });
});

describe("renderHelmValues", () => {
  it("writes a values file keyed by source reference and source repository", () => {
    const files = renderHelmValues(IMAGES);
    expect([...files.keys()]).toEqual(["values-airgap.yaml"]);
    const text = files.get("values-airgap.yaml")!;
    expect(text).toBe(`# Image overrides for the imported images (written by airgap bundle import).
# images: keyed by source reference; repositories: keyed by source repository.
global:
  imageRegistry: registry.internal:5000
images:
  docker.io/cincproject/auditor:6.8.24:
    registry: registry.internal:5000
    repository: team/cincproject/auditor
    tag: 6.8.24
    digest: ${D1}
    image: registry.internal:5000/team/cincproject/auditor@${D1}
  docker.io/library/busybox:1.37:
    registry: registry.internal:5000
    repository: team/library/busybox
    tag: "1.37"
    digest: ${D2}
    image: registry.internal:5000/team/library/busybox@${D2}
  ghcr.io/org/tool@${D3}:
    registry: registry.internal:5000
    repository: tools/t
    digest: ${D3}
    image: registry.internal:5000/tools/t@${D3}
  localhost:5000/x/y:1:
    registry: registry.internal:5000
    repository: team/x/y
    tag: "1"
    digest: ${D1}
    image: registry.internal:5000/team/x/y@${D1}
repositories:
  docker.io/cincproject/auditor:
    registry: registry.internal:5000
    repository: team/cincproject/auditor
  docker.io/library/busybox:
    registry: registry.internal:5000
    repository: team/library/busybox
  ghcr.io/org/tool:
    registry: registry.internal:5000
    repository: tools/t
  localhost:5000/x/y:
    registry: registry.internal:5000
    repository: team/x/y
`);
    // What Helm will see: tags stay strings, keys survive the round trip.
    const values = parse(text);
    expect(values.images["docker.io/library/busybox:1.37"].tag).toBe("1.37");
    expect(values.images["localhost:5000/x/y:1"].tag).toBe("1");
    expect(values.repositories["ghcr.io/org/tool"]).toEqual({ registry: TARGET, repository: "tools/t" });
  });

  it("honours a file name and registry", () => {
    const files = renderHelmValues([], { fileName: "scanner-values.yaml", registry: "r.example" });
    expect(
      files.get("scanner-values.yaml"),
    ).toBe(`# Image overrides for the imported images (written by airgap bundle import).
# images: keyed by source reference; repositories: keyed by source repository.
global:
  imageRegistry: r.example
images: {}
repositories: {}
`);
  });
});
