/**
 * The compact index format (rubygems/compact_index) and the static gem source airgap publishes.
 * The integration tests prove `gem install` accepts the result; these pin the format details.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { IntegrityError } from "../../src/errors.js";
import { CompactIndexFormatError, formatInfo, parseInfo } from "../../src/sources/gems/compact-index.js";
import { gemSourceFiles, type PublishableGem } from "../../src/sources/gems/index.js";

const SHA_A = "a".repeat(64);
const SHA_B = "b".repeat(64);

// lines as rubygems.org writes them: requirements sorted and joined with "&", platforms after "-"
const INFO = `---
1.13.10 mini_portile2:~> 2.8.0,racc:~> 1.4|checksum:${SHA_A},ruby:>= 2.6.0,rubygems:>= 1.3.1
1.13.10-x86_64-linux racc:~> 1.4|checksum:${SHA_B},ruby:< 3.2.dev&>= 2.6
2.0.0.rc1 |checksum:${SHA_A}
`;

function md5(text: string | Buffer): string {
  return createHash("md5").update(text).digest("hex");
}

function gem(over: Partial<PublishableGem> & { name: string; version: string }): PublishableGem {
  return {
    platform: "ruby",
    sha256: SHA_A,
    size: 10,
    dependencies: [],
    file: `blob:${over.name}-${over.version}`,
    gemspec: { file: `blob:${over.name}-${over.version}.rz`, sha256: SHA_B, size: 5 },
    ...over,
  };
}

describe("info files", () => {
  it("reads versions, platforms, runtime dependencies with several constraints, and checksums", () => {
    const entries = parseInfo(INFO);
    expect(entries).toEqual([
      {
        version: "1.13.10",
        platform: "ruby",
        dependencies: [
          { name: "mini_portile2", requirement: ["~> 2.8.0"] },
          { name: "racc", requirement: ["~> 1.4"] },
        ],
        checksum: SHA_A,
        ruby: [">= 2.6.0"],
        rubygems: [">= 1.3.1"],
      },
      {
        version: "1.13.10",
        platform: "x86_64-linux",
        dependencies: [{ name: "racc", requirement: ["~> 1.4"] }],
        checksum: SHA_B,
        ruby: ["< 3.2.dev", ">= 2.6"],
      },
      { version: "2.0.0.rc1", platform: "ruby", dependencies: [], checksum: SHA_A },
    ]);
    // and writes them back byte for byte
    expect(formatInfo(entries)).toBe(INFO);
  });

  it("refuses lines without a sha256, with a name that could leave its folder, or with a bad version", () => {
    expect(() => parseInfo("---\n1.0.0 |ruby:>= 0\n")).toThrow(CompactIndexFormatError);
    expect(() => parseInfo(`---\n1.0.0 ../../etc:>= 0|checksum:${SHA_A}\n`)).toThrow(/not a gem name/);
    expect(() => parseInfo(`---\n1.0/x |checksum:${SHA_A}\n`)).toThrow(/not a gem version/);
    expect(() => parseInfo(`---\n1.0.0-x86/../a |checksum:${SHA_A}\n`)).toThrow(/not a gem platform/);
  });
});

describe("gemSourceFiles", () => {
  const gems = [
    gem({
      name: "train-k8s-container",
      version: "1.3.1",
      dependencies: [{ name: "train", requirement: "~> 3.0" }],
    }),
    gem({
      name: "train-k8s-container",
      version: "1.3.0",
      sha256: SHA_B,
      dependencies: [{ name: "train", requirement: "< 4, >= 3.0" }],
      providedTree: ["train", "train-core"],
    }),
    gem({ name: "ffi", version: "1.15.5", platform: "x86_64-linux", ruby: [">= 2.3"] }),
  ];

  it("lays out a static compact-index source: gems/, quick/Marshal.4.8/, info/, names, versions", () => {
    const files = gemSourceFiles(gems);
    expect(files.map((f) => f.path)).toEqual([
      "gems/ffi-1.15.5-x86_64-linux.gem",
      "gems/train-k8s-container-1.3.0.gem",
      "gems/train-k8s-container-1.3.1.gem",
      "info/ffi",
      "info/train",
      "info/train-core",
      "info/train-k8s-container",
      "names",
      "quick/Marshal.4.8/ffi-1.15.5-x86_64-linux.gemspec.rz",
      "quick/Marshal.4.8/train-k8s-container-1.3.0.gemspec.rz",
      "quick/Marshal.4.8/train-k8s-container-1.3.1.gemspec.rz",
      "versions",
    ]);
    const byPath = new Map(files.map((f) => [f.path, f]));
    const content = (p: string) => byPath.get(p)?.bytes?.toString("utf8");
    // versions ascending; requirements sorted and "&"-joined as rubygems.org writes them
    expect(content("info/train-k8s-container")).toBe(
      `---\n1.3.0 train:< 4&>= 3.0|checksum:${SHA_B}\n1.3.1 train:~> 3.0|checksum:${SHA_A}\n`,
    );
    expect(content("info/ffi")).toBe(`---\n1.15.5-x86_64-linux |checksum:${SHA_A},ruby:>= 2.3\n`);
    // the provided gems are answered with no versions, so RubyGems takes the installed ones
    expect(content("info/train")).toBe("---\n");
    expect(content("info/train-core")).toBe("---\n");
    expect(content("names")).toBe("---\nffi\ntrain-k8s-container\n");
    // each line ends with the MD5 of that gem's info file, which Bundler compares
    const infoFfi = content("info/ffi") as string;
    const infoTrain = content("info/train-k8s-container") as string;
    expect(content("versions")).toBe(
      `created_at: 1970-01-01T00:00:00Z\n---\nffi 1.15.5-x86_64-linux ${md5(infoFfi)}\ntrain-k8s-container 1.3.0,1.3.1 ${md5(infoTrain)}\n`,
    );
    // files are the caller's locators, handed back unchanged with their digests
    expect(byPath.get("gems/train-k8s-container-1.3.0.gem")).toEqual({
      path: "gems/train-k8s-container-1.3.0.gem",
      file: "blob:train-k8s-container-1.3.0",
      sha256: SHA_B,
      size: 10,
    });
    expect(byPath.get("quick/Marshal.4.8/ffi-1.15.5-x86_64-linux.gemspec.rz")?.file).toBe(
      "blob:ffi-1.15.5.rz",
    );
    for (const f of files.filter((x) => x.bytes)) {
      expect(f.sha256).toBe(
        createHash("sha256")
          .update(f.bytes as Buffer)
          .digest("hex"),
      );
      expect(f.size).toBe(f.bytes?.length);
    }
  });

  it("gives the same files for the same gems in any order, and takes created_at from the caller", () => {
    const a = gemSourceFiles(gems);
    const b = gemSourceFiles([...gems].reverse());
    expect(b).toEqual(a);
    const dated = gemSourceFiles(gems, { createdAt: "2026-11-30T10:00:00Z" });
    expect(dated.find((f) => f.path === "versions")?.bytes?.toString()).toMatch(
      /^created_at: 2026-11-30T10:00:00Z\n/,
    );
  });

  it("refuses names, versions or platforms that would leave their folder, and two files claiming one gem", () => {
    expect(() => gemSourceFiles([gem({ name: "../evil", version: "1.0" })])).toThrow(IntegrityError);
    expect(() => gemSourceFiles([gem({ name: "ok", version: "1.0/../../x" })])).toThrow(IntegrityError);
    expect(() => gemSourceFiles([gem({ name: "ok", version: "1.0", platform: "x/../../y" })])).toThrow(
      IntegrityError,
    );
    expect(() =>
      gemSourceFiles([
        gem({ name: "ok", version: "1.0", dependencies: [{ name: "../up", requirement: ">= 0" }] }),
      ]),
    ).toThrow(IntegrityError);
    expect(() =>
      gemSourceFiles([
        gem({ name: "ok", version: "1.0" }),
        gem({ name: "ok", version: "1.0", sha256: SHA_B }),
      ]),
    ).toThrow(/two different files claim to be gem ok-1.0/);
    // the same gem twice (two bundles carrying it) is one gem
    expect(
      gemSourceFiles([gem({ name: "ok", version: "1.0" }), gem({ name: "ok", version: "1.0" })]),
    ).toHaveLength(5);
  });
});
