/**
 * Git profile sources beyond smart HTTP: file:// URLs, a dumb-HTTP server (no shallow fetch, so the
 * full-clone fallback), abbreviated commits, and refs that do not exist.
 */
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveProfiles } from "../../src/profiles/resolve.js";
import { needEnv } from "../helpers/env.js";
import { makeGitRepo, type TestGitRepo } from "../helpers/git.js";

const uid = `${process.pid}-${Date.now().toString(36)}`;
let work: string;
let repo: TestGitRepo;
let dumbRoot: string;

const yml = (v: string) => `name: gitprof\nversion: ${v}\n`;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "airgap-profile-git-"));
  repo = await makeGitRepo(`gitprof-${uid}`, [
    { files: { "inspec.yml": yml("1.0.0") }, tags: ["1.0.0"] },
    { files: { "inspec.yml": yml("1.1.0"), "controls/x.rb": "# x\n" }, tags: ["1.1.0"], annotated: true },
    { files: { "inspec.yml": yml("2.0.0") } },
  ]);
  // the same bare repository as plain files: git's dumb HTTP protocol
  dumbRoot = path.join(needEnv("AIRGAP_TEST_HTTP_ROOT"), `dumb-${uid}`);
  await cp(repo.bare, path.join(dumbRoot, "gitprof.git"), { recursive: true });
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
  await rm(dumbRoot, { recursive: true, force: true });
});

describe("git profile sources", () => {
  it("reads a file:// repository and pins a lightweight tag", async () => {
    const r = await resolveProfiles([{ git: `file://${repo.bare}`, tag: "1.0.0" }], {
      workDir: path.join(work, "a"),
      configDir: work,
    });
    expect(r[0]!.version).toBe("1.0.0");
    expect(r[0]!.source).toEqual({ git: `file://${repo.bare}`, ref: repo.commits[0] });
  });

  it("falls back to a full clone on a dumb HTTP server and peels an annotated tag", async () => {
    const url = `${needEnv("AIRGAP_TEST_HTTP_URL")}/dumb-${uid}/gitprof.git`;
    const r = await resolveProfiles([{ git: url, tag: "1.1.0" }], {
      workDir: path.join(work, "b"),
      configDir: work,
    });
    expect(r[0]!.version).toBe("1.1.0");
    expect(r[0]!.source).toEqual({ git: url, ref: repo.commits[1] });
  });

  it("resolves an abbreviated commit to the full one", async () => {
    const r = await resolveProfiles([{ git: repo.url, ref: repo.commits[0]!.slice(0, 10) }], {
      workDir: path.join(work, "c"),
      configDir: work,
    });
    expect(r[0]!.source).toEqual({ git: repo.url, ref: repo.commits[0] });
    expect(r[0]!.version).toBe("1.0.0");
  });

  it("names the repository and the missing tag", async () => {
    const err = await resolveProfiles([{ git: repo.url, tag: "9.9.9" }], {
      workDir: path.join(work, "d"),
      configDir: work,
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe(
      `git source ${repo.url}: unable to resolve tag 9.9.9 to a specific git commit`,
    );
  });

  it("names the repository and the missing relative_path", async () => {
    const err = await resolveProfiles([{ git: repo.url, relative_path: "nope" }], {
      workDir: path.join(work, "e"),
      configDir: work,
    }).catch((e: unknown) => e);
    expect((err as Error).message).toContain(
      `Cannot find relative path 'nope' within profile in git repo specified by '${repo.url}'`,
    );
  });
});
