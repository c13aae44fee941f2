/**
 * Credentials written into config URLs are used to fetch, never carried: a git profile source with
 * `http://user:SECRET@…` and a url source with `?access_token=SECRET` (the test servers ignore
 * both) produce a bundle in which no file, no --json answer and no progress or error line holds
 * either secret.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import { makeGitRepo } from "../helpers/git.js";

const uid = `${process.pid}-${Date.now().toString(36)}`;
const GIT_SECRET = `gitSECRET${uid.replace(/\W/g, "")}`;
const URL_SECRET = `urlSECRET${uid.replace(/\W/g, "")}`;
const control = (id: string) =>
  `control "${id}" do\n  describe true do\n    it { should eq true }\n  end\nend\n`;

let work: string;
let configFile: string;
let gitUrlWithSecret: string;

/** Every file under dir, and the decompressed content of gzip files (profile archives), as text. */
async function allContent(dir: string): Promise<{ file: string; text: string }[]> {
  const out: { file: string; text: string }[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else {
        const bytes = await readFile(p);
        out.push({ file: p, text: bytes.toString("latin1") });
        if (bytes[0] === 0x1f && bytes[1] === 0x8b)
          out.push({ file: `${p} (gunzip)`, text: gunzipSync(bytes).toString("latin1") });
      }
    }
  };
  await walk(dir);
  return out;
}

function expectNoSecret(where: string, text: string): void {
  expect(text.includes(GIT_SECRET), `${where} holds the git password`).toBe(false);
  expect(text.includes(URL_SECRET), `${where} holds the url token`).toBe(false);
}

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "airgap-redact-"));
  const repo = await makeGitRepo(`redact-${uid}`, [
    {
      files: { "inspec.yml": "name: gitprof\nversion: 1.0.0\n", "controls/g.rb": control("g-1") },
      tags: ["v1.0.0"],
    },
  ]);
  gitUrlWithSecret = repo.url.replace("://", `://deploy:${GIT_SECRET}@`);
  const httpRoot = path.join(needEnv("AIRGAP_TEST_HTTP_ROOT"), `redact-${uid}`);
  const src = path.join(work, "src", "urlprof-2.0.0");
  await mkdir(path.join(src, "controls"), { recursive: true });
  await writeFile(path.join(src, "inspec.yml"), "name: urlprof\nversion: 2.0.0\n");
  await writeFile(path.join(src, "controls", "u.rb"), control("u-1"));
  await mkdir(httpRoot, { recursive: true });
  const tgz = path.join(httpRoot, "urlprof.tar.gz");
  execFileSync("tar", ["-czf", tgz, "-C", path.join(work, "src"), "urlprof-2.0.0"]);
  const sha = createHash("sha256")
    .update(await readFile(tgz))
    .digest("hex");
  configFile = path.join(work, "bundle.config.yaml");
  await writeFile(
    configFile,
    `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: redaction, version: 1.0.0 }
profiles:
  - git: ${gitUrlWithSecret}
    tag: v1.0.0
  - url: "${needEnv("AIRGAP_TEST_HTTP_URL")}/redact-${uid}/urlprof.tar.gz?access_token=${URL_SECRET}&x=1"
    sha256: ${sha}
`,
  );
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("credentials in config URLs", () => {
  it("are used to fetch but appear in no file of the bundle, no --json answer and no progress line", async () => {
    const out = path.join(work, "bundle");
    const cache = path.join(work, "cache");
    const json = await runCli(["bundle", "create", "-c", configFile, "-o", out, "--cache", cache, "--json"]);
    expect(json.code, json.stderr).toBe(0);
    expectNoSecret("create --json stdout", json.stdout);
    expectNoSecret("create --json stderr", json.stderr);
    const files = await allContent(out);
    expect(files.some((f) => f.file.endsWith("bundle.json"))).toBe(true);
    for (const f of files) expectNoSecret(f.file, f.text);

    const inventory = JSON.parse(await readFile(path.join(out, "bundle.json"), "utf8")) as {
      config: { sha256: string; text: string };
      items: { source: string; pinned: Record<string, string> }[];
    };
    // recorded without the userinfo and with the token's value replaced; the rest is kept
    const git = inventory.items.find((i) => "git" in i.pinned)!;
    expect(git.pinned.git).toBe(gitUrlWithSecret.replace(`deploy:${GIT_SECRET}@`, ""));
    expect(inventory.config.text).toContain("access_token=REDACTED&x=1");
    expect(inventory.config.sha256).toBe(createHash("sha256").update(inventory.config.text).digest("hex"));

    // plain progress lines (stderr is not a terminal here) and the human summary
    const plain = await runCli([
      "bundle",
      "create",
      "-c",
      configFile,
      "-o",
      path.join(work, "b2.tar"),
      "--cache",
      cache,
    ]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stderr).toContain("fetching");
    expectNoSecret("create stderr", plain.stderr);
    expectNoSecret("create stdout", plain.stdout);
    expectNoSecret("bundle tar", (await readFile(path.join(work, "b2.tar"))).toString("latin1"));

    // the dry-run plan, human and --json
    for (const extra of [[], ["--json"]]) {
      const dry = await runCli([
        "bundle",
        "create",
        "-c",
        configFile,
        "--dry-run",
        "--cache",
        cache,
        ...extra,
      ]);
      expect(dry.code, dry.stderr).toBe(0);
      expectNoSecret("dry-run stdout", dry.stdout);
      expectNoSecret("dry-run stderr", dry.stderr);
    }

    // inspect prints what bundle.json recorded
    const inspect = await runCli(["bundle", "inspect", out, "--json"]);
    expect(inspect.code, inspect.stderr).toBe(0);
    expectNoSecret("inspect", inspect.stdout);
  });

  it("are not shown in errors, and a failed create leaves no output or temporary folder", async () => {
    const bad = path.join(work, "bad.config.yaml");
    await writeFile(
      bad,
      `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: redaction, version: 1.0.0 }
profiles:
  - git: ${gitUrlWithSecret.replace(/redact-[^/]*\.git$/, "no-such-repo.git")}
    tag: v1.0.0
`,
    );
    const out = path.join(work, "bad-out");
    const cache = path.join(work, "cache-bad");
    for (const extra of [[], ["--json"]]) {
      const r = await runCli(["bundle", "create", "-c", bad, "-o", out, "--cache", cache, ...extra]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain("no-such-repo.git");
      expectNoSecret("error stderr", r.stderr);
      expectNoSecret("error stdout", r.stdout);
    }
    await expect(stat(out)).rejects.toThrow();
    const leftovers = (await readdir(cache).catch(() => [] as string[])).filter((n) =>
      n.startsWith("profiles-work-"),
    );
    expect(leftovers).toEqual([]);
  });
});
