/**
 * RubyGems versions and requirements (Gem::Version, Gem::Requirement, Gem::Dependency#match? of
 * RubyGems 3.3), for resolving gem dependencies the way `gem install` does.
 *
 * Profiles use src/profiles/version.ts instead: InSpec checks profile constraints with `semverse`,
 * which only knows MAJOR.MINOR.PATCH, so it refuses gem versions such as `6.1.7.6` and reads
 * `~> 6.1.7.6` and pre-releases (`2.0.0.pre`, `1.0.0.rc1`) differently from RubyGems.
 */

/** A segment is a number or a run of letters: "1.0.0.rc1" → [1, 0, 0, "rc", 1]. */
type Segment = number | string;

export interface GemVersion {
  /** The version as written (a "-" already turned into ".pre.", as RubyGems does). */
  text: string;
  segments: Segment[];
  prerelease: boolean;
}

const VERSION_RE = /^[0-9]+(?:\.[0-9a-zA-Z]+)*(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;

export function isGemVersion(text: string): boolean {
  return VERSION_RE.test(text.trim());
}

export function parseGemVersion(input: string): GemVersion {
  const trimmed = String(input).trim();
  if (trimmed !== "" && !VERSION_RE.test(trimmed)) {
    throw new Error(`"${input}" is not a RubyGems version`);
  }
  const text = trimmed === "" ? "0" : trimmed.replaceAll("-", ".pre.");
  const segments = (text.match(/[0-9]+|[a-z]+/gi) ?? []).map((s) => (/^[0-9]/.test(s) ? Number(s) : s));
  return { text, segments, prerelease: /[a-z]/i.test(text) };
}

/** Trailing zeros of the release part and of the pre-release part do not count: 1.0 == 1 == 1.0.0. */
function canonical(v: GemVersion): Segment[] {
  const firstString = v.segments.findIndex((s) => typeof s === "string");
  const release = firstString === -1 ? v.segments : v.segments.slice(0, firstString);
  const pre = firstString === -1 ? [] : v.segments.slice(firstString);
  const trim = (list: Segment[]) => {
    const out = [...list];
    while (out.length > 0 && out[out.length - 1] === 0) out.pop();
    return out;
  };
  return [...trim(release), ...trim(pre)];
}

export function compareGemVersions(a: GemVersion | string, b: GemVersion | string): number {
  const x = canonical(typeof a === "string" ? parseGemVersion(a) : a);
  const y = canonical(typeof b === "string" ? parseGemVersion(b) : b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const l = x[i] ?? 0;
    const r = y[i] ?? 0;
    if (l === r) continue;
    // a letter segment marks a pre-release, which sorts before any number: 1.0.a < 1.0 < 1.0.1
    if (typeof l === "string" && typeof r === "number") return -1;
    if (typeof l === "number" && typeof r === "string") return 1;
    return l < r ? -1 : 1;
  }
  return 0;
}

/** Gem::Version#bump: the upper bound of `~>`. "1.2.3" → "1.3", "1.2" → "2", "1" → "2". */
function bump(v: GemVersion): Segment[] {
  const segments = [...v.segments];
  while (segments.some((s) => typeof s === "string")) segments.pop();
  if (segments.length > 1) segments.pop();
  segments[segments.length - 1] = (segments[segments.length - 1] as number) + 1;
  return segments;
}

/** Gem::Version#release: the version without its pre-release part. */
function release(v: GemVersion): GemVersion {
  if (!v.prerelease) return v;
  const segments = [...v.segments];
  while (segments.some((s) => typeof s === "string")) segments.pop();
  return { text: segments.join("."), segments, prerelease: false };
}

export type GemOperator = "=" | "!=" | ">" | "<" | ">=" | "<=" | "~>";

export interface GemConstraint {
  operator: GemOperator;
  version: GemVersion;
}

const CONSTRAINT_RE = /^\s*(=|!=|>=|<=|>|<|~>)?\s*(\S+)\s*$/;

/** One `OP VERSION` (OP `=` when left out), as Gem::Requirement.parse reads it. */
export function parseGemConstraint(text: string): GemConstraint {
  const m = CONSTRAINT_RE.exec(text);
  if (!m || !isGemVersion(m[2] as string)) {
    throw new Error(`"${text}" is not a RubyGems requirement (expected e.g. "~> 1.3", ">= 2.0, < 3")`);
  }
  return { operator: (m[1] ?? "=") as GemOperator, version: parseGemVersion(m[2] as string) };
}

/**
 * A requirement as config files and gemspecs write it: one string with comma-separated
 * constraints (">= 1.0, < 2"), or a list of them. Empty means ">= 0".
 */
export function parseGemRequirement(requirement: string | readonly string[]): GemConstraint[] {
  const parts = (typeof requirement === "string" ? [requirement] : requirement)
    .flatMap((r) => r.split(","))
    .map((r) => r.trim())
    .filter((r) => r !== "");
  return parts.length === 0 ? [parseGemConstraint(">= 0")] : parts.map(parseGemConstraint);
}

export function constraintSatisfied(version: GemVersion, c: GemConstraint): boolean {
  const cmp = compareGemVersions(version, c.version);
  switch (c.operator) {
    case "=":
      return cmp === 0;
    case "!=":
      return cmp !== 0;
    case ">":
      return cmp > 0;
    case "<":
      return cmp < 0;
    case ">=":
      return cmp >= 0;
    case "<=":
      return cmp <= 0;
    case "~>": {
      if (cmp < 0) return false;
      const upper = bump(c.version);
      const r = release(version);
      return compareGemVersions(r, { text: upper.join("."), segments: upper, prerelease: false }) < 0;
    }
  }
}

/** True when a requirement names a pre-release itself, which lets pre-releases satisfy it. */
export function requirementAllowsPrerelease(constraints: readonly GemConstraint[]): boolean {
  return constraints.some((c) => c.version.prerelease);
}

/**
 * Gem::Dependency#match?: every constraint holds, and a pre-release only matches a requirement
 * that names a pre-release (`gem install` never picks one otherwise).
 */
export function gemVersionMatches(
  version: GemVersion | string,
  constraints: readonly GemConstraint[],
  allowPrerelease = requirementAllowsPrerelease(constraints),
): boolean {
  const v = typeof version === "string" ? parseGemVersion(version) : version;
  if (v.prerelease && !allowPrerelease) return false;
  return constraints.every((c) => constraintSatisfied(v, c));
}

export function formatGemConstraint(c: GemConstraint): string {
  return `${c.operator} ${c.version.text}`;
}
