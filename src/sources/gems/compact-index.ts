/**
 * The RubyGems compact index (what rubygems.org serves and `gem`/Bundler read), as specified by
 * rubygems/compact_index:
 * - `names`: "---\n" then one gem name a line;
 * - `versions`: "created_at: TIME\n---\n" then `NAME V1,V2-PLATFORM INFO_MD5` lines, where
 *   INFO_MD5 is the MD5 of that gem's `info/NAME` file (Bundler refetches `info/NAME` when it differs);
 *   a version written `-V` was yanked;
 * - `info/NAME`: "---\n" then one line per version:
 *   `VERSION[-PLATFORM] DEP:REQ&REQ,DEP2:REQ|checksum:SHA256,ruby:REQ&REQ,rubygems:REQ`, only
 *   runtime dependencies, each requirement's constraints sorted and joined with "&".
 */
import { createHash } from "node:crypto";
import { isGemVersion } from "./gem-version.js";

/** Gem names as RubyGems accepts them; also keeps every path built from a name inside its folder. */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** Platforms as they appear in file names: x86_64-linux, java, universal-darwin-22, x64-mingw-ucrt. */
const PLATFORM_RE = /^[A-Za-z0-9_]+(?:-[A-Za-z0-9_.]+)*$/;

export function isGemName(name: string): boolean {
  return NAME_RE.test(name) && name.length <= 255;
}

export function isGemPlatform(platform: string): boolean {
  return PLATFORM_RE.test(platform) && platform.length <= 255;
}

export interface InfoDependency {
  name: string;
  /** Constraints as written, e.g. [">= 1.0", "< 2"]. */
  requirement: string[];
}

export interface InfoEntry {
  version: string;
  /** "ruby" when the line names no platform. */
  platform: string;
  dependencies: InfoDependency[];
  /** sha256 of the .gem file, hex. */
  checksum: string;
  /** Required Ruby and RubyGems versions, when the line names them. */
  ruby?: string[];
  rubygems?: string[];
}

export class CompactIndexFormatError extends Error {}

function parseRequirementList(text: string): string[] {
  return text
    .split("&")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** Parses one `info/NAME` file. Throws CompactIndexFormatError naming the line that is malformed. */
export function parseInfo(text: string): InfoEntry[] {
  const lines = text.split("\n");
  const header = lines.indexOf("---");
  const body = header === -1 ? lines : lines.slice(header + 1);
  const entries: InfoEntry[] = [];
  body.forEach((raw, i) => {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "") return;
    const fail = (why: string) =>
      new CompactIndexFormatError(
        `line ${i + 1 + (header + 1)}: ${why}: ${JSON.stringify(line.slice(0, 200))}`,
      );
    const space = line.indexOf(" ");
    const versionAndPlatform = space === -1 ? line : line.slice(0, space);
    const rest = space === -1 ? "" : line.slice(space + 1);
    const dash = versionAndPlatform.indexOf("-");
    const version = dash === -1 ? versionAndPlatform : versionAndPlatform.slice(0, dash);
    const platform = dash === -1 ? "ruby" : versionAndPlatform.slice(dash + 1);
    if (!isGemVersion(version)) throw fail(`"${version}" is not a gem version`);
    if (!isGemPlatform(platform)) throw fail(`"${platform}" is not a gem platform`);
    const bar = rest.indexOf("|");
    const depsText = bar === -1 ? rest : rest.slice(0, bar);
    const metaText = bar === -1 ? "" : rest.slice(bar + 1);
    const dependencies: InfoDependency[] = [];
    for (const dep of depsText.split(",")) {
      if (dep.trim() === "") continue;
      const colon = dep.indexOf(":");
      const name = (colon === -1 ? dep : dep.slice(0, colon)).trim();
      if (!isGemName(name)) throw fail(`"${name}" is not a gem name`);
      dependencies.push({
        name,
        requirement: colon === -1 ? [] : parseRequirementList(dep.slice(colon + 1)),
      });
    }
    const entry: InfoEntry = { version, platform, dependencies, checksum: "" };
    for (const field of metaText.split(",")) {
      const colon = field.indexOf(":");
      if (colon === -1) continue;
      const key = field.slice(0, colon).trim();
      const value = field.slice(colon + 1).trim();
      if (key === "checksum") entry.checksum = value.toLowerCase();
      else if (key === "ruby") entry.ruby = parseRequirementList(value);
      else if (key === "rubygems") entry.rubygems = parseRequirementList(value);
    }
    if (!/^[0-9a-f]{64}$/.test(entry.checksum)) {
      throw fail("no sha256 checksum (expected |checksum:<64 hex>)");
    }
    entries.push(entry);
  });
  return entries;
}

/** `VERSION` or `VERSION-PLATFORM`, as the index and file names write a gem. */
export function versionAndPlatform(version: string, platform: string): string {
  return platform === "ruby" || platform === "" ? version : `${version}-${platform}`;
}

/** Constraints sorted and joined the way rubygems.org writes them (the MD5 in `versions` depends on it). */
function requirementText(constraints: readonly string[]): string {
  const list = constraints.length === 0 ? [">= 0"] : [...constraints];
  return list
    .map((c) => c.trim())
    .sort()
    .join("&");
}

export function formatInfoLine(entry: InfoEntry): string {
  const deps = [...entry.dependencies]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((d) => `${d.name}:${requirementText(d.requirement)}`)
    .join(",");
  let line = `${versionAndPlatform(entry.version, entry.platform)} ${deps}|checksum:${entry.checksum}`;
  if (entry.ruby && entry.ruby.length > 0) line += `,ruby:${requirementText(entry.ruby)}`;
  if (entry.rubygems && entry.rubygems.length > 0) line += `,rubygems:${requirementText(entry.rubygems)}`;
  return line;
}

export function formatInfo(entries: readonly InfoEntry[]): string {
  return `---\n${entries.map((e) => `${formatInfoLine(e)}\n`).join("")}`;
}

export function formatNames(names: readonly string[]): string {
  return `---\n${names.map((n) => `${n}\n`).join("")}`;
}

export function md5Hex(text: string | Buffer): string {
  return createHash("md5").update(text).digest("hex");
}

/**
 * `versions` for gems whose info files are given: one line per gem, versions in the order of the
 * info file, and the MD5 of the info file's exact bytes.
 */
export function formatVersions(
  gems: readonly { name: string; entries: readonly InfoEntry[]; info: string }[],
  createdAt: string,
): string {
  const lines = gems.map(
    (g) =>
      `${g.name} ${g.entries.map((e) => versionAndPlatform(e.version, e.platform)).join(",")} ${md5Hex(g.info)}\n`,
  );
  return `created_at: ${createdAt}\n---\n${lines.join("")}`;
}
