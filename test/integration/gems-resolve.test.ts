/**
 * Gems end to end against the real static HTTP server and Debian's RubyGems: fixture gems built with
 * `gem build` (a plugin with two levels of runtime dependencies, a provided gem with a dependency of
 * its own, a development dependency, a pre-release and a platform build), served as a compact index;
 * resolved and downloaded by airgap, published as a new static gem source, and installed from it by
 * the real `gem install`. RubyGems' own choice from the upstream index is the reference.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GemSpec } from "../../src/config/types.js";
import { IntegrityError } from "../../src/errors.js";
import {
  GemError,
  type GemSourceFile,
  gemSourceFiles,
  type PublishableGem,
  type ResolvedGem,
  resolveGems,
} from "../../src/sources/gems/index.js";
import { needEnv } from "../helpers/env.js";
import {
  buildGem,
  describeGems,
  type FixtureGem,
  gemInstall,
  requireRuby,
  writeGemSource,
} from "../helpers/gems.js";

const uid = `gems-${process.pid}-${Date.now().toString(36)}`;

const FIXTURES: FixtureGem[] = [
  {
    name: "fixture-plugin",
    version: "1.0.0",
    runtime: { "fixture-mid": ["~> 1.0"], "fixture-provided": [">= 1.0"] },
    development: { "fixture-dev": ["~> 1.0"] },
  },
  {
    name: "fixture-plugin",
    version: "1.1.0",
    runtime: { "fixture-mid": ["~> 1.0"], "fixture-leaf": ["!= 1.5.0"], "fixture-provided": [">= 1.0"] },
    development: { "fixture-dev": ["~> 1.0"] },
  },
  { name: "fixture-plugin", version: "2.0.0", runtime: { "fixture-mid": ["~> 2.0"] } },
  { name: "fixture-mid", version: "1.0.0", runtime: { "fixture-leaf": [">= 0.5", "< 2"] } },
  { name: "fixture-mid", version: "1.2.0", runtime: { "fixture-leaf": [">= 0.5", "< 2"] } },
  { name: "fixture-mid", version: "1.3.0.pre", runtime: { "fixture-leaf": [">= 0.5", "< 2"] } },
  { name: "fixture-mid", version: "2.0.0", runtime: { "fixture-leaf": [">= 2"] } },
  { name: "fixture-leaf", version: "0.4.0" },
  { name: "fixture-leaf", version: "0.9.0" },
  { name: "fixture-leaf", version: "0.9.0", platform: "x86_64-linux" },
  { name: "fixture-leaf", version: "1.5.0" },
  { name: "fixture-leaf", version: "2.0.0" },
  { name: "fixture-provided", version: "1.0.0", runtime: { "fixture-provided-child": [">= 0"] } },
  { name: "fixture-provided-child", version: "1.0.0" },
  { name: "fixture-dev", version: "1.0.0" },
  { name: "fixture-orphan", version: "1.0.0", runtime: { "fixture-absent": ["~> 1.0"] } },
  // fixture-x 2.0.0 needs fixture-z >= 1, but fixture-y takes fixture-x < 2 and fixture-z < 1
  { name: "fixture-x", version: "1.0.0" },
  { name: "fixture-x", version: "2.0.0", runtime: { "fixture-z": [">= 1"] } },
  { name: "fixture-y", version: "1.0.0", runtime: { "fixture-x": ["< 2"], "fixture-z": ["< 1"] } },
  { name: "fixture-z", version: "0.5.0" },
  { name: "fixture-z", version: "1.0.0" },
];

let httpRoot: string;
let httpUrl: string;
let work: string;
let builtDir: string;
let upstream: PublishableGem[];
let upstreamUrl: string;

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Serves `files` as a gem source in a fresh folder of the static server; returns its URL. */
async function serve(folder: string, files: readonly GemSourceFile[]): Promise<string> {
  const root = path.join(httpRoot, uid, folder);
  await writeGemSource(root, files);
  return `${httpUrl}/${uid}/${folder}`;
}

function spec(name: string, version: string | undefined, source: string, provided: string[] = []): GemSpec {
  const s: GemSpec = { name, source, provided };
  if (version !== undefined) s.version = version;
  return s;
}

function summary(gems: readonly ResolvedGem[]): string[] {
  return gems.map((g) => `${g.name}-${g.version}${g.platform === "ruby" ? "" : `-${g.platform}`}`).sort();
}

beforeAll(async () => {
  requireRuby();
  httpRoot = needEnv("AIRGAP_TEST_HTTP_ROOT");
  httpUrl = needEnv("AIRGAP_TEST_HTTP_URL");
  work = await mkdtemp(path.join(tmpdir(), "airgap-gems-"));
  builtDir = path.join(work, "built");
  await mkdir(builtDir, { recursive: true });
  const files: string[] = [];
  for (const g of FIXTURES) files.push(await buildGem(path.join(work, "src"), builtDir, g));
  upstream = await describeGems(files);
  upstreamUrl = await serve("upstream", gemSourceFiles(upstream));
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
  if (httpRoot) await rm(path.join(httpRoot, uid), { recursive: true, force: true });
});

describe("gems from a compact index", () => {
  it("resolves runtime dependencies two levels deep, without provided or development gems, and real gem install takes the published source", async () => {
    const dir = path.join(work, "resolve-1");
    const gems = await resolveGems([spec("fixture-plugin", "~> 1.0", upstreamUrl, ["fixture-provided"])], {
      workDir: dir,
    });
    // highest versions that satisfy every requirement: plugin ~> 1.0, mid ~> 1.0 (not the
    // pre-release), leaf >= 0.5, < 2 and != 1.5.0; the ruby build, not x86_64-linux
    expect(summary(gems)).toEqual(["fixture-leaf-0.9.0", "fixture-mid-1.2.0", "fixture-plugin-1.1.0"]);
    const byName = new Map(gems.map((g) => [g.name, g]));
    expect(byName.get("fixture-plugin")?.requiredBy).toEqual([]);
    expect(byName.get("fixture-mid")?.requiredBy).toEqual(["fixture-plugin"]);
    expect(byName.get("fixture-leaf")?.requiredBy).toEqual(["fixture-mid", "fixture-plugin"]);
    // RubyGems asks the source about installed gems too: the published source must know their names
    expect(byName.get("fixture-plugin")?.providedTree).toEqual([
      "fixture-provided",
      "fixture-provided-child",
    ]);
    expect(byName.get("fixture-mid")?.providedTree).toBeUndefined();
    expect(byName.get("fixture-plugin")?.dependencies).toEqual([
      { name: "fixture-leaf", requirement: "!= 1.5.0" },
      { name: "fixture-mid", requirement: "~> 1.0" },
      { name: "fixture-provided", requirement: ">= 1.0" },
    ]);
    for (const g of gems) {
      const built = await readFile(path.join(builtDir, `${g.name}-${g.version}.gem`));
      expect(g.sha256).toBe(sha256(built));
      expect(g.size).toBe(built.length);
      expect(sha256(await readFile(g.file))).toBe(g.sha256);
      expect(g.source).toBe(upstreamUrl);
      const rz = await readFile(g.gemspec.file);
      expect(g.gemspec).toEqual({ file: g.gemspec.file, sha256: sha256(rz), size: rz.length });
    }
    expect(readdirSync(dir).sort()).toEqual(
      gems.flatMap((g) => [`${g.name}-${g.version}.gem`, `${g.name}-${g.version}.gemspec.rz`]).sort(),
    );

    // The target already has the provided gems (as CINC Auditor ships train): install them
    // from upstream into their own folder, visible through GEM_PATH.
    const providedDir = path.join(work, "provided-1");
    expect(gemInstall(upstreamUrl, providedDir, "fixture-provided").installed).toEqual([
      "fixture-provided-1.0.0",
      "fixture-provided-child-1.0.0",
    ]);

    // RubyGems itself, from the same upstream index, picks the same gems (asked for pure-Ruby
    // gems: on this machine it would otherwise take the x86_64-linux build)
    const reference = gemInstall(upstreamUrl, path.join(work, "reference-1"), "fixture-plugin", {
      gemPath: providedDir,
      version: "~> 1.0",
      platform: "ruby",
    });
    expect(reference.installed).toEqual(summary(gems));

    const publishedUrl = await serve("published-1", gemSourceFiles(gems));
    const target = path.join(work, "installed-1");
    const { installed } = gemInstall(publishedUrl, target, "fixture-plugin", { gemPath: providedDir });
    expect(installed).toEqual(["fixture-leaf-0.9.0", "fixture-mid-1.2.0", "fixture-plugin-1.1.0"]);
    expect(existsSync(path.join(target, "gems", "fixture-plugin-1.1.0", "lib", "fixture-plugin.rb"))).toBe(
      true,
    );

    // the published index says what the plugin needs: without the provided gem, install refuses
    expect(() => gemInstall(publishedUrl, path.join(work, "installed-1b"), "fixture-plugin")).toThrow(
      /fixture-provided/,
    );
  });

  it("with nothing provided, carries the whole tree, and gem install --install-dir EMPTY_DIR installs exactly it", async () => {
    const gems = await resolveGems([spec("fixture-plugin", "~> 1.0", upstreamUrl)], {
      workDir: path.join(work, "resolve-2"),
    });
    const expected = [
      "fixture-leaf-0.9.0",
      "fixture-mid-1.2.0",
      "fixture-plugin-1.1.0",
      "fixture-provided-1.0.0",
      "fixture-provided-child-1.0.0",
    ];
    expect(summary(gems)).toEqual(expected);
    expect(gems.find((g) => g.name === "fixture-provided-child")?.requiredBy).toEqual(["fixture-provided"]);
    const publishedUrl = await serve("published-2", gemSourceFiles(gems));
    const { installed } = gemInstall(publishedUrl, path.join(work, "installed-2"), "fixture-plugin");
    expect(installed).toEqual(expected);
  });

  it("forgets what a version it first picked asked for, once a later requirement moves it to another version", async () => {
    const gems = await resolveGems(
      [spec("fixture-x", undefined, upstreamUrl), spec("fixture-y", undefined, upstreamUrl)],
      {
        workDir: path.join(work, "resolve-moved"),
      },
    );
    // fixture-x 2.0.0 came first and asked for fixture-z >= 1; fixture-y's "< 2" moved it to 1.0.0,
    // so only fixture-y's "< 1" is left on fixture-z: no conflict
    expect(summary(gems)).toEqual(["fixture-x-1.0.0", "fixture-y-1.0.0", "fixture-z-0.5.0"]);
    expect(gems.find((g) => g.name === "fixture-x")?.requiredBy).toEqual([]);
  });

  it("takes the platform build when the entry names a platform, and never shows credentials in the source", async () => {
    const withCredentials = upstreamUrl.replace("http://", "http://reader:s3cret@");
    const gems = await resolveGems(
      [{ ...spec("fixture-leaf", "< 1", withCredentials), platform: "x86_64-linux" }],
      { workDir: path.join(work, "resolve-platform") },
    );
    expect(summary(gems)).toEqual(["fixture-leaf-0.9.0-x86_64-linux"]);
    const built = await readFile(path.join(builtDir, "fixture-leaf-0.9.0-x86_64-linux.gem"));
    expect(gems[0]?.sha256).toBe(sha256(built));
    expect(gems[0]?.source).toBe(upstreamUrl);
    const files = gemSourceFiles(gems).map((f) => f.path);
    expect(files).toContain("gems/fixture-leaf-0.9.0-x86_64-linux.gem");
    expect(files).toContain("quick/Marshal.4.8/fixture-leaf-0.9.0-x86_64-linux.gemspec.rz");
  });

  it("refuses a .gem whose bytes differ from the index checksum, leaving no file behind", async () => {
    const tamperedUrl = await serve("tampered", gemSourceFiles(upstream));
    const served = path.join(httpRoot, uid, "tampered", "gems", "fixture-leaf-0.9.0.gem");
    await copyFile(path.join(builtDir, "fixture-leaf-1.5.0.gem"), served);
    const dir = path.join(work, "resolve-tampered");
    const err = await resolveGems([spec("fixture-leaf", "< 1", tamperedUrl)], { workDir: dir }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as IntegrityError).exitCode).toBe(3);
    expect((err as Error).message).toContain("fixture-leaf-0.9.0");
    expect((err as Error).message).toContain("compact index");
    expect(readdirSync(dir)).toEqual([]);
  });

  it("refuses a gemspec.rz that is not the gem's, leaving no file behind", async () => {
    const swappedUrl = await serve("swapped-spec", gemSourceFiles(upstream));
    const quick = path.join(httpRoot, uid, "swapped-spec", "quick", "Marshal.4.8");
    await copyFile(
      path.join(quick, "fixture-leaf-1.5.0.gemspec.rz"),
      path.join(quick, "fixture-leaf-0.9.0.gemspec.rz"),
    );
    const dir = path.join(work, "resolve-swapped");
    const err = await resolveGems([spec("fixture-leaf", "< 1", swappedUrl)], { workDir: dir }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toMatch(
      /fixture-leaf-0\.9\.0\.gemspec\.rz is not the gemspec of gem fixture-leaf 0\.9\.0/,
    );
    expect(readdirSync(dir)).toEqual([]);
  });

  it("names both requirements and who asked when no version satisfies them", async () => {
    const err = await resolveGems(
      [
        spec("fixture-plugin", "~> 1.0", upstreamUrl, ["fixture-provided"]),
        spec("fixture-leaf", "~> 2.0", upstreamUrl),
      ],
      { workDir: path.join(work, "resolve-conflict") },
    ).catch((e) => e);
    expect(err).toBeInstanceOf(GemError);
    const message = (err as Error).message;
    expect(message).toContain("gem fixture-leaf");
    expect(message).toContain('"~> 2.0" (the config, gems: fixture-leaf)');
    expect(message).toContain('"< 2, >= 0.5" (required by fixture-mid 1.2.0)');
  });

  it("names a requirement no published version satisfies", async () => {
    const err = await resolveGems([spec("fixture-plugin", ">= 3", upstreamUrl)], {
      workDir: path.join(work, "resolve-none"),
    }).catch((e) => e);
    expect(err).toBeInstanceOf(GemError);
    expect((err as Error).message).toMatch(/no version of gem fixture-plugin satisfies ">= 3" \(the config/);
    expect((err as Error).message).toContain("2.0.0, 1.1.0, 1.0.0");
  });

  it("names the missing gem and who needs it, whether the source answers 404 or lists no versions", async () => {
    // rubygems.org answers 404 for a gem it does not have
    const files = gemSourceFiles(upstream).filter((f) => f.path !== "info/fixture-absent");
    const missingUrl = await serve("missing", files);
    const err = await resolveGems([spec("fixture-orphan", undefined, missingUrl)], {
      workDir: path.join(work, "resolve-missing"),
    }).catch((e) => e);
    expect(err).toBeInstanceOf(GemError);
    expect((err as GemError).code).toBe("GEM_NOT_FOUND");
    expect((err as Error).message).toContain(
      `gem fixture-absent (required by fixture-orphan 1.0.0) is not in the gem source ${missingUrl}`,
    );
    expect((err as Error).message).toContain("HTTP 404");

    // a published airgap source lists no versions for gems it does not carry
    const empty = await resolveGems([spec("fixture-orphan", undefined, upstreamUrl)], {
      workDir: path.join(work, "resolve-empty"),
    }).catch((e) => e);
    expect(empty).toBeInstanceOf(GemError);
    expect((empty as Error).message).toBe(
      `gem fixture-absent (required by fixture-orphan 1.0.0) has no versions in the gem source ${upstreamUrl}`,
    );
  });

  it("refuses an info file that is not a compact index, and one over the size cap", async () => {
    const badUrl = await serve("bad-index", []);
    await mkdir(path.join(httpRoot, uid, "bad-index", "info"), { recursive: true });
    await writeFile(path.join(httpRoot, uid, "bad-index", "info", "fixture-leaf"), "---\n1.0.0 |ruby:>= 0\n");
    const err = await resolveGems([spec("fixture-leaf", undefined, badUrl)], {
      workDir: path.join(work, "resolve-bad"),
    }).catch((e) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toMatch(/info\/fixture-leaf is not a compact index info file.*checksum/);

    const line = `1.0.0 |checksum:${"0".repeat(64)}\n`;
    await writeFile(
      path.join(httpRoot, uid, "bad-index", "info", "fixture-huge"),
      `---\n${line.repeat(Math.ceil((17 * 1024 * 1024) / line.length))}`,
    );
    const big = await resolveGems([spec("fixture-huge", undefined, badUrl)], {
      workDir: path.join(work, "resolve-big"),
    }).catch((e) => e);
    expect(big).toBeInstanceOf(IntegrityError);
    expect((big as Error).message).toContain("is larger than the 16777216-byte limit");
  });
});
