import { describe, expect, it } from "vitest";
import { UsageError } from "../../src/errors.js";
import {
  familiarReference,
  formatReference,
  parseReference,
  refOf,
  repositoryOf,
} from "../../src/oci/reference.js";

const D = `sha256:${"a".repeat(64)}`;

describe("parseReference normalizes like the Docker CLI", () => {
  const table: Array<[string, string]> = [
    ["busybox", "docker.io/library/busybox:latest"],
    ["busybox:1.37", "docker.io/library/busybox:1.37"],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`],
    [`busybox:1.37@${D}`, `docker.io/library/busybox:1.37@${D}`],
    ["cincproject/auditor:6.8.24", "docker.io/cincproject/auditor:6.8.24"],
    ["docker.io/busybox", "docker.io/library/busybox:latest"],
    ["index.docker.io/library/busybox:1", "docker.io/library/busybox:1"],
    ["index.docker.io/busybox", "docker.io/library/busybox:latest"],
    ["ghcr.io/org/charts/scanner:1.2.3", "ghcr.io/org/charts/scanner:1.2.3"],
    ["localhost/foo", "localhost/foo:latest"],
    ["localhost:5000/foo/bar:v1", "localhost:5000/foo/bar:v1"],
    ["127.0.0.1:5000/test/single", "127.0.0.1:5000/test/single:latest"],
    ["[::1]:5000/x:y", "[::1]:5000/x:y"],
    ["Registry/foo", "Registry/foo:latest"],
    ["foo:5000", "docker.io/library/foo:5000"],
    ["my-registry.example/a__b/c-d/e.f:tag_1.0-x", "my-registry.example/a__b/c-d/e.f:tag_1.0-x"],
    ["example.com/sha256-abc:sha256-abc.sig", "example.com/sha256-abc:sha256-abc.sig"],
  ];
  for (const [input, want] of table) {
    it(`${input} → ${want}`, () => {
      expect(formatReference(parseReference(input))).toBe(want);
    });
  }

  it("splits registry, repository, tag and digest", () => {
    expect(parseReference(`127.0.0.1:5000/a/b:1.0@${D}`)).toEqual({
      registry: "127.0.0.1:5000",
      repository: "a/b",
      tag: "1.0",
      digest: D,
    });
    expect(parseReference("busybox")).toEqual({
      registry: "docker.io",
      repository: "library/busybox",
      tag: "latest",
    });
    expect(parseReference(`busybox@${D}`)).toEqual({
      registry: "docker.io",
      repository: "library/busybox",
      digest: D,
    });
  });

  it("gives the repository, the ref to resolve, and the familiar form", () => {
    const r = parseReference(`busybox:1.37@${D}`);
    expect(repositoryOf(r)).toBe("docker.io/library/busybox");
    expect(refOf(r)).toBe(D);
    expect(refOf(parseReference("busybox:1.37"))).toBe("1.37");
    expect(familiarReference(r)).toBe(`busybox:1.37@${D}`);
    expect(familiarReference(parseReference("ghcr.io/a/b:1"))).toBe("ghcr.io/a/b:1");
    expect(familiarReference(parseReference("cincproject/auditor:1"))).toBe("cincproject/auditor:1");
  });
});

describe("parseReference refuses malformed references, naming the input and the problem", () => {
  const bad: Array<[string, RegExp]> = [
    ["", /empty/],
    ["Busybox", /must be lowercase/],
    ["docker.io/library/BusyBox:1", /must be lowercase/],
    ["example.com/Foo", /must be lowercase/],
    ["busybox:", /tag ""/],
    ["busybox:-x", /tag "-x"/],
    [`busybox:${"a".repeat(129)}`, /tag/],
    ["busybox@sha256:abc", /digest "sha256:abc"/],
    [`busybox@sha256:${"A".repeat(64)}`, /digest/],
    ["example.com/a//b", /empty path component/],
    ["example.com/a--/b", /path component "a--"/],
    ["example.com/_a", /path component "_a"/],
    ["example.com:port/a", /port "port"/],
    ["example.com:99999/a", /out of range/],
    ["https://example.com/a", /URL scheme/],
    ["bad host.com/a", /whitespace/],
    ["-bad.com/a", /valid host name/],
    ["example.com/", /repository name is empty/],
    [`example.com/${"a".repeat(260)}`, /longer than 255/],
    ["a".repeat(64), /image ID/],
  ];
  for (const [input, why] of bad) {
    it(JSON.stringify(input.length > 40 ? `${input.slice(0, 40)}…` : input), () => {
      let err: unknown;
      try {
        parseReference(input);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UsageError);
      const msg = (err as Error).message;
      expect(msg).toContain(`"${input}"`);
      expect(msg).toMatch(why);
    });
  }
});
