/**
 * Profiles with mixed git/url/path dependencies two levels deep, resolved against the real git
 * (smart HTTP) and static HTTP test servers; inspec.lock and vendor/ checked field by field against
 * InSpec v6.8.24's format; archives byte-identical across runs; cycles and bad pins refused.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { IntegrityError } from "../../src/errors.js";
import { type ProfileEntry, resolveProfiles } from "../../src/profiles/resolve.js";
import { needEnv } from "../helpers/env.js";
import { makeGitRepo, type TestGitRepo } from "../helpers/git.js";

const uid = `${process.pid}-${Date.now().toString(36)}`;

function inspecYml(name: string, version: string, depends: Record<string, string>[] = []): string {
  let y = `name: ${name}\ntitle: ${name}\nversion: ${version}\nsupports:\n  - platform: os\n`;
  if (depends.length) {
    y += "depends:\n";
    for (const d of depends) {
      y += Object.entries(d)
        .map(([k, v], i) => `${i === 0 ? "  - " : "    "}${k}: ${JSON.stringify(v)}`)
        .join("\n");
      y += "\n";
    }
  }
  return y;
}

const control = (id: string) =>
  `control "${id}" do\n  describe true do\n    it { should eq true }\n  end\nend\n`;

async function writeTree(root: string, files: Record<string, string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const full = path.join(root, rel);
    await mkdir(path.dirname(full), { recursive: true });
    await writeFile(full, content);
  }
}

function sha256(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A GitHub-style archive: everything under one top folder. */
async function makeTarball(
  dir: string,
  top: string,
  files: Record<string, string>,
  out: string,
): Promise<string> {
  await writeTree(path.join(dir, top), files);
  execFileSync("tar", ["-czf", out, "-C", dir, top]);
  return sha256(await readFile(out));
}

let work: string;
let httpRoot: string;
let httpUrl: string;
let urlLib: { url: string; sha256: string };
let urlBase: { url: string; sha256: string };
let linuxBase: TestGitRepo;
let helperGit: TestGitRepo;
let mono: TestGitRepo;
let configDir: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "airgap-profiles-"));
  httpRoot = path.join(needEnv("AIRGAP_TEST_HTTP_ROOT"), `profiles-${uid}`);
  httpUrl = `${needEnv("AIRGAP_TEST_HTTP_URL")}/profiles-${uid}`;
  await mkdir(httpRoot, { recursive: true });

  // level 2: a url-only library, served as a tarball with a top folder
  const libSha = await makeTarball(
    path.join(work, "src-lib"),
    "url-lib-1.2.0",
    { "inspec.yml": inspecYml("url-lib", "1.2.0"), "controls/lib.rb": control("lib-1"), ".hidden": "x" },
    path.join(httpRoot, "url-lib-1.2.0.tar.gz"),
  );
  urlLib = { url: `${httpUrl}/url-lib-1.2.0.tar.gz`, sha256: libSha };

  // level 1: a url dependency pinned by sha256
  const baseSha = await makeTarball(
    path.join(work, "src-base"),
    "url-base-0.3.1",
    { "inspec.yml": inspecYml("url-base", "0.3.1"), "controls/base.rb": control("base-1") },
    path.join(httpRoot, "url-base.tgz"),
  );
  urlBase = { url: `${httpUrl}/url-base.tgz`, sha256: baseSha };

  // level 1: a git profile on an annotated tag that depends on the url library
  linuxBase = await makeGitRepo(`linux-base-${uid}`, [
    { files: { "inspec.yml": inspecYml("linux-base", "1.0.0"), "controls/a.rb": control("old") } },
    {
      files: {
        "inspec.yml": inspecYml("linux-base", "2.1.0", [
          { name: "url-lib", url: urlLib.url, version: "~> 1.2" },
        ]),
        "controls/a.rb": control("linux-1"),
        ".kitchen.yml": "dotfile",
      },
      tags: ["v2.1.0"],
      annotated: true,
    },
    { files: { "inspec.yml": inspecYml("linux-base", "3.0.0"), "controls/a.rb": control("newer") } },
  ]);

  // level 2: a git helper on its branch
  helperGit = await makeGitRepo(`helper-${uid}`, [
    { files: { "inspec.yml": inspecYml("helper", "0.1.0"), "libraries/h.rb": "class H; end\n" } },
  ]);

  // level 1: a monorepo profile (relative_path) whose path dependency lives next to it in the repo
  mono = await makeGitRepo(`mono-${uid}`, [
    {
      files: {
        "profiles/ssh/inspec.yml": inspecYml("ssh-hardening", "4.0.0", [
          { name: "common", path: "../common" },
        ]),
        "profiles/ssh/controls/ssh.rb": control("ssh-1"),
        "profiles/common/inspec.yml": inspecYml("common", "1.0.0"),
        "profiles/common/controls/c.rb": control("common-1"),
        "README.md": "monorepo\n",
      },
    },
  ]);

  // the top profile and a local path dependency next to it
  configDir = path.join(work, "config");
  await writeTree(path.join(configDir, "local-base"), {
    "inspec.yml": inspecYml("local-base", "1.1.0", [{ name: "helper", git: helperGit.url, branch: "main" }]),
    "controls/local.rb": control("local-1"),
  });
  await writeTree(path.join(configDir, "wrapper"), {
    "inspec.yml": inspecYml("wrapper", "1.0.0", [
      { name: "linux-base", git: linuxBase.url, tag: "v2.1.0", version: ">= 2.0" },
      { name: "local-base", path: "../local-base" },
      { name: "url-base", url: urlBase.url, sha256: urlBase.sha256 },
      { name: "ssh", git: mono.url, relative_path: "profiles/ssh" },
    ]),
    "controls/wrapper.rb": control("wrapper-1"),
    "README.md": "# wrapper\n",
    // a stale lock and vendor folder are replaced, as `cinc-auditor archive` does
    "inspec.lock": "stale",
    "vendor/old/inspec.yml": "stale",
    ".git/HEAD": "not carried",
  });
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
  await rm(httpRoot, { recursive: true, force: true });
});

describe("profile resolution, vendoring and packaging", () => {
  let out1: string;
  let result: Awaited<ReturnType<typeof resolveProfiles>>;

  beforeAll(async () => {
    out1 = path.join(work, "out1");
    result = await resolveProfiles([{ path: "wrapper" }], { workDir: out1, configDir });
  });

  it("pins the top profile and names the archive like inspec archive", () => {
    expect(result).toHaveLength(1);
    const p = result[0]!;
    expect(p.name).toBe("wrapper");
    expect(p.version).toBe("1.0.0");
    expect(p.fileName).toBe("wrapper-1.0.0.tar.gz");
    expect(p.source).toMatchObject({ path: "wrapper" });
    expect((p.source as { sha256: string }).sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("writes inspec.lock in InSpec's lockfile_version 1 format, nested dependencies included", async () => {
    const p = result[0]!;
    const text = await readFile(path.join(p.dir, "inspec.lock"), "utf8");
    expect(text).toBe(p.lockfile);
    const lock = parseYaml(text);
    const linuxCommit = linuxBase.commits[1]!;
    const monoCommit = mono.commits[0]!;
    const helperCommit = helperGit.commits[0]!;
    const ssh = lock.depends[3];
    const commonSha = ssh.dependencies[0].resolved_source.sha256;
    const localSha = lock.depends[1].resolved_source.sha256;
    expect(lock).toEqual({
      lockfile_version: 1,
      depends: [
        {
          name: "linux-base",
          resolved_source: { git: linuxBase.url, ref: linuxCommit },
          version_constraints: [">= 2.0"],
          dependencies: [
            {
              name: "url-lib",
              resolved_source: { url: urlLib.url, sha256: urlLib.sha256 },
              version_constraints: ["~> 1.2"],
            },
          ],
        },
        {
          name: "local-base",
          resolved_source: { path: "../local-base", sha256: localSha },
          version_constraints: [],
          dependencies: [
            {
              name: "helper",
              resolved_source: { git: helperGit.url, ref: helperCommit },
              version_constraints: [],
            },
          ],
        },
        {
          name: "url-base",
          resolved_source: { url: urlBase.url, sha256: urlBase.sha256 },
          version_constraints: [],
        },
        {
          name: "ssh",
          resolved_source: { git: mono.url, ref: monoCommit, relative_path: "profiles/ssh" },
          version_constraints: [],
          dependencies: [
            {
              name: "common",
              resolved_source: { path: "../common", sha256: commonSha },
              version_constraints: [],
            },
          ],
        },
      ],
    });
    // Ruby's to_yaml layout: document marker, sequences flush with their key, key order as InSpec
    expect(
      text.startsWith("---\nlockfile_version: 1\ndepends:\n- name: linux-base\n  resolved_source:\n"),
    ).toBe(true);
    expect(text).toContain(
      `    git: ${linuxBase.url}\n    ref: ${linuxCommit}\n  version_constraints:\n  - ">= 2.0"\n  dependencies:\n  - name: url-lib\n`,
    );
    expect(text).toContain("  version_constraints: []\n");
  });

  it("vendors every transitive dependency flat under InSpec's cache keys", async () => {
    const p = result[0]!;
    const lock = parseYaml(p.lockfile);
    const vendor = path.join(p.dir, "vendor");
    const monoCommit = mono.commits[0]!;
    const sshKey = sha256(`${monoCommit}profiles/ssh`);
    const expected = [
      linuxBase.commits[1]!, // git: the commit
      urlLib.sha256, // url: sha256 of the archive
      lock.depends[1].resolved_source.sha256, // path folder: sha256 of its archive
      helperGit.commits[0]!,
      urlBase.sha256,
      sshKey, // git + relative_path: sha256(commit + relative_path)
      lock.depends[3].dependencies[0].resolved_source.sha256,
      monoCommit, // the same content again under the commit, which is the key CINC Auditor looks up
    ];
    expect(readdirSync(vendor).sort()).toEqual([...new Set(expected)].sort());
    // git checkout without .git and without dot files; url archives keep their top folder
    expect(readdirSync(path.join(vendor, linuxBase.commits[1]!)).sort()).toEqual(["controls", "inspec.yml"]);
    expect(await readFile(path.join(vendor, urlLib.sha256, "url-lib-1.2.0", "inspec.yml"), "utf8")).toContain(
      "version: 1.2.0",
    );
    expect(existsSync(path.join(vendor, urlLib.sha256, "url-lib-1.2.0", ".hidden"))).toBe(false);
    // relative_path: InSpec's cp_r puts the folder itself inside the key folder
    expect(readdirSync(path.join(vendor, sshKey))).toEqual(["ssh"]);
    expect(await readFile(path.join(vendor, sshKey, "ssh", "inspec.yml"), "utf8")).toContain(
      "name: ssh-hardening",
    );
    expect(readdirSync(path.join(vendor, monoCommit))).toEqual(["ssh"]);
    // the path dependency inside the git repo resolved relative to the depending profile
    const commonKey = lock.depends[3].dependencies[0].resolved_source.sha256;
    expect(await readFile(path.join(vendor, commonKey, "inspec.yml"), "utf8")).toContain("name: common");
    // the stale vendor entry and lock are gone
    expect(existsSync(path.join(vendor, "old"))).toBe(false);
  });

  it("packs a reproducible archive laid out like inspec archive", async () => {
    const p = result[0]!;
    const listing = execFileSync("tar", ["-tvzf", p.tarPath, "--numeric-owner"], { encoding: "utf8" })
      .trim()
      .split("\n");
    const names = execFileSync("tar", ["-tzf", p.tarPath], { encoding: "utf8" }).trim().split("\n");
    expect(names).toEqual([...names].sort());
    expect(names).toContain("inspec.yml");
    expect(names).toContain("inspec.lock");
    expect(names).toContain("controls/wrapper.rb");
    expect(names.some((n) => n.startsWith("./") || n.startsWith("/"))).toBe(false);
    expect(names.some((n) => n.split("/").some((part) => part.startsWith(".")))).toBe(false);
    for (const line of listing) {
      expect(line).toMatch(/^[-d]rw[-x]r-[-x]r-[-x] 0\/0 /);
      expect(line).toContain("1970-01-01");
    }
    const gz = await readFile(p.tarPath);
    expect(gz.readUInt32LE(4)).toBe(0); // gzip header mtime
    expect(sha256(gz)).toBe(p.sha256);
    expect(gz.length).toBe(p.size);
    // a second run elsewhere gives the same bytes
    const again = await resolveProfiles([{ path: path.join(configDir, "wrapper") }], {
      workDir: path.join(work, "out2"),
      configDir: "/",
    });
    expect(again[0]!.sha256).toBe(p.sha256);
    expect(sha256(await readFile(again[0]!.tarPath))).toBe(p.sha256);
  });

  it("reports the dependency tree for the inventory", () => {
    const p = result[0]!;
    expect(p.dependencies.map((d) => [d.name, d.version])).toEqual([
      ["linux-base", "2.1.0"],
      ["local-base", "1.1.0"],
      ["url-base", "0.3.1"],
      ["ssh", "4.0.0"],
    ]);
    expect(p.dependencies[0]!.dependencies[0]).toMatchObject({
      name: "url-lib",
      version: "1.2.0",
      cacheKey: urlLib.sha256,
    });
    expect(p.dependencies[3]!.profileName).toBe("ssh-hardening");
  });
});

describe("top-level sources and pins", () => {
  it("pins a git branch to its commit and a url without sha256 to the archive's sha256", async () => {
    const entries: ProfileEntry[] = [
      { git: linuxBase.url, branch: "main", name: "linux-latest" },
      { url: urlLib.url },
      { git: mono.url, relative_path: "profiles/common" },
    ];
    const r = await resolveProfiles(entries, { workDir: path.join(work, "top"), configDir });
    expect(r.map((p) => [p.name, p.version])).toEqual([
      ["linux-latest", "3.0.0"],
      ["url-lib", "1.2.0"],
      ["common", "1.0.0"],
    ]);
    expect(r[0]!.source).toEqual({ git: linuxBase.url, ref: linuxBase.commits[2] });
    expect(r[1]!.source).toEqual({ url: urlLib.url, sha256: urlLib.sha256 });
    expect(r[2]!.source).toEqual({ git: mono.url, ref: mono.commits[0], relative_path: "profiles/common" });
    expect(await readFile(path.join(r[1]!.dir, "inspec.lock"), "utf8")).toBe(
      "---\nlockfile_version: 1\ndepends: []\n",
    );
  });

  it("reuses a pinned download from the cache once the server no longer has it", async () => {
    const cacheDir = path.join(work, "cache");
    const file = path.join(httpRoot, "cached.tgz");
    await writeFile(file, await readFile(path.join(httpRoot, "url-base.tgz")));
    const entry: ProfileEntry = { url: `${httpUrl}/cached.tgz`, sha256: urlBase.sha256 };
    const first = await resolveProfiles([entry], {
      workDir: path.join(work, "cache-1"),
      configDir,
      cacheDir,
    });
    await rm(file);
    const second = await resolveProfiles([entry], {
      workDir: path.join(work, "cache-2"),
      configDir,
      cacheDir,
    });
    expect(second[0]!.sha256).toBe(first[0]!.sha256);
    expect(second[0]!.source).toEqual({ url: entry.url, sha256: urlBase.sha256 });
  });

  it("refuses a url whose sha256 differs from the pin, naming the url", async () => {
    const wrong = "0".repeat(64);
    const err = await resolveProfiles([{ url: urlBase.url, sha256: wrong }], {
      workDir: path.join(work, "bad"),
      configDir,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as IntegrityError).code).toBe("DIGEST_MISMATCH");
    expect((err as Error).message).toContain(urlBase.url);
    expect((err as Error).message).toContain(urlBase.sha256);
    expect((err as Error).message).toContain(wrong);
  });

  it("refuses a dependency cycle and names the chain", async () => {
    const dir = path.join(work, "cycle");
    await writeTree(dir, {
      "a/inspec.yml": inspecYml("prof-a", "1.0.0", [{ name: "prof-b", path: "../b" }]),
      "b/inspec.yml": inspecYml("prof-b", "1.0.0", [{ name: "prof-c", path: "../c" }]),
      "c/inspec.yml": inspecYml("prof-c", "1.0.0", [{ name: "prof-a", path: "../a" }]),
    });
    const err = await resolveProfiles([{ path: "a" }], {
      workDir: path.join(work, "cycle-out"),
      configDir: dir,
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe(
      "Dependency prof-a would cause a dependency cycle: prof-a -> prof-b -> prof-c -> prof-a",
    );
  });

  it("refuses a dependency whose version does not match the constraint", async () => {
    const dir = path.join(work, "constraint");
    await writeTree(dir, {
      "top/inspec.yml": inspecYml("top", "1.0.0", [
        { name: "linux-base", git: linuxBase.url, tag: "v2.1.0", version: "~> 3.0" },
      ]),
    });
    const err = await resolveProfiles([{ path: "top" }], {
      workDir: path.join(work, "constraint-out"),
      configDir: dir,
    }).catch((e: unknown) => e);
    expect((err as Error).message).toContain("The profile linux-base from");
    expect((err as Error).message).toContain("has a version 2.1.0 which doesn't match ~> 3.0");
  });

  it("refuses one name and version from two different contents", async () => {
    const dir = path.join(work, "conflict");
    await writeTree(dir, {
      "top/inspec.yml": inspecYml("top", "1.0.0", [
        { name: "one", path: "../p1" },
        { name: "two", path: "../p2" },
      ]),
      "p1/inspec.yml": inspecYml("p1", "1.0.0", [{ name: "shared", path: "../x1" }]),
      "p2/inspec.yml": inspecYml("p2", "1.0.0", [{ name: "shared", path: "../x2" }]),
      "x1/inspec.yml": inspecYml("shared", "1.0.0"),
      "x2/inspec.yml": inspecYml("shared", "1.0.0"),
      "x2/controls/extra.rb": control("different"),
    });
    const err = await resolveProfiles([{ path: "top" }], {
      workDir: path.join(work, "conflict-out"),
      configDir: dir,
    }).catch((e: unknown) => e);
    expect((err as Error).message).toContain("conflicting dependencies: shared version 1.0.0 comes from");
    expect((err as Error).message).toContain("(via top -> two -> shared)");
  });

  it("reports a compliance dependency as unsupported offline", async () => {
    const dir = path.join(work, "compliance");
    await writeTree(dir, {
      "top/inspec.yml": inspecYml("top", "1.0.0", [{ name: "cis", compliance: "admin/cis" }]),
    });
    const err = await resolveProfiles([{ path: "top" }], {
      workDir: path.join(work, "compliance-out"),
      configDir: dir,
    }).catch((e: unknown) => e);
    expect((err as Error).message).toContain("compliance: admin/cis");
  });
});
