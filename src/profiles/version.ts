/**
 * Version constraints of profile dependencies (`depends[].version` in inspec.yml).
 *
 * InSpec (v6.8.24, lib/inspec/dependencies/requirement.rb) checks them with the `semverse` gem:
 * versions are `MAJOR[.MINOR[.PATCH]][-pre][+build]` with an optional leading `v`, missing parts
 * are 0, and a constraint is `OP VERSION` with OP one of `=`, `>`, `<`, `>=`, `<=`, `~>` (or `~`),
 * `=` when left out. A version satisfies a list when it satisfies every entry. Two semverse rules
 * that differ from RubyGems are kept so that what passes here passes in CINC Auditor:
 * `~> 1.2` allows `< 2.0.0` and `~> 1.2.3` allows `< 1.3.0`, and a pre-release only satisfies a
 * `>`, `>=`, `=` or `~>` constraint that names a pre-release itself.
 * `!=` (RubyGems has it, semverse does not) is accepted too: CINC Auditor checks constraints only
 * when it vendors, never when it runs from the inspec.lock that airgap writes, so it does no harm there.
 */
import { ConfigError } from "../errors.js";

export interface Version {
  major: number;
  minor: number;
  patch: number;
  pre?: string;
  build?: string;
}

const VERSION_FULL = /^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9a-z.-]+))?(?:\+([0-9a-z.-]+))?$/i;
const VERSION_SHORT = /^v?(\d+)(?:\.(\d+))?\.?$/;

export function parseVersion(s: string): Version {
  const text = String(s).trim();
  const m = VERSION_FULL.exec(text);
  if (m) {
    const v: Version = { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]) };
    if (m[4]) v.pre = m[4];
    if (m[5]) v.build = m[5];
    return v;
  }
  const s2 = VERSION_SHORT.exec(text);
  if (s2) return { major: Number(s2[1]), minor: Number(s2[2] ?? 0), patch: 0 };
  throw new ConfigError(`"${s}" is not a version (expected MAJOR.MINOR.PATCH)`);
}

export function formatVersion(v: Version): string {
  return `${v.major}.${v.minor}.${v.patch}${v.pre ? `-${v.pre}` : ""}${v.build ? `+${v.build}` : ""}`;
}

function identifiers(s: string | undefined): (string | number)[] {
  if (!s) return [];
  return s.split(".").map((x) => (String(Number.parseInt(x, 10)) === x ? Number.parseInt(x, 10) : x));
}

function compareIdentifiers(a: string | undefined, b: string | undefined): number {
  const ia = identifiers(a);
  const ib = identifiers(b);
  for (let i = 0; i < Math.max(ia.length, ib.length); i++) {
    const x = ia[i];
    const y = ib[i];
    if (x === undefined || y === undefined) {
      // semverse compares class names against nil, reversed: other.class <=> self.class
      // ("Integer"/"String" vs "NilClass"), so 1.0.0-alpha < 1.0.0-alpha.1 but 1.0.0-alpha.beta < 1.0.0-alpha
      const cx = x === undefined ? "NilClass" : typeof x === "number" ? "Integer" : "String";
      const cy = y === undefined ? "NilClass" : typeof y === "number" ? "Integer" : "String";
      return cy < cx ? -1 : cy > cx ? 1 : 0;
    }
    if (typeof x === typeof y) {
      if (x < y) return -1;
      if (x > y) return 1;
    } else {
      const cx = typeof x === "number" ? "Integer" : "String";
      const cy = typeof y === "number" ? "Integer" : "String";
      return cx < cy ? -1 : 1;
    }
  }
  return 0;
}

function presenceScore(v: Version): number {
  if (v.pre) return 0;
  return v.build ? 2 : 1;
}

export function compareVersions(a: Version, b: Version): number {
  for (const k of ["major", "minor", "patch"] as const) {
    if (a[k] !== b[k]) return a[k] < b[k] ? -1 : 1;
  }
  const s = presenceScore(a) - presenceScore(b);
  if (s !== 0) return s < 0 ? -1 : 1;
  const p = compareIdentifiers(a.pre, b.pre);
  if (p !== 0) return p;
  if (a.build && b.build) return compareIdentifiers(a.build, b.build);
  const ab = a.build ?? "";
  const bb = b.build ?? "";
  return ab < bb ? -1 : ab > bb ? 1 : 0;
}

export type Operator = "=" | "!=" | ">" | "<" | ">=" | "<=" | "~>";

export interface Constraint {
  operator: Operator;
  version: Version;
  /** `~>` uses how many parts were written: `~> 1.2` differs from `~> 1.2.0`. */
  written: { minor: boolean; patch: boolean };
  text: string;
}

const CONSTRAINT_RE =
  /^(?:(~>|~|>=|<=|!=|=|>|<)\s*)?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$/;

export function parseConstraint(text: string): Constraint {
  const t = String(text).trim();
  if (t === "") return parseConstraint(">= 0.0.0");
  const m = CONSTRAINT_RE.exec(t);
  if (!m) {
    throw new ConfigError(
      `"${text}" is not a version constraint (expected e.g. ">= 1.2", "~> 2.0", "= 1.0.0")`,
    );
  }
  const op = (m[1] === "~" ? "~>" : (m[1] ?? "=")) as Operator;
  const version: Version = { major: Number(m[2]), minor: Number(m[3] ?? 0), patch: Number(m[4] ?? 0) };
  if (m[5]) version.pre = m[5];
  if (m[6]) version.build = m[6];
  return {
    operator: op,
    version,
    written: { minor: m[3] !== undefined, patch: m[4] !== undefined },
    text: t,
  };
}

function approxUpperBound(c: Constraint): Version {
  const min = c.version;
  if (!c.written.patch) return { major: min.major + 1, minor: 0, patch: 0 };
  if (min.build || min.pre) {
    // semverse bumps the last pre-release/build identifier to "-" (sorts after digits) when numeric
    const field = min.build ? "build" : "pre";
    const ids = (min[field] ?? "").split(".");
    const last = ids[ids.length - 1] ?? "";
    if (String(Number.parseInt(last, 10)) === last) ids[ids.length - 1] = "-";
    else ids[ids.length - 1] = "";
    const bound: Version = { major: min.major, minor: min.minor, patch: min.patch };
    if (field === "build") {
      if (min.pre) bound.pre = min.pre;
      bound.build = ids.join(".");
    } else {
      bound.pre = ids.join(".");
    }
    return bound;
  }
  return { major: min.major, minor: min.minor + 1, patch: 0 };
}

function isZero(v: Version): boolean {
  return v.major === 0 && v.minor === 0 && v.patch === 0;
}

export function satisfies(version: Version | string, constraint: Constraint | string): boolean {
  const v = typeof version === "string" ? parseVersion(version) : version;
  const c = typeof constraint === "string" ? parseConstraint(constraint) : constraint;
  const lessOp = c.operator === "<" || c.operator === "<=";
  // semverse's "greedy match" rule: 2.0.0-alpha does not satisfy >= 1.0.0
  if (!isZero(c.version) && !lessOp && c.operator !== "!=" && v.pre && !c.version.pre) return false;
  const cmp = compareVersions(v, c.version);
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
    case "~>":
      return cmp >= 0 && compareVersions(v, approxUpperBound(c)) < 0;
  }
}

/**
 * The constraints of a dependency as InSpec stores them: `Array(version)`. A string with commas
 * ("`>= 1.0, < 2.0`") is split, as RubyGems would read it.
 */
export function constraintList(version: unknown): string[] {
  if (version === undefined || version === null) return [];
  const list = Array.isArray(version) ? version : [version];
  return list.map((x) => String(x));
}

export function satisfiesAll(version: string, constraints: readonly string[]): boolean {
  const v = parseVersion(version);
  return constraints
    .flatMap((c) => c.split(","))
    .filter((c) => c.trim() !== "")
    .every((c) => satisfies(v, parseConstraint(c)));
}
