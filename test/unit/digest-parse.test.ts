/**
 * The one digest parser: every digest or bare sha256 that can become a file name goes through it, so
 * values from an untrusted inspec.yml, inspec.lock or index can never name a file outside its folder.
 */
import path from "node:path";
import { describe, expect, it } from "vitest";
import { IntegrityError } from "../../src/errors.js";
import { digestHex, digestPath, parseDigest, parseSha256Hex } from "../../src/oci/digest.js";
import { parseLockfile } from "../../src/profiles/lockfile.js";
import { parseMetadata } from "../../src/profiles/metadata.js";

const HEX = "0123456789abcdef".repeat(4);
const HOSTILE = [
  "../../../../tmp/victim.txt",
  `${HEX}/../../x`,
  `${HEX.slice(0, 63)}/`,
  HEX.toUpperCase(),
  `${HEX}\n`,
  ` ${HEX}`,
  "",
  HEX.slice(1),
  `${HEX}0`,
];

describe("digest parser", () => {
  it("accepts sha256: and 64 lowercase hex, and bare 64 lowercase hex", () => {
    expect(parseDigest(`sha256:${HEX}`)).toBe(`sha256:${HEX}`);
    expect(parseSha256Hex(HEX)).toBe(HEX);
    expect(digestHex(`sha256:${HEX}`)).toBe(HEX);
    expect(digestPath("/cache", HEX)).toBe(path.join("/cache", HEX));
    expect(digestPath("/cache", `sha256:${HEX}`)).toBe(path.join("/cache", HEX));
  });

  it.each(HOSTILE)("refuses %j as a bare sha256 and as a digest", (value) => {
    for (const f of [
      () => parseSha256Hex(value, "pin"),
      () => parseDigest(`sha256:${value}`, "pin"),
      () => digestPath("/cache", value, "pin"),
    ]) {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(IntegrityError);
      expect((err as IntegrityError).code).toBe("MALFORMED");
      expect((err as Error).message).toMatch(/^pin /);
    }
  });

  it("refuses other algorithms and non-strings", () => {
    expect(() => parseDigest(`sha512:${HEX}${HEX}`)).toThrow(IntegrityError);
    expect(() => parseDigest(42)).toThrow(/is not a sha256 digest/);
    expect(() => parseSha256Hex(undefined)).toThrow(/is not a sha256 checksum/);
  });
});

describe("digests in profile files", () => {
  it("refuses an inspec.yml url dependency whose sha256 is a path", () => {
    const yml = [
      "name: evil",
      "version: 1.0.0",
      "depends:",
      "  - name: lib",
      "    url: https://example.org/lib.tar.gz",
      "    sha256: ../../../../tmp/victim.txt",
      "",
    ].join("\n");
    expect(() => parseMetadata(yml, "evil: inspec.yml")).toThrow(
      /evil: inspec.yml depends\[0\]: sha256 of https:\/\/example.org\/lib.tar.gz "..\/..\/..\/..\/tmp\/victim.txt" is not a sha256 checksum/,
    );
  });

  it("accepts an upper-case inspec.yml sha256 and keeps it lowercase", () => {
    const yml = `name: ok\nversion: 1.0.0\ndepends:\n  - url: https://x/y.tgz\n    sha256: ${HEX.toUpperCase()}\n`;
    const meta = parseMetadata(yml, "ok");
    expect(meta.depends[0]!.source).toEqual({ kind: "url", url: "https://x/y.tgz", sha256: HEX });
  });

  it("refuses an inspec.lock whose pins are not content names", () => {
    const lock = (source: string) =>
      `lockfile_version: 1\ndepends:\n- name: a\n  resolved_source:\n${source}\n  version_constraints: []\n`;
    expect(() => parseLockfile(lock("    url: https://x/a.tgz\n    sha256: ../../etc"))).toThrow(
      /resolved_source sha256 "..\/..\/etc" is not a sha256 checksum/,
    );
    expect(() => parseLockfile(lock("    git: https://x/a.git\n    ref: ../../etc"))).toThrow(
      /resolved_source ref "..\/..\/etc" is not a full git commit id/,
    );
    expect(parseLockfile(lock(`    path: ../a\n    sha256: ${HEX}`)).depends).toHaveLength(1);
  });
});
