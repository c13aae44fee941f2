import { describe, expect, it } from "vitest";
import { UsageError } from "../../src/errors.js";
import { formatReference, parseReference } from "../../src/oci/reference.js";
import {
  findCollisions,
  type MappingOptions,
  mapReference,
  normalizeRepositoryPrefix,
  parseRegistryTarget,
} from "../../src/targets/index.js";

const D1 = `sha256:${"1".repeat(64)}`;
const D2 = `sha256:${"2".repeat(64)}`;

function map(source: string, opts: MappingOptions): string {
  return formatReference(mapReference(parseReference(source), opts));
}

describe("parseRegistryTarget", () => {
  it("splits host:port from the repository prefix", () => {
    expect(parseRegistryTarget("registry.internal:5000/team/x")).toEqual({
      registry: "registry.internal:5000",
      prefix: "team/x",
    });
    expect(parseRegistryTarget("registry.internal:5000")).toEqual({
      registry: "registry.internal:5000",
      prefix: "",
    });
    expect(parseRegistryTarget("harbor.example/proj/")).toEqual({
      registry: "harbor.example",
      prefix: "proj",
    });
    expect(parseRegistryTarget("[::1]:5000/a")).toEqual({ registry: "[::1]:5000", prefix: "a" });
  });

  it("rejects schemes, bad ports and invalid prefixes as usage errors", () => {
    expect(() => parseRegistryTarget("https://registry.internal")).toThrow(/without "https:\/\/"/);
    expect(() => parseRegistryTarget("https://registry.internal")).toThrow(UsageError);
    expect(() => parseRegistryTarget("registry.internal:port/x")).toThrow(/is not host\[:port\]/);
    expect(() => parseRegistryTarget("registry.internal/Team")).toThrow(/prefix "Team"/);
    expect(() => parseRegistryTarget("")).toThrow(/it is empty/);
  });
});

describe("mapReference", () => {
  const target = { registry: "registry.internal:5000", prefix: "team" };

  it("puts the source repository under the prefix, keeping tag and digest", () => {
    expect(map("docker.io/cincproject/auditor:6.8.24", target)).toBe(
      "registry.internal:5000/team/cincproject/auditor:6.8.24",
    );
    expect(map(`ghcr.io/org/x:1.0@${D1}`, target)).toBe(`registry.internal:5000/team/org/x:1.0@${D1}`);
    expect(map(`ghcr.io/org/x@${D1}`, target)).toBe(`registry.internal:5000/team/org/x@${D1}`);
    expect(map("quay.io/a/b:1", { registry: "r.example" })).toBe("r.example/a/b:1");
  });

  it("keeps library/ for Docker Hub official images", () => {
    expect(map("busybox:1.37", target)).toBe("registry.internal:5000/team/library/busybox:1.37");
  });

  it("drops the source port from the path but keeps the tag", () => {
    expect(map("localhost:5000/x/y:2", target)).toBe("registry.internal:5000/team/x/y:2");
  });

  it("adds the source registry as a path component with keepSourceRegistry", () => {
    const opts = { ...target, keepSourceRegistry: true };
    expect(map("docker.io/cincproject/auditor:6.8.24", opts)).toBe(
      "registry.internal:5000/team/docker.io/cincproject/auditor:6.8.24",
    );
    expect(map("127.0.0.1:5000/x:1", opts)).toBe("registry.internal:5000/team/127.0.0.1-5000/x:1");
  });

  it("flattens to one component after the prefix", () => {
    const opts = { ...target, flatten: true };
    expect(map("docker.io/cincproject/auditor:6.8.24", opts)).toBe(
      "registry.internal:5000/team/cincproject-auditor:6.8.24",
    );
    expect(map("busybox:1.37", opts)).toBe("registry.internal:5000/team/library-busybox:1.37");
    expect(map("ghcr.io/a/b/c:1", { ...opts, keepSourceRegistry: true })).toBe(
      "registry.internal:5000/team/ghcr.io-a-b-c:1",
    );
    expect(map("ghcr.io/a/b:1", { registry: "r.example", flatten: true })).toBe("r.example/a-b:1");
  });

  it("lets the longest matching mapping win, at component boundaries, without the prefix", () => {
    const opts: MappingOptions = {
      ...target,
      flatten: true,
      mappings: [
        { from: "docker.io/cincproject", to: "cinc" },
        { from: "docker.io/cincproject/auditor", to: "scanner/auditor" },
        { from: "ghcr.io", to: "mirrors/ghcr" },
        { from: "cincprojectx", to: "never" },
      ],
    };
    expect(map("docker.io/cincproject/auditor:6.8.24", opts)).toBe(
      "registry.internal:5000/scanner/auditor:6.8.24",
    );
    expect(map("docker.io/cincproject/other:1", opts)).toBe("registry.internal:5000/cinc/other:1");
    expect(map(`ghcr.io/org/tool@${D1}`, opts)).toBe(`registry.internal:5000/mirrors/ghcr/org/tool@${D1}`);
    // "docker.io/cincprojectx" is not under "docker.io/cincproject"; falls back to the default (flattened).
    expect(map("docker.io/cincprojectxy/a:1", opts)).toBe("registry.internal:5000/team/cincprojectxy-a:1");
  });

  it("accepts a mapping source written without a registry", () => {
    expect(
      map("docker.io/cincproject/auditor:1", {
        ...target,
        mappings: [{ from: "cincproject/auditor", to: "a" }],
      }),
    ).toBe("registry.internal:5000/a:1");
    expect(
      map("busybox:1", { ...target, mappings: [{ from: "index.docker.io/library/busybox", to: "bb" }] }),
    ).toBe("registry.internal:5000/bb:1");
  });
});

describe("normalizeRepositoryPrefix", () => {
  it("adds docker.io and keeps prefixes as prefixes", () => {
    expect(normalizeRepositoryPrefix("cincproject")).toBe("docker.io/cincproject");
    expect(normalizeRepositoryPrefix("ghcr.io/org/")).toBe("ghcr.io/org");
    expect(normalizeRepositoryPrefix("localhost:5000/a")).toBe("localhost:5000/a");
    expect(normalizeRepositoryPrefix("ghcr.io")).toBe("ghcr.io");
  });

  it("rejects tags, digests, schemes and bad components", () => {
    expect(() => normalizeRepositoryPrefix("docker.io/x:1")).toThrow(/without a tag/);
    expect(() => normalizeRepositoryPrefix(`docker.io/x@${D1}`)).toThrow(/without a digest/);
    expect(() => normalizeRepositoryPrefix("https://ghcr.io/x")).toThrow(/without a URL scheme/);
    expect(() => normalizeRepositoryPrefix("ghcr.io/Org")).toThrow(/path component "Org"/);
  });
});

describe("findCollisions", () => {
  it("reports two sources sending different content to one target tag", () => {
    expect(
      findCollisions([
        { source: "docker.io/a/tool:1", target: "r/team/tool:1", digest: D1 },
        { source: "ghcr.io/b/tool:1", target: "r/team/tool:1", digest: D2 },
        { source: "quay.io/c/tool:1", target: "r/team/tool:1", digest: D2 },
        { source: "docker.io/a/ok:1", target: "r/team/ok:1", digest: D1 },
        { source: "ghcr.io/b/ok:1", target: "r/team/ok:1", digest: D1 },
      ]),
    ).toEqual([
      `r/team/tool:1 would receive different content from docker.io/a/tool:1 (${D1}), ghcr.io/b/tool:1 (${D2}), quay.io/c/tool:1 (${D2})`,
    ]);
  });

  it("groups pinned targets by tag and ignores digest-only targets", () => {
    expect(
      findCollisions([
        { source: `a.io/x:1@${D1}`, target: `r:5000/x:1@${D1}`, digest: D1 },
        { source: `b.io/x:1@${D2}`, target: `r:5000/x:1@${D2}`, digest: D2 },
        { source: `a.io/y@${D1}`, target: `r:5000/y@${D1}`, digest: D1 },
      ]),
    ).toEqual([
      `r:5000/x:1 would receive different content from a.io/x:1@${D1} (${D1}), b.io/x:1@${D2} (${D2})`,
    ]);
  });

  it("finds the collisions that flatten creates", () => {
    const opts = { registry: "r.example", flatten: true };
    const pairs = [
      { source: "docker.io/a/b-c:1", digest: D1 },
      { source: "docker.io/a-b/c:1", digest: D2 },
    ].map((p) => ({ ...p, target: map(p.source, opts) }));
    expect(findCollisions(pairs)).toHaveLength(1);
    expect(findCollisions(pairs)[0]).toMatch(/^r\.example\/a-b-c:1 would receive different content/);
  });
});
