/**
 * Helm's version constraints (Masterminds semver v3) on top of node-semver: `,` means "and", and a
 * constraint that names a prerelease admits prereleases of any version (node-semver would only admit
 * those of the same major.minor.patch); otherwise prereleases are left out, as both libraries do.
 */
import semver from "semver";

const PRERELEASE = /\d+\.\d+\.\d+-[0-9A-Za-z]/;

export function helmRange(constraint: string): string {
  return constraint.replace(/\s*,\s*/g, " ").trim();
}

function options(constraint: string): semver.RangeOptions {
  return { includePrerelease: PRERELEASE.test(constraint) };
}

/** The valid range, or null when `constraint` is neither a version nor a range. */
export function validHelmRange(constraint: string): string | null {
  try {
    return semver.validRange(helmRange(constraint), options(constraint));
  } catch {
    return null;
  }
}

export function satisfiesHelm(version: string, constraint: string): boolean {
  return semver.satisfies(version, helmRange(constraint), options(constraint));
}

export function maxSatisfyingHelm(versions: string[], constraint: string): string | null {
  return semver.maxSatisfying(versions, helmRange(constraint), options(constraint));
}
