/**
 * The config loaders on generated documents: any text, any YAML or JSON value, and valid configs
 * with bytes spliced in all end as a config or a ConfigError that names file:line:column, never
 * another exception. Alias bombs ("billion laughs") are refused the same way, quickly.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { parseBundleConfig, parseImportConfig } from "../../src/config/load.js";
import { ConfigError } from "../../src/errors.js";

const FILE = "airgap.yaml";

const VALID_BUNDLE = `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: demo, version: 1.0.0 }
platforms: [linux/amd64]
registries:
  - host: 127.0.0.1:5000
    plainHTTP: true
images:
  - ref: 127.0.0.1:5000/team/app:1.0
  - ref: busybox:1.37
`;

const VALID_IMPORT = `apiVersion: cinc-airgap/v1
kind: Import
registries:
  - host: registry.internal:5000
mappings:
  - from: docker.io/library
    to: mirror/library
`;

function loadOrConfigError(parse: (text: string, file: string) => unknown, text: string): void {
  try {
    parse(text, FILE);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // one problem is the message; several are listed one per line, each with its location
    for (const line of err.details ?? [err.message]) expect(line).toMatch(/^airgap\.yaml:\d+:\d+: /);
    expect(err.exitCode).toBe(2);
  }
}

/** YAML or JSON text of arbitrary values, often shaped like a config. */
const document = fc.oneof(
  fc.string({ unit: "binary", maxLength: 400 }),
  fc.jsonValue({ maxDepth: 4 }).map((v) => stringify(v)),
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? ""),
  fc
    .record({
      apiVersion: fc.oneof(fc.constant("cinc-airgap/v1"), fc.jsonValue()),
      kind: fc.constantFrom("Bundle", "Import", "Other"),
      metadata: fc.jsonValue({ maxDepth: 2 }),
      platforms: fc.jsonValue({ maxDepth: 2 }),
      registries: fc.array(fc.dictionary(fc.constantFrom("host", "plainHTTP", "ca", "x"), fc.jsonValue())),
      images: fc.array(fc.oneof(fc.record({ ref: fc.string() }), fc.jsonValue())),
      mappings: fc.jsonValue({ maxDepth: 2 }),
    })
    .map((v) => stringify(v)),
);

/** A valid config with a few bytes spliced in or cut out somewhere. */
function mutated(valid: string) {
  return fc
    .tuple(fc.nat(), fc.nat({ max: 8 }), fc.string({ maxLength: 6, unit: "binary" }))
    .map(([at, cut, junk]) => {
      const i = at % (valid.length + 1);
      return valid.slice(0, i) + junk + valid.slice(i + cut);
    });
}

describe("config loaders (property)", () => {
  it("the valid configs load (control)", () => {
    expect(parseBundleConfig(VALID_BUNDLE, FILE).images).toHaveLength(2);
    expect(parseImportConfig(VALID_IMPORT, FILE).mappings).toHaveLength(1);
  });

  it("a bundle config, or a ConfigError with file:line:column, for any document", () => {
    fc.assert(
      fc.property(fc.oneof(document, mutated(VALID_BUNDLE)), (text) => {
        loadOrConfigError(parseBundleConfig, text);
      }),
      { numRuns: 600 },
    );
  });

  it("an import config, or a ConfigError with file:line:column, for any document", () => {
    fc.assert(
      fc.property(fc.oneof(document, mutated(VALID_IMPORT), mutated(VALID_BUNDLE)), (text) => {
        loadOrConfigError(parseImportConfig, text);
      }),
      { numRuns: 600 },
    );
  });

  it("refuses an alias bomb at the line of its first alias, quickly, from both loaders", () => {
    const levels = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    const bomb = [
      "apiVersion: cinc-airgap/v1",
      "kind: Bundle",
      `a: &a [${Array(9).fill('"lol"').join(",")}]`,
      ...levels.slice(1).map((l, i) => `${l}: &${l} [${Array(9).fill(`*${levels[i]}`).join(",")}]`),
      "",
    ].join("\n");
    for (const parse of [parseBundleConfig, parseImportConfig]) {
      const started = Date.now();
      let caught: unknown;
      try {
        parse(bomb, FILE);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ConfigError);
      expect((caught as Error).message).toMatch(
        /^airgap\.yaml:4:\d+: YAML: aliases expand to more than 1000/,
      );
      expect(Date.now() - started).toBeLessThan(2000);
    }
  });

  it("self-referencing anchors end as a ConfigError, not a stack overflow", () => {
    for (const text of [
      "apiVersion: cinc-airgap/v1\nkind: Bundle\nmetadata: &m { name: x, version: 1.0.0, self: *m }\n",
      "apiVersion: cinc-airgap/v1\nkind: Bundle\nimages: &i [ *i ]\n",
      "apiVersion: cinc-airgap/v1\nkind: Import\nregistries: &r [ { host: a, x: *r } ]\n",
    ]) {
      loadOrConfigError(parseBundleConfig, text);
      loadOrConfigError(parseImportConfig, text);
    }
  });
});
