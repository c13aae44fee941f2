import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigValidationError, loadImportConfig, parseImportConfig } from "../../src/config/index.js";

function problemsOf(text: string): string[] {
  try {
    parseImportConfig(text, "/site/import.yaml");
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigValidationError);
    return (err as ConfigValidationError).lines;
  }
  throw new Error("expected a ConfigError");
}

describe("import config", () => {
  it("reads registries and normalized mappings", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "airgap-import-config-"));
    const file = path.join(dir, "import.yaml");
    await writeFile(
      file,
      `apiVersion: cinc-airgap/v1
kind: Import
registries:
  - host: registry.internal:5000
    ca: certs/internal-ca.crt
mappings:
  - from: docker.io/cincproject/auditor
    to: scanner/auditor
  - from: cincproject
    to: cinc
`,
    );
    expect(await loadImportConfig(file)).toEqual({
      file,
      registries: [
        {
          host: "registry.internal:5000",
          ca: path.join(dir, "certs/internal-ca.crt"),
          insecure: false,
          plainHTTP: false,
        },
      ],
      mappings: [
        { from: "docker.io/cincproject/auditor", to: "scanner/auditor" },
        { from: "docker.io/cincproject", to: "cinc" },
      ],
    });
  });

  it("accepts a bundle config and uses only its registries", () => {
    const config = parseImportConfig(
      `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: b, version: "1" }
registries:
  - host: registry.internal:5000
    plainHTTP: true
images:
  - ref: alpine
`,
      "/site/bundle.config.yaml",
    );
    expect(config).toEqual({
      file: "/site/bundle.config.yaml",
      registries: [{ host: "registry.internal:5000", insecure: false, plainHTTP: true }],
      mappings: [],
    });
  });

  it("reads a registry's path prefix (trailing slash dropped) and refuses unsafe ones", () => {
    const config = (prefix: string) => `apiVersion: cinc-airgap/v1
kind: Import
registries:
  - host: artifactory.internal
    pathPrefix: ${JSON.stringify(prefix)}
`;
    expect(parseImportConfig(config("/artifactory/api/docker/docker-local/"), "/site/import.yaml")).toEqual({
      file: "/site/import.yaml",
      registries: [
        {
          host: "artifactory.internal",
          insecure: false,
          plainHTTP: false,
          pathPrefix: "/artifactory/api/docker/docker-local",
        },
      ],
      mappings: [],
    });
    for (const bad of [
      "artifactory/api",
      "/",
      "/a/../b",
      "/a/..",
      "/a/./b",
      "/a//b",
      "/a?x=1",
      "/a#top",
      "/a/%2e%2e/b",
      "/a b",
      "https://host/a",
    ]) {
      expect(problemsOf(config(bad)), bad).toEqual([
        expect.stringMatching(
          /^\/site\/import\.yaml:5:17: registries\[0\]\.pathPrefix: expected an absolute URL path without query, fragment, percent escapes or '\.'\/'\.\.' segments/,
        ),
      ]);
    }
  });

  it("still validates a bundle config given as import config", () => {
    expect(problemsOf("apiVersion: cinc-airgap/v1\nkind: Bundle\nmetadata: { name: b }\n")).toEqual([
      '/site/import.yaml:3:11: metadata.version: missing required key "version"',
    ]);
  });

  it("locates bad mappings, duplicates and credentials", () => {
    const text = `apiVersion: cinc-airgap/v1
kind: Import
registries:
  - host: https://registry.internal
    auth: abc
mappings:
  - from: docker.io/x:1
    to: Scanner
  - from: docker.io/a
    to: a
  - from: a
    to: b
  - form: c
    to: d
`;
    expect(problemsOf(text)).toEqual([
      "/site/import.yaml:4:11: registries[0].host: expected host[:port] without a scheme or path, e.g. registry.example:5000",
      expect.stringMatching(
        /^\/site\/import\.yaml:5:5: registries\[0\]\.auth: unknown key "auth": registry credentials never go in this file/,
      ),
      '/site/import.yaml:7:11: mappings[0].from: invalid mapping source "docker.io/x:1": a mapping names a repository, without a tag',
      "/site/import.yaml:8:9: mappings[0].to: expected a repository path under the target registry, e.g. scanner/auditor",
      '/site/import.yaml:13:5: mappings[3].form: unknown key "form" (did you mean "from"?)',
    ]);
    expect(
      problemsOf(
        text
          .replace("https://", "")
          .replace("    auth: abc\n", "")
          .replace("x:1", "x")
          .replace("Scanner", "s")
          .replace("form", "from"),
      ),
    ).toEqual([
      "/site/import.yaml:10:11: mappings[2].from: duplicate mapping for docker.io/a, already at mappings[1]",
    ]);
  });

  it("says which kinds exist when kind is wrong", () => {
    expect(problemsOf("apiVersion: cinc-airgap/v1\nkind: Export\n")).toEqual([
      '/site/import.yaml:2:7: kind: expected "Import", got the string "Export"',
    ]);
  });
});
