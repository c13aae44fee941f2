/**
 * The files of a static gem source for carried gems: what `gem install --clear-sources --source URL`
 * (and Bundler) read from a plain web server or bucket. RubyGems resolves through `versions` and
 * `info/NAME`, then fetches `quick/Marshal.4.8/FULLNAME.gemspec.rz` and `gems/FULLNAME.gem`.
 */
import { createHash } from "node:crypto";
import { IntegrityError } from "../../errors.js";
import {
  formatInfo,
  formatNames,
  formatVersions,
  type InfoEntry,
  isGemName,
  isGemPlatform,
  versionAndPlatform,
} from "./compact-index.js";
import { compareGemVersions, isGemVersion } from "./gem-version.js";
import type { ResolvedGem } from "./resolve.js";

/**
 * What publishing needs of a gem. `file` and `gemspec.file` are handed back unchanged in the
 * result, so they may be paths on disk or any locator the caller understands (a blob digest).
 */
export type PublishableGem = Pick<
  ResolvedGem,
  | "name"
  | "version"
  | "platform"
  | "sha256"
  | "size"
  | "dependencies"
  | "file"
  | "gemspec"
  | "ruby"
  | "rubygems"
  | "providedTree"
>;

export interface GemSourceFile {
  /** Relative path in the gem source, "/"-separated. */
  path: string;
  /** Content generated here (index files) ... */
  bytes?: Buffer;
  /** ... or the caller's file, copied as-is (.gem, .gemspec.rz). */
  file?: string;
  sha256: string;
  size: number;
}

export interface GemSourceOptions {
  /** The `created_at:` of `versions` (ISO 8601); fixed by default so the same gems give the same files. */
  createdAt?: string;
}

function text(path: string, content: string): GemSourceFile {
  const bytes = Buffer.from(content, "utf8");
  return { path, bytes, sha256: createHash("sha256").update(bytes).digest("hex"), size: bytes.length };
}

/** Splits "< 2, >= 1.0" back into constraints. */
function constraints(requirement: string): string[] {
  return requirement
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

export function gemSourceFiles(
  gems: readonly PublishableGem[],
  options: GemSourceOptions = {},
): GemSourceFile[] {
  const byName = new Map<string, Map<string, PublishableGem>>();
  for (const gem of gems) {
    // names, versions and platforms become paths: refuse anything that could leave its folder
    if (!isGemName(gem.name) || !isGemVersion(gem.version) || !isGemPlatform(gem.platform || "ruby")) {
      throw new IntegrityError(
        "MALFORMED",
        `gem ${JSON.stringify(`${gem.name} ${gem.version} ${gem.platform}`)} has a name, version or platform RubyGems does not accept`,
        gem.name,
      );
    }
    const key = versionAndPlatform(gem.version, gem.platform);
    const versions = byName.get(gem.name) ?? new Map<string, PublishableGem>();
    const held = versions.get(key);
    if (held && held.sha256 !== gem.sha256) {
      throw new IntegrityError(
        "CHECKSUM_MISMATCH",
        `two different files claim to be gem ${gem.name}-${key} (sha256 ${held.sha256} and ${gem.sha256})`,
        `${gem.name}-${key}`,
      );
    }
    versions.set(key, gem);
    byName.set(gem.name, versions);
  }

  const names = [...byName.keys()].sort();
  const files: GemSourceFile[] = [];
  const infos: { name: string; entries: InfoEntry[]; info: string }[] = [];
  for (const name of names) {
    const list = [...(byName.get(name) as Map<string, PublishableGem>).values()].sort(
      (a, b) =>
        compareGemVersions(a.version, b.version) ||
        (a.platform < b.platform ? -1 : a.platform > b.platform ? 1 : 0),
    );
    const entries = list.map((g) => {
      const entry: InfoEntry = {
        version: g.version,
        platform: g.platform || "ruby",
        dependencies: g.dependencies.map((d) => ({ name: d.name, requirement: constraints(d.requirement) })),
        checksum: g.sha256,
      };
      if (g.ruby) entry.ruby = g.ruby;
      if (g.rubygems) entry.rubygems = g.rubygems;
      return entry;
    });
    const info = formatInfo(entries);
    infos.push({ name, entries, info });
    files.push(text(`info/${name}`, info));
    for (const g of list) {
      const full = `${name}-${versionAndPlatform(g.version, g.platform || "ruby")}`;
      files.push({ path: `gems/${full}.gem`, file: g.file, sha256: g.sha256, size: g.size });
      files.push({
        path: `quick/Marshal.4.8/${full}.gemspec.rz`,
        file: g.gemspec.file,
        sha256: g.gemspec.sha256,
        size: g.gemspec.size,
      });
    }
  }
  // RubyGems fails an install on any info/NAME that answers 404, even for gems it has installed,
  // so every other name the carried gems reach gets an info file that lists no versions.
  const absent = new Set(
    gems
      .flatMap((g) => [...g.dependencies.map((d) => d.name), ...(g.providedTree ?? [])])
      .filter((n) => !byName.has(n)),
  );
  for (const name of [...absent].sort()) {
    if (!isGemName(name)) {
      throw new IntegrityError(
        "MALFORMED",
        `gem name ${JSON.stringify(name)} is not one RubyGems accepts`,
        name,
      );
    }
    files.push(text(`info/${name}`, formatInfo([])));
  }
  files.push(text("names", formatNames(names)));
  files.push(text("versions", formatVersions(infos, options.createdAt ?? "1970-01-01T00:00:00Z")));
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
