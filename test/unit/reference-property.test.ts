/**
 * The image reference parser on generated input: every valid reference survives parse∘format
 * unchanged, and any string at all is either a reference or the documented UsageError.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { UsageError } from "../../src/errors.js";
import { formatReference, parseReference, type Reference } from "../../src/oci/reference.js";

const alnum = fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789");
const word = (min: number, max: number) =>
  fc.array(alnum, { minLength: min, maxLength: max }).map((a) => a.join(""));
const separator = fc.constantFrom(".", "_", "__", "-", "--");
/** One repository path component: lowercase words joined by single separators. */
const component = fc
  .tuple(word(1, 6), fc.array(fc.tuple(separator, word(1, 5)), { maxLength: 2 }))
  .map(([head, tail]) => head + tail.map(([s, w]) => s + w).join(""));
/** A host name label: letters and digits, inner dashes allowed. */
const label = fc
  .tuple(word(1, 5), fc.option(word(1, 5), { nil: undefined }))
  .map(([a, b]) => (b === undefined ? a : `${a}-${b}`));
const host = fc.oneof(
  fc.tuple(label, fc.array(label, { minLength: 1, maxLength: 3 })).map(([a, rest]) => [a, ...rest].join(".")),
  fc.constant("localhost"),
  fc
    .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }))
    .map(([a, b]) => `10.0.${a}.${b}`),
  fc.constant("[::1]"),
);
const registry = fc
  .tuple(host, fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }))
  .map(([h, port]) => (port === undefined ? h : `${h}:${port}`));
const tagChar = fc.constantFrom(..."abcXYZ019_.-");
const tag = fc
  .tuple(fc.constantFrom(..."aZ9_"), fc.array(tagChar, { maxLength: 20 }))
  .map(([first, rest]) => first + rest.join(""));
const digest = fc
  .array(fc.constantFrom(..."0123456789abcdef"), { minLength: 64, maxLength: 64 })
  .map((a) => `sha256:${a.join("")}`);

/** References in the normalized form the parser returns. */
const reference: fc.Arbitrary<Reference> = fc
  .record({
    registry,
    path: fc.array(component, { minLength: 1, maxLength: 4 }),
    tag: fc.option(tag, { nil: undefined }),
    digest: fc.option(digest, { nil: undefined }),
  })
  .filter((r) => r.registry !== "index.docker.io" && !r.registry.startsWith("docker.io"))
  .map(({ registry, path, tag, digest }) => {
    const r: Reference = { registry, repository: path.join("/") };
    if (tag !== undefined) r.tag = tag;
    if (digest !== undefined) r.digest = digest;
    if (tag === undefined && digest === undefined) r.tag = "latest";
    return r;
  })
  .filter((r) => r.registry.length + 1 + r.repository.length <= 255);

/** The parser's only documented failure. */
function parseOrUsageError(s: string): Reference | undefined {
  try {
    return parseReference(s);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    expect(err.message).toContain("invalid image reference");
    return undefined;
  }
}

describe("parseReference (property)", () => {
  it("parse(format(r)) = r for generated valid references", () => {
    fc.assert(
      fc.property(reference, (r) => {
        expect(parseReference(formatReference(r))).toEqual(r);
      }),
      { numRuns: 2000 },
    );
  });

  it("format is a fixed point after one parse, for any string that parses", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (s) => {
        const r = parseOrUsageError(s);
        if (r) expect(parseReference(formatReference(r))).toEqual(r);
      }),
      { numRuns: 3000 },
    );
  });

  it("arbitrary and near-valid strings give a reference or a UsageError, nothing else", () => {
    const nearValid = fc
      .tuple(reference, fc.nat(), fc.string({ minLength: 1, maxLength: 3, unit: "binary" }))
      .map(([r, at, junk]) => {
        const s = formatReference(r);
        const i = at % (s.length + 1);
        return s.slice(0, i) + junk + s.slice(i);
      });
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: "binary", maxLength: 300 }), nearValid), (s) => {
        parseOrUsageError(s);
      }),
      { numRuns: 5000 },
    );
  });

  it("non-strings are refused with a UsageError, not a TypeError", () => {
    fc.assert(
      fc.property(fc.anything(), (v) => {
        fc.pre(typeof v !== "string");
        expect(() => parseReference(v as string)).toThrow(UsageError);
      }),
      { numRuns: 200 },
    );
  });
});
