/**
 * Fixture gems for the gem tests, built with Debian's `gem build` (reproducible with
 * SOURCE_DATE_EPOCH), and the files a gem server would hold for them.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync } from "node:fs";
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import type { GemSourceFile, PublishableGem } from "../../src/sources/gems/index.js";

export const RUBY_HINT =
  "Debian's ruby is needed for the gem tests (gem build, gem install): apt-get install ruby (scripts/test.sh installs it)";

/** Fails, never skips, when ruby or gem is missing: CI installs them. */
export function requireRuby(): void {
  for (const tool of ["ruby", "gem"]) {
    try {
      execFileSync(tool, ["--version"], { stdio: "pipe" });
    } catch {
      throw new Error(`${tool} not found. ${RUBY_HINT}`);
    }
  }
}

export interface FixtureGem {
  name: string;
  version: string;
  platform?: string;
  /** name → requirement constraints, e.g. { "fixture-leaf": [">= 0.5", "< 2"] } */
  runtime?: Record<string, string[]>;
  development?: Record<string, string[]>;
}

/** A clean environment for ruby tools: no user gem config, no network sources. */
export function rubyEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const k of ["PATH", "LANG", "LC_ALL", "TMPDIR"]) if (process.env[k]) env[k] = process.env[k];
  return { ...env, HOME: extra.HOME ?? "/nonexistent", SOURCE_DATE_EPOCH: "1700000000", ...extra };
}

/** Builds the gem with `gem build`; returns the .gem path in `outDir`. */
export async function buildGem(workDir: string, outDir: string, g: FixtureGem): Promise<string> {
  const full = `${g.name}-${g.version}${g.platform ? `-${g.platform}` : ""}`;
  const dir = path.join(workDir, full);
  await mkdir(path.join(dir, "lib"), { recursive: true });
  await writeFile(path.join(dir, "lib", `${g.name}.rb`), `# ${full}\nmodule Fixture; end\n`);
  const deps = (kind: string, map: Record<string, string[]> | undefined) =>
    Object.entries(map ?? {})
      .map(
        ([n, reqs]) =>
          `  s.add_${kind}_dependency ${JSON.stringify(n)}, ${reqs.map((r) => JSON.stringify(r)).join(", ")}\n`,
      )
      .join("");
  const spec =
    `Gem::Specification.new do |s|\n` +
    `  s.name = ${JSON.stringify(g.name)}\n` +
    `  s.version = ${JSON.stringify(g.version)}\n` +
    (g.platform ? `  s.platform = ${JSON.stringify(g.platform)}\n` : "") +
    `  s.summary = "airgap test fixture"\n  s.authors = ["airgap tests"]\n  s.homepage = "https://example.org"\n` +
    `  s.license = "Apache-2.0"\n  s.files = ["lib/${g.name}.rb"]\n` +
    deps("runtime", g.runtime) +
    deps("development", g.development) +
    "end\n";
  await writeFile(path.join(dir, `${g.name}.gemspec`), spec);
  execFileSync("gem", ["build", `${g.name}.gemspec`, "--output", path.join(outDir, `${full}.gem`)], {
    cwd: dir,
    env: rubyEnv(),
    stdio: "pipe",
  });
  return path.join(outDir, `${full}.gem`);
}

const DESCRIBE_RB = `
require "json"
require "rubygems/package"
out = ARGV.each_slice(2).map do |gem, rz|
  spec = Gem::Package.new(gem).spec
  File.binwrite(rz, Gem.deflate(Marshal.dump(spec)))
  {
    name: spec.name, version: spec.version.to_s, platform: spec.platform.to_s,
    dependencies: spec.runtime_dependencies.map { |d| { name: d.name, requirement: d.requirement.to_s } },
    ruby: spec.required_ruby_version.to_s, rubygems: spec.required_rubygems_version.to_s,
  }
end
puts JSON.generate(out)
`;

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * What rubygems.org knows of built gems: the gemspec.rz it serves beside each (written with Ruby's
 * own Marshal) and the metadata its compact index lists (runtime dependencies only).
 */
export async function describeGems(gemFiles: readonly string[]): Promise<PublishableGem[]> {
  const args = gemFiles.flatMap((f) => [f, f.replace(/\.gem$/, ".gemspec.rz")]);
  const meta = JSON.parse(
    execFileSync("ruby", ["-e", DESCRIBE_RB, ...args], { env: rubyEnv(), encoding: "utf8" }),
  ) as {
    name: string;
    version: string;
    platform: string;
    dependencies: { name: string; requirement: string }[];
    ruby: string;
    rubygems: string;
  }[];
  return await Promise.all(
    meta.map(async (m, i) => {
      const file = gemFiles[i] as string;
      const gem = await readFile(file);
      const rzFile = file.replace(/\.gem$/, ".gemspec.rz");
      const rz = await readFile(rzFile);
      const out: PublishableGem = {
        name: m.name,
        version: m.version,
        platform: m.platform,
        sha256: sha256(gem),
        size: gem.length,
        dependencies: m.dependencies,
        file,
        gemspec: { file: rzFile, sha256: sha256(rz), size: rz.length },
      };
      // the index writes ruby/rubygems requirements as "&"-joined constraints
      if (m.ruby) out.ruby = m.ruby.split(",").map((s) => s.trim());
      if (m.rubygems) out.rubygems = m.rubygems.split(",").map((s) => s.trim());
      return out;
    }),
  );
}

/** Writes gem source files into a folder the static HTTP server serves. */
export async function writeGemSource(root: string, files: readonly GemSourceFile[]): Promise<void> {
  for (const f of files) {
    const dest = path.join(root, ...f.path.split("/"));
    await mkdir(path.dirname(dest), { recursive: true });
    if (f.bytes) await writeFile(dest, f.bytes);
    else if (f.file) await copyFile(f.file, dest);
    else throw new Error(`gem source file ${f.path} has neither bytes nor file`);
  }
}

/**
 * `gem install` from only `sourceUrl` into an empty folder; returns the full names installed there.
 * With `gemPath`, the gems installed there count as present (how CINC Auditor's plugin installer sees
 * the gems it ships): RubyGems ignores GEM_PATH under --install-dir, so the folder becomes GEM_HOME.
 */
export function gemInstall(
  sourceUrl: string,
  installDir: string,
  name: string,
  opts: { gemPath?: string; version?: string; platform?: string } = {},
): { installed: string[]; output: string } {
  const args = ["install", "--clear-sources", "--source", `${sourceUrl}/`, "--no-document"];
  if (!opts.gemPath) args.push("--install-dir", installDir);
  if (opts.version) args.push("--version", opts.version);
  if (opts.platform) args.push("--platform", opts.platform);
  args.push(name);
  const env = rubyEnv(opts.gemPath ? { GEM_HOME: installDir, GEM_PATH: opts.gemPath } : {});
  const output = execFileSync("gem", args, { env, encoding: "utf8", stdio: "pipe" });
  const installed = readdirSync(path.join(installDir, "specifications"))
    .filter((l) => l.endsWith(".gemspec"))
    .map((l) => l.replace(/\.gemspec$/, ""))
    .sort();
  return { installed, output };
}
