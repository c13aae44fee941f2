/**
 * Hostile profile sources through the built CLI, served by the real test servers (nginx static files
 * and git over smart HTTP): each attack is refused with a clear error and exit code 3 (or 2 for a
 * local profile the config did not allow), nothing on the build host is deleted or carried into a
 * bundle, no bundle is written and no temporary folder is left behind.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, statSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliResult, runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import { git, makeGitRepo } from "../helpers/git.js";
import { buildZip, deflated, stored } from "../helpers/zip.js";

const uid = `${process.pid}-${Date.now().toString(36)}`;
const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
const MiB = 1024 ** 2;

let work: string;
let httpRoot: string;
let httpUrl: string;
/** A folder on the "build host" that no remote profile may read or delete from. */
let secretDir: string;
let victim: string;

async function writeTree(root: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    await writeFile(path.join(root, rel), content);
  }
}

/** A tar.gz with everything under one top folder, published on the static server; returns its URL. */
async function publishTarball(
  name: string,
  files: Record<string, string>,
): Promise<{ url: string; sha256: string }> {
  const src = path.join(work, "tarball-src", name);
  await writeTree(path.join(src, name), files);
  const out = path.join(httpRoot, `${name}.tar.gz`);
  execFileSync("tar", ["-czf", out, "-C", src, name]);
  return { url: `${httpUrl}/${name}.tar.gz`, sha256: sha256(await readFile(out)) };
}

async function publish(file: string, bytes: Buffer): Promise<string> {
  await writeFile(path.join(httpRoot, file), bytes);
  return `${httpUrl}/${file}`;
}

const INSPEC_YML = "name: hostile\nversion: 1.0.0\n";

/** A tar.gz written by Python's tarfile, which writes whatever names and links it is told to. */
function pythonTarGz(out: string, script: string): void {
  execFileSync("python3", [
    "-c",
    `import io, tarfile
t = tarfile.open(${JSON.stringify(out)}, "w:gz", compresslevel=9)
def add(name, data=b"", kind=tarfile.REGTYPE, link=""):
    i = tarfile.TarInfo(name); i.type = kind; i.linkname = link; i.size = len(data)
    t.addfile(i, io.BytesIO(data) if data else None)
add("p/inspec.yml", b${JSON.stringify(INSPEC_YML)})
${script}
t.close()`,
  ]);
}

interface Run {
  result: CliResult;
  dir: string;
  bundle: string;
  cache: string;
  tmp: string;
}

/** `bundle create` of a config with only `profilesYaml`, in a fresh folder with its own TMPDIR. */
async function create(name: string, profilesYaml: string, files: Record<string, string> = {}): Promise<Run> {
  const dir = path.join(work, name);
  const tmp = path.join(dir, "tmp");
  await mkdir(tmp, { recursive: true });
  await writeTree(dir, files);
  const config = path.join(dir, "bundle.config.yaml");
  await writeFile(
    config,
    `apiVersion: cinc-airgap/v1\nkind: Bundle\nmetadata: { name: hostile, version: 1.0.0 }\nprofiles:\n${profilesYaml}`,
  );
  const bundle = path.join(dir, "bundle");
  const cache = path.join(dir, "cache");
  const result = await runCli(["bundle", "create", "-c", config, "-o", bundle, "--cache", cache], {
    env: { TMPDIR: tmp },
  });
  return { result, dir, bundle, cache, tmp };
}

/** Bytes under `dir`, following nothing. */
function treeBytes(dir: string): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, d.name);
    if (d.isDirectory()) n += treeBytes(p);
    else if (d.isFile()) n += statSync(p).size;
  }
  return n;
}

/** The refusal a user sees, and no trace of the attempt: no bundle, no work folder, empty TMPDIR. */
function expectRefused(run: Run, code: 2 | 3, message: RegExp): void {
  expect(run.result.code, run.result.stderr).toBe(code);
  expect(run.result.stderr).toMatch(message);
  expect(existsSync(path.join(run.bundle, "bundle.json"))).toBe(false);
  const left = existsSync(run.cache)
    ? readdirSync(run.cache).filter((n) => n.startsWith("profiles-work-"))
    : [];
  expect(left).toEqual([]);
  expect(readdirSync(run.tmp)).toEqual([]);
  // nothing big was written anywhere while refusing
  expect(treeBytes(run.dir)).toBeLessThan(4 * MiB);
}

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "airgap-hostile-"));
  httpRoot = path.join(needEnv("AIRGAP_TEST_HTTP_ROOT"), `hostile-${uid}`);
  httpUrl = `${needEnv("AIRGAP_TEST_HTTP_URL")}/hostile-${uid}`;
  await mkdir(httpRoot, { recursive: true });
  secretDir = path.join(work, "secret");
  await writeTree(secretDir, { "inspec.yml": "name: secret\nversion: 1.0.0\n", id_rsa: "PRIVATE KEY\n" });
  victim = path.join(work, "victim.txt");
  await writeFile(victim, "precious\n");
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
  await rm(httpRoot, { recursive: true, force: true });
});

describe("digests from a fetched inspec.yml", () => {
  it("refuses a dependency sha256 that is a path, and deletes nothing", async () => {
    const lib = await publishTarball("lib", { "inspec.yml": "name: lib\nversion: 1.0.0\n" });
    // the attack: the cache removes the file a pin names when its content differs
    const climb = `${"../".repeat(40)}${victim.slice(1)}`;
    const evil = await publishTarball("evil-dep", {
      "inspec.yml": `name: evil-dep\nversion: 1.0.0\ndepends:\n  - name: lib\n    url: ${lib.url}\n    sha256: ${climb}\n`,
    });
    const run = await create("digest", `  - path: top\n`, {
      "top/inspec.yml": `name: top\nversion: 1.0.0\ndepends:\n  - name: evil-dep\n    url: ${evil.url}\n`,
    });
    expect(await readFile(victim, "utf8")).toBe("precious\n");
    expectRefused(
      run,
      3,
      /evil-dep.*inspec\.yml depends\[0\]: sha256 of .*lib\.tar\.gz ".*" is not a sha256 checksum/,
    );
  });
});

describe("archive limits", () => {
  it("refuses a 52-byte zip whose directory claims 4 GiB, without aborting", async () => {
    const tiny = Buffer.alloc(52);
    tiny.writeUInt32LE(0x04034b50, 0);
    tiny.writeUInt32LE(0x06054b50, 30);
    tiny.writeUInt16LE(1, 38);
    tiny.writeUInt16LE(1, 40);
    tiny.writeUInt32LE(0xfffffff0, 42);
    tiny.writeUInt32LE(0, 46);
    const url = await publish("tiny.zip", tiny);
    const run = await create("tiny-zip", `  - url: ${url}\n`);
    expectRefused(run, 3, /tiny\.zip is not a readable \.zip archive/);
  });

  it("refuses a zip whose entries share one compressed stream (1.3 GB from 66 KB)", async () => {
    const zeros = Buffer.alloc(64 * MiB);
    const shared = deflated("p/f0", zeros);
    const bomb = [shared, ...Array.from({ length: 19 }, (_, i) => ({ ...shared, name: `p/f${i + 1}` }))];
    const bytes = buildZip(bomb, { shareFirst: true });
    expect(bytes.length).toBeLessThan(100_000);
    const url = await publish("overlap.zip", bytes);
    const run = await create("overlap-zip", `  - url: ${url}\n`);
    expectRefused(run, 3, /overlap\.zip: archive refused: zip entries "p\/f0" and "p\/f1" overlap/);
  });

  it("refuses a zip that expands more than 200:1, naming the limit", async () => {
    const url = await publish(
      "ratio.zip",
      buildZip([stored("p/inspec.yml", INSPEC_YML), deflated("p/zeros", Buffer.alloc(16 * MiB))]),
    );
    const run = await create("ratio-zip", `  - url: ${url}\n`);
    expectRefused(
      run,
      3,
      /ratio\.zip: archive refused: 16 MiB uncompressed from \d+ bytes compressed, more than 200:1 \(limit maxRatio\)/,
    );
  });

  it("refuses a zip that declares more than 2 GiB, before writing a byte", async () => {
    const small = deflated("p/huge", Buffer.alloc(1024));
    const url = await publish(
      "total.zip",
      buildZip([stored("p/inspec.yml", INSPEC_YML), { ...small, size: 0xf0000000 }]),
    );
    const run = await create("total-zip", `  - url: ${url}\n`);
    expectRefused(
      run,
      3,
      /total\.zip: archive refused: more than 2048 MiB uncompressed \(limit maxTotalBytes\)/,
    );
  });

  it("refuses a zip entry that climbs out with ..", async () => {
    const url = await publish(
      "climb.zip",
      buildZip([stored("p/inspec.yml", INSPEC_YML), stored("../../../escaped.txt", "out")]),
    );
    const run = await create("climb-zip", `  - url: ${url}\n`);
    expectRefused(
      run,
      3,
      /climb\.zip is not a readable \.zip archive: invalid relative path: \.\.\/\.\.\/\.\.\/escaped\.txt/,
    );
    expect(existsSync(path.join(work, "escaped.txt"))).toBe(false);
  });

  it("refuses a zip link that points out of the archive", async () => {
    const url = await publish(
      "link.zip",
      buildZip([stored("p/inspec.yml", INSPEC_YML), stored("p/leak", "/etc/passwd", 0o120777)]),
    );
    const run = await create("link-zip", `  - url: ${url}\n`);
    expectRefused(
      run,
      3,
      /link\.zip: archive entry "p\/leak" is a link to "\/etc\/passwd", outside the archive/,
    );
  });

  it("refuses a tar.gz entry that climbs out with ..", async () => {
    const file = path.join(httpRoot, "climb.tar.gz");
    pythonTarGz(file, `add("p/../../escaped-tar.txt", b"out")`);
    const run = await create("climb-tar", `  - url: ${httpUrl}/climb.tar.gz\n`);
    expectRefused(
      run,
      3,
      /climb\.tar\.gz: archive entry "p\/\.\.\/\.\.\/escaped-tar\.txt" has a \.\. segment; refusing to extract/,
    );
    expect(existsSync(path.join(work, "escaped-tar.txt"))).toBe(false);
  });

  it("refuses a tar.gz link that points out of the archive", async () => {
    const file = path.join(httpRoot, "link.tar.gz");
    pythonTarGz(file, `add("p/leak", kind=tarfile.SYMTYPE, link="../../../etc/passwd")`);
    const run = await create("link-tar", `  - url: ${httpUrl}/link.tar.gz\n`);
    expectRefused(
      run,
      3,
      /link\.tar\.gz: archive entry "p\/leak" is a link to "\.\.\/\.\.\/\.\.\/etc\/passwd", outside the archive/,
    );
  });

  it("stops a gzip bomb once it passes 200:1", async () => {
    const file = path.join(httpRoot, "bomb.tar.gz");
    pythonTarGz(file, `add("p/zeros", bytes(48 * 1024 * 1024))`);
    expect(statSync(file).size).toBeLessThan(200_000);
    const run = await create("bomb-tar", `  - url: ${httpUrl}/bomb.tar.gz\n`);
    expectRefused(
      run,
      3,
      /bomb\.tar\.gz: archive refused: \d+ MiB uncompressed from \d+ bytes compressed, more than 200:1 \(limit maxRatio\)/,
    );
  });
});

describe("local paths named by profiles", () => {
  it("refuses a remote git profile that depends on an absolute local path", async () => {
    const repo = await makeGitRepo(`abs-path-${uid}`, [
      {
        files: {
          "inspec.yml": `name: grabber\nversion: 1.0.0\ndepends:\n  - name: loot\n    path: ${secretDir}\n`,
        },
      },
    ]);
    const run = await create("git-abs-path", `  - git: ${repo.url}\n    branch: main\n`);
    expectRefused(
      run,
      3,
      /profile grabber: dependency loot names the local path .*secret; a profile fetched from a remote source may only depend on paths inside its own content, and only profiles from the config's own path: entries may depend on local folders/,
    );
  });

  it("refuses a remote git profile whose relative path dependency climbs out of its checkout", async () => {
    const repo = await makeGitRepo(`rel-path-${uid}`, [
      {
        files: {
          "inspec.yml": `name: climber\nversion: 1.0.0\ndepends:\n  - name: loot\n    path: ${"../".repeat(30)}${secretDir.slice(1)}\n`,
        },
      },
    ]);
    const run = await create("git-rel-path", `  - git: ${repo.url}\n    branch: main\n`);
    expectRefused(
      run,
      3,
      /profile climber: dependency loot names the path .*, which leaves the profile's own fetched content/,
    );
  });

  it("refuses a path dependency that is a committed link out of the checkout", async () => {
    const name = `link-dep-${uid}`;
    const src = await mkdtemp(path.join(work, "repo-"));
    await git(src, "init", "-q", "-b", "main");
    await writeFile(
      path.join(src, "inspec.yml"),
      "name: linker\nversion: 1.0.0\ndepends:\n  - name: loot\n    path: common\n",
    );
    await symlink(secretDir, path.join(src, "common"));
    await git(src, "add", "-A");
    await git(src, "commit", "-q", "-m", "link");
    const bare = path.join(needEnv("AIRGAP_TEST_GIT_ROOT"), `${name}.git`);
    await git(src, "init", "-q", "--bare", "-b", "main", bare);
    await git(src, "push", "-q", bare, "main:main");
    const run = await create(
      "git-link-path",
      `  - git: ${needEnv("AIRGAP_TEST_GIT_URL")}/${name}.git\n    branch: main\n`,
    );
    expectRefused(
      run,
      3,
      /profile linker: dependency loot names the path common, which leaves the profile's own fetched content/,
    );
    // the same link as relative_path of the entry itself
    const run2 = await create(
      "git-link-rel",
      `  - git: ${needEnv("AIRGAP_TEST_GIT_URL")}/${name}.git\n    branch: main\n    relative_path: common\n`,
    );
    expectRefused(run2, 3, /relative_path "common" is a link leading out of the repository/);
  });

  it("refuses a remote profile that depends on a local git repository", async () => {
    const local = await makeGitRepo(`local-only-${uid}`, [
      { files: { "inspec.yml": "name: local-only\nversion: 1.0.0\n" } },
    ]);
    const repo = await makeGitRepo(`file-git-${uid}`, [
      {
        files: {
          "inspec.yml": `name: fetcher\nversion: 1.0.0\ndepends:\n  - name: local-only\n    git: file://${local.bare}\n    branch: main\n`,
        },
      },
    ]);
    const run = await create("git-file-git", `  - git: ${repo.url}\n    branch: main\n`);
    expectRefused(
      run,
      3,
      /profile fetcher: dependency local-only names the git remote file:\/\/.*local-only.*\.git, which is a repository on this machine; only profiles from the config's own path: entries may depend on local repositories/,
    );
  });

  it("keeps a local profile's path dependencies inside the config's folder unless the config allows more", async () => {
    const outside = path.join(work, "shared-profiles");
    await writeTree(path.join(outside, "common"), { "inspec.yml": "name: common\nversion: 1.0.0\n" });
    const files = {
      "top/inspec.yml": `name: top\nversion: 1.0.0\ndepends:\n  - name: common\n    path: ${path.join(outside, "common")}\n`,
    };
    const refused = await create("local-outside", `  - path: top\n`, files);
    expectRefused(
      refused,
      2,
      /profile top: dependency common names the path .*shared-profiles\/common .*outside the config file's folder and the profile's own folder; .*allow_dependencies_from/,
    );
    const allowed = await create(
      "local-allowed",
      `  - path: top\n    allow_dependencies_from: [${path.relative(path.join(work, "local-allowed"), outside)}]\n`,
      files,
    );
    expect(allowed.result.code, allowed.result.stderr).toBe(0);
    const inventory = JSON.parse(await readFile(path.join(allowed.bundle, "bundle.json"), "utf8")) as {
      items: { kind: string; dependencies?: { name: string }[] }[];
    };
    expect(inventory.items.find((i) => i.kind === "profile")!.dependencies!.map((d) => d.name)).toEqual([
      "common",
    ]);
  });
});

describe("answers read whole", () => {
  it("refuses a Supermarket answer over 8 MiB without reading it all", async () => {
    const api = path.join(httpRoot, "sm", "api", "v1", "tools");
    await mkdir(api, { recursive: true });
    await writeFile(path.join(api, "big"), `{"owner":"o","pad":"${"x".repeat(9 * MiB)}"}`);
    const run = await create(
      "supermarket-big",
      `  - supermarket: supermarket://o/big\n    url: ${httpUrl}/sm\n`,
    );
    expectRefused(
      run,
      3,
      /GET .*\/sm\/api\/v1\/tools\/big: the server announces \d+ bytes, more than the 8388608-byte limit/,
    );
  });

  it("stops reading an endless Supermarket answer that announces no length", async () => {
    // nginx always sends Content-Length for static files; this server streams chunks without one
    let sent = 0;
    let closed = false;
    const server = createServer((req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"owner":"o","pad":"');
      const chunk = Buffer.alloc(256 * 1024, "x");
      const pump = () => {
        while (!res.destroyed && sent < 256 * MiB) {
          sent += chunk.length;
          if (!res.write(chunk)) {
            res.once("drain", pump);
            return;
          }
        }
        res.end('"}');
      };
      req.socket.on("close", () => {
        closed = true;
      });
      pump();
    });
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    try {
      const { port } = server.address() as AddressInfo;
      const run = await create(
        "supermarket-endless",
        `  - supermarket: supermarket://o/endless\n    url: http://127.0.0.1:${port}\n`,
      );
      expectRefused(
        run,
        3,
        /GET http:\/\/127\.0\.0\.1:\d+\/api\/v1\/tools\/endless: the answer is larger than the 8388608-byte limit/,
      );
      expect(closed).toBe(true);
      // the client hung up soon after the limit, not at the end of the stream
      expect(sent).toBeLessThan(64 * MiB);
    } finally {
      server.closeAllConnections();
      await new Promise((done) => server.close(done));
    }
  });
});
