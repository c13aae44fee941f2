/**
 * Parsers of what gem and chart sources serve, on generated input: a compact-index `info` file is
 * entries or a CompactIndexFormatError naming its line; chart values (any YAML-shaped data, in a
 * chart with subcharts) give discovered images that all parse as references, never an exception.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseReference } from "../../src/oci/reference.js";
import type { ChartTree } from "../../src/sources/charts/archive.js";
import { parseYamlMapping } from "../../src/sources/charts/chart-yaml.js";
import { ChartError } from "../../src/sources/charts/errors.js";
import { chartValuesOverride, discoverImages } from "../../src/sources/charts/index.js";
import { CompactIndexFormatError, formatInfo, parseInfo } from "../../src/sources/gems/compact-index.js";

const SHA = "c".repeat(64);

const infoLine = fc.oneof(
  fc.string({ unit: "binary", maxLength: 120 }),
  fc
    .tuple(
      fc.stringMatching(/^[0-9a-z.]{1,10}$/),
      fc.option(fc.stringMatching(/^[a-z0-9_-]{1,12}$/), { nil: undefined }),
      fc.array(fc.tuple(fc.stringMatching(/^[A-Za-z0-9_.-]{1,10}$/), fc.string({ maxLength: 12 })), {
        maxLength: 3,
      }),
      fc.array(fc.tuple(fc.constantFrom("checksum", "ruby", "rubygems", "x"), fc.string({ maxLength: 70 })), {
        maxLength: 3,
      }),
      fc.boolean(),
    )
    .map(([v, plat, deps, meta, withSum]) => {
      const fields = [...meta.map(([k, x]) => `${k}:${x}`), ...(withSum ? [`checksum:${SHA}`] : [])];
      return `${v}${plat ? `-${plat}` : ""} ${deps.map(([n, r]) => `${n}:${r}`).join(",")}|${fields.join(",")}`;
    }),
);

function parseOrFormatError(text: string) {
  try {
    return parseInfo(text);
  } catch (err) {
    if (!(err instanceof CompactIndexFormatError)) throw err;
    expect(err.message).toMatch(/^line \d+: /);
    return undefined;
  }
}

describe("compact index info parser (property)", () => {
  it("entries or a CompactIndexFormatError naming the line, for any text", () => {
    fc.assert(
      fc.property(fc.array(infoLine, { maxLength: 6 }), fc.boolean(), (lines, header) => {
        parseOrFormatError(`${header ? "---\n" : ""}${lines.join("\n")}\n`);
      }),
      { numRuns: 3000 },
    );
  });

  it("what it parses formats to a text that parses and formats to itself", () => {
    fc.assert(
      fc.property(fc.array(infoLine, { maxLength: 6 }), (lines) => {
        const entries = parseOrFormatError(`---\n${lines.join("\n")}\n`);
        // formatting normalizes (sorted dependencies, ">= 0" for no requirement): once is enough
        if (entries) expect(formatInfo(parseInfo(formatInfo(entries)))).toBe(formatInfo(entries));
      }),
      { numRuns: 2000 },
    );
  });
});

const keyName = fc.constantFrom(
  "image",
  "repository",
  "tag",
  "digest",
  "registry",
  "images",
  "sub",
  "x",
  "global",
);
const imageish = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom("busybox:1.37", "ghcr.io/org/app", "Bad Ref", `app@sha256:${"a".repeat(64)}`, "", " "),
  fc.integer(),
  fc.double(),
);
const { values } = fc.letrec((tie) => ({
  values: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    imageish,
    fc.constant(null),
    fc.boolean(),
    fc.array(tie("values"), { maxLength: 3 }),
    fc.dictionary(keyName, tie("values"), { maxKeys: 5 }),
  ),
}));

function chart(name: string, vals: unknown, subcharts: ChartTree[] = [], appVersion?: string): ChartTree {
  return {
    metadata: {
      apiVersion: "v2",
      name,
      version: "1.0.0",
      ...(appVersion !== undefined && { appVersion }),
      dependencies: subcharts.map((s) => ({
        name: s.metadata.name,
        version: "1.0.0",
        ...(s.metadata.name === "sub" && { alias: "sub" }),
      })),
      raw: {},
    } as ChartTree["metadata"],
    values: vals as Record<string, unknown>,
    subcharts,
  };
}

describe("chart values image discovery (property)", () => {
  it("never throws; every image found is a valid reference and has an override", () => {
    fc.assert(
      fc.property(
        values,
        values,
        fc.option(fc.string({ maxLength: 12 }), { nil: undefined }),
        (top, sub, appVersion) => {
          const tree = chart("top", top, [chart("sub", sub, [], appVersion)], appVersion);
          const warnings: string[] = [];
          const found = discoverImages(tree, warnings);
          for (const img of found) expect(() => parseReference(img.ref)).not.toThrow();
          const pinned = (ref: string) =>
            `internal.example:5000/${parseReference(ref).repository}@sha256:${"d".repeat(64)}`;
          const yaml = chartValuesOverride(found, pinned);
          if (found.length > 0) expect(yaml).toContain("internal.example:5000");
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("values.yaml whose node contains an alias of itself is a chart error, not a stack overflow", () => {
    for (const [text, where] of [
      ["a: &x\n  b: *x\n", "a.b"],
      ["image: &i\n  repository: app\n  tags: [*i]\n", "image.tags.0"],
    ] as const) {
      expect(() => parseYamlMapping(text, "c.tgz:c/values.yaml")).toThrow(ChartError);
      expect(() => parseYamlMapping(text, "c.tgz:c/values.yaml")).toThrow(
        `c.tgz:c/values.yaml is not valid YAML for Helm: ${where} contains an alias of itself`,
      );
    }
    // a shared, non-cyclic alias is fine
    expect(parseYamlMapping("a: &x { repository: app }\nb: *x\n", "values.yaml")).toEqual({
      a: { repository: "app" },
      b: { repository: "app" },
    });
  });
});
