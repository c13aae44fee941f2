/**
 * InSpec formats: inspec.lock rendering, inspec.yml parsing, url fetcher transforms, cache keys,
 * the archive name slug, and the reproducible archive writer and archive readers (tar.gz and zip).
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IntegrityError } from "../../src/errors.js";
import {
  commonPrefix,
  extractArchive,
  listFiles,
  packProfile,
  tarHeader,
} from "../../src/profiles/archive.js";
import { parseLockfile, renderLockfile } from "../../src/profiles/lockfile.js";
import { archiveSlug, parseMetadata } from "../../src/profiles/metadata.js";
import { gitCacheKey, transformUrl } from "../../src/sources/profiles/index.js";

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), "airgap-profile-formats-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("inspec.lock", () => {
  it("renders like Ruby's to_yaml of InSpec's lockfile hash", () => {
    const text = renderLockfile([
      {
        name: "linux-baseline",
        resolved_source: {
          git: "https://example.org/linux-baseline.git",
          ref: "a".repeat(40),
          relative_path: "p",
        },
        version_constraints: [">= 2.0", "~> 2.1"],
        dependencies: [
          {
            name: "lib",
            resolved_source: { url: "https://example.org/lib.tar.gz", sha256: "b".repeat(64) },
            version_constraints: [],
          },
        ],
      },
      {
        name: "local",
        resolved_source: { path: "../local", sha256: "c".repeat(64) },
        version_constraints: [],
      },
    ]);
    expect(text).toBe(
      [
        "---",
        "lockfile_version: 1",
        "depends:",
        "- name: linux-baseline",
        "  resolved_source:",
        "    git: https://example.org/linux-baseline.git",
        `    ref: ${"a".repeat(40)}`,
        "    relative_path: p",
        "  version_constraints:",
        '  - ">= 2.0"',
        "  - ~> 2.1",
        "  dependencies:",
        "  - name: lib",
        "    resolved_source:",
        "      url: https://example.org/lib.tar.gz",
        `      sha256: ${"b".repeat(64)}`,
        "    version_constraints: []",
        "- name: local",
        "  resolved_source:",
        "    path: ../local",
        `    sha256: ${"c".repeat(64)}`,
        "  version_constraints: []",
        "",
      ].join("\n"),
    );
    expect(parseLockfile(text).depends[0]!.dependencies![0]!.name).toBe("lib");
  });

  it("refuses other lockfile versions", () => {
    expect(() => parseLockfile("lockfile_version: 2\ndepends: []\n")).toThrow(
      /lockfile_version 2, expected 1/,
    );
  });
});

describe("inspec.yml", () => {
  it("reads name, version and every kind of dependency", () => {
    const meta = parseMetadata(
      [
        "name: wrapper",
        "version: 1.0.0",
        "depends:",
        "  - name: a",
        "    path: ../a",
        "  - name: b",
        "    url: https://x/b.tar.gz",
        `    sha256: ${"AB".repeat(32)}`,
        "  - name: c",
        "    git: https://x/c.git",
        "    tag: v1",
        "    relative_path: sub",
        '    version: "~> 1.0"',
        "  - name: d",
        "    supermarket: owner/d",
        "  - name: e",
        "    compliance: admin/e",
      ].join("\n"),
      "inspec.yml",
    );
    expect(meta.depends.map((d) => d.source)).toEqual([
      { kind: "path", path: "../a" },
      { kind: "url", url: "https://x/b.tar.gz", sha256: "ab".repeat(32) },
      { kind: "git", git: "https://x/c.git", tag: "v1", relative_path: "sub" },
      { kind: "supermarket", supermarket: "owner/d" },
      { kind: "compliance", compliance: "admin/e" },
    ]);
    expect(meta.depends[2]!.versionConstraints).toEqual(["~> 1.0"]);
  });

  it("names the file and the problem", () => {
    expect(() => parseMetadata("version: 1.0.0\n", "p/inspec.yml")).toThrow("p/inspec.yml has no name");
    expect(() => parseMetadata("name: x\nversion: 1.0.0\ndepends:\n  - name: y\n", "p/inspec.yml")).toThrow(
      "p/inspec.yml depends[0]: dependency y has no source",
    );
    expect(() =>
      parseMetadata(
        'name: x\nversion: 1.0.0\ndepends:\n  - name: y\n    path: a\n    version: "=> 1"\n',
        "i.yml",
      ),
    ).toThrow(/i\.yml depends\[0\]: "=> 1" is not a version constraint/);
  });

  it("slugs archive names as inspec archive does", () => {
    expect(archiveSlug("My Profile.v2")).toBe("my-profile_v2");
    expect(archiveSlug(" linux-baseline ")).toBe("linux-baseline");
  });
});

describe("url fetcher transforms (InSpec lib/inspec/fetcher/url.rb)", () => {
  const head = async (remote: string) => `HEAD-OF(${remote})`;
  it.each([
    [
      "https://github.com/dev-sec/linux-baseline",
      "https://github.com/dev-sec/linux-baseline/archive/HEAD-OF(https://github.com/dev-sec/linux-baseline.git).tar.gz",
    ],
    [
      "https://github.com/dev-sec/linux-baseline.git",
      "https://github.com/dev-sec/linux-baseline/archive/HEAD-OF(https://github.com/dev-sec/linux-baseline.git).tar.gz",
    ],
    [
      "https://github.com/hardening-io/tests-os-hardening/tree/2.0",
      "https://github.com/hardening-io/tests-os-hardening/archive/2.0.tar.gz",
    ],
    [
      "https://github.com/hardening-io/tests-os-hardening/tree/48bd4388ddffde68badd83aefa654e7af3231876",
      "https://github.com/hardening-io/tests-os-hardening/archive/48bd4388ddffde68badd83aefa654e7af3231876.tar.gz",
    ],
    [
      "https://bitbucket.org/username/repo",
      "https://bitbucket.org/username/repo/get/HEAD-OF(https://bitbucket.org/username/repo.git).tar.gz",
    ],
    [
      "https://bitbucket.org/username/repo/branch/newbranch",
      "https://bitbucket.org/username/repo/get/newbranch.tar.gz",
    ],
    [
      "https://bitbucket.org/username/repo/commits/95ce1f83d5bbe9eec34c5973f6894617e8d6d8cc",
      "https://bitbucket.org/username/repo/get/95ce1f83d5bbe9eec34c5973f6894617e8d6d8cc.tar.gz",
    ],
    [
      "https://gitlab.com/group/sub/repo/-/tree/v1.2",
      "https://gitlab.com/group/sub/repo/-/archive/v1.2/repo-v1.2.tar.gz",
    ],
    [
      "https://gitlab.com/group/repo",
      "https://gitlab.com/group/repo/-/archive/HEAD-OF(https://gitlab.com/group/repo.git)/repo-HEAD-OF(https://gitlab.com/group/repo.git).tar.gz",
    ],
    [
      "https://github.com/dev-sec/linux-baseline/archive/2.9.0.tar.gz",
      "https://github.com/dev-sec/linux-baseline/archive/2.9.0.tar.gz",
    ],
    ["https://example.org/p.zip", "https://example.org/p.zip"],
  ])("%s", async (input, want) => {
    expect(await transformUrl(input, head)).toBe(want);
  });
});

describe("vendor cache keys (InSpec lib/inspec/fetcher/git.rb#cache_key)", () => {
  it("is the commit, or sha256(commit + relative_path)", () => {
    const c = "0123456789abcdef0123456789abcdef01234567";
    expect(gitCacheKey(c)).toBe(c);
    expect(gitCacheKey(c, "profiles/ssh")).toBe(
      createHash("sha256").update(`${c}profiles/ssh`).digest("hex"),
    );
  });
});

describe("profile archives", () => {
  it("writes ustar headers with every varying field fixed", () => {
    const h = tarHeader("controls/a.rb", "file", 10, 0o644);
    expect(h.length).toBe(512);
    expect(h.subarray(0, 13).toString()).toBe("controls/a.rb");
    expect(h.subarray(257, 263).toString()).toBe("ustar\0");
    expect(h.subarray(265, 297).every((b) => b === 0)).toBe(true); // uname
    expect(h.subarray(297, 329).every((b) => b === 0)).toBe(true); // gname
    expect(h.subarray(136, 147).toString()).toBe("00000000000"); // mtime
    const long = `${"d".repeat(120)}/file.rb`;
    const hl = tarHeader(long, "file", 0, 0o644);
    expect(hl.subarray(0, 7).toString()).toBe("file.rb");
    expect(hl.subarray(345, 465).toString()).toBe("d".repeat(120));
  });

  it("packs the same tree to the same bytes regardless of mtimes and modes, without dot files", async () => {
    const a = path.join(tmp, "a");
    await mkdir(path.join(a, "controls"), { recursive: true });
    await writeFile(path.join(a, "inspec.yml"), "name: a\nversion: 1.0.0\n");
    await writeFile(path.join(a, "controls", "x.rb"), "x");
    await writeFile(path.join(a, ".rubocop.yml"), "dot");
    await mkdir(path.join(a, ".git"));
    await writeFile(path.join(a, ".git", "HEAD"), "dot");
    await symlink("inspec.yml", path.join(a, "link.yml"));
    const p1 = await packProfile(a, path.join(tmp, "a1.tar.gz"));
    execFileSync("touch", ["-d", "2001-02-03", path.join(a, "inspec.yml"), path.join(a, "controls")]);
    execFileSync("chmod", ["600", path.join(a, "controls", "x.rb")]);
    const p2 = await packProfile(a, path.join(tmp, "a2.tar.gz"));
    expect(p2.sha256).toBe(p1.sha256);
    const names = execFileSync("tar", ["-tzf", p1.path], { encoding: "utf8" }).trim().split("\n");
    expect(names).toEqual(["controls/", "controls/x.rb", "inspec.yml", "link.yml"]);
  });

  it("refuses a symbolic link that leaves the profile", async () => {
    const b = path.join(tmp, "b");
    await mkdir(b, { recursive: true });
    await writeFile(path.join(b, "inspec.yml"), "name: b\n");
    await symlink("/etc/passwd", path.join(b, "leak"));
    await expect(packProfile(b, path.join(tmp, "b.tar.gz"))).rejects.toThrow(
      /symbolic link to \/etc\/passwd, outside the profile/,
    );
  });

  it("extracts zip archives (stored and deflated) and finds the top folder", async () => {
    const zip = path.join(tmp, "p.zip");
    execFileSync("python3", [
      "-c",
      `import zipfile
z = zipfile.ZipFile(${JSON.stringify(zip)}, "w")
z.writestr("p-1.0/", "")
z.writestr("p-1.0/inspec.yml", "name: p\\nversion: 1.0.0\\n", compress_type=zipfile.ZIP_DEFLATED)
z.writestr("p-1.0/controls/c.rb", "x" * 5000, compress_type=zipfile.ZIP_DEFLATED)
z.writestr("p-1.0/README.md", "readme", compress_type=zipfile.ZIP_STORED)
z.close()`,
    ]);
    const out = path.join(tmp, "zip-out");
    await extractArchive(zip, out);
    const files = await listFiles(out);
    expect(files).toEqual(["p-1.0/README.md", "p-1.0/controls/c.rb", "p-1.0/inspec.yml"]);
    expect(commonPrefix(files)).toBe("p-1.0/");
    expect(await readFile(path.join(out, "p-1.0", "controls", "c.rb"), "utf8")).toBe("x".repeat(5000));
  });

  it("reports a corrupt zip entry as an integrity error", async () => {
    const zip = path.join(tmp, "bad.zip");
    execFileSync("python3", [
      "-c",
      `import zipfile
z = zipfile.ZipFile(${JSON.stringify(zip)}, "w")
z.writestr("inspec.yml", "name: p\\nversion: 1.0.0\\n" * 50, compress_type=zipfile.ZIP_STORED)
z.close()
b = bytearray(open(${JSON.stringify(zip)}, "rb").read())
b[60] ^= 0xff
open(${JSON.stringify(zip)}, "wb").write(bytes(b))`,
    ]);
    await expect(extractArchive(zip, path.join(tmp, "bad-out"))).rejects.toBeInstanceOf(IntegrityError);
  });

  it("refuses files that are not archives", async () => {
    const f = path.join(tmp, "plain.txt");
    await writeFile(f, "hello");
    await expect(extractArchive(f, path.join(tmp, "x"))).rejects.toThrow(/neither a \.tar\.gz nor a \.zip/);
  });
});
