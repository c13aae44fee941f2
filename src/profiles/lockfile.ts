/**
 * inspec.lock, as InSpec v6.8.24 writes it (lib/inspec/dependencies/lockfile.rb,
 * requirement.rb#to_hash, fetcher/{url,git,local}.rb#resolved_source):
 *
 * ```yaml
 * ---
 * lockfile_version: 1
 * depends:
 * - name: NAME
 *   resolved_source: {url, sha256} | {git, ref, relative_path?} | {path, sha256}
 *   version_constraints: [] | ["~> 1.0", ...]
 *   dependencies: [...]         # only when the dependency has dependencies itself
 * ```
 * Key order and sequence indentation follow Ruby's `to_yaml` (Psych), which CINC Auditor reads back.
 */
import { Document, parse as parseYaml } from "yaml";
import { IntegrityError } from "../errors.js";
import { parseSha256Hex } from "../oci/digest.js";
import { GIT_COMMIT_RE } from "../sources/profiles/git.js";
import { ProfileError } from "./metadata.js";

export const LOCKFILE_VERSION = 1;

export type ResolvedSource =
  | { url: string; sha256: string }
  | { git: string; ref: string; relative_path?: string }
  | { path: string; sha256: string };

export interface LockEntry {
  name: string;
  resolved_source: ResolvedSource;
  version_constraints: string[];
  dependencies?: LockEntry[];
}

export interface Lockfile {
  lockfile_version: 1;
  depends: LockEntry[];
}

function orderedSource(s: ResolvedSource): Record<string, string> {
  if ("url" in s) return { url: s.url, sha256: s.sha256 };
  if ("git" in s) {
    const o: Record<string, string> = { git: s.git, ref: s.ref };
    if (s.relative_path) o.relative_path = s.relative_path;
    return o;
  }
  return { path: s.path, sha256: s.sha256 };
}

function orderedEntry(e: LockEntry): Record<string, unknown> {
  const o: Record<string, unknown> = {
    name: e.name,
    resolved_source: orderedSource(e.resolved_source),
    version_constraints: [...e.version_constraints],
  };
  if (e.dependencies && e.dependencies.length > 0) o.dependencies = e.dependencies.map(orderedEntry);
  return o;
}

export function renderLockfile(depends: LockEntry[]): string {
  const doc = new Document({ lockfile_version: LOCKFILE_VERSION, depends: depends.map(orderedEntry) });
  return doc.toString({ directives: true, indentSeq: false, lineWidth: 0, minContentWidth: 0 });
}

export function parseLockfile(text: string, where = "inspec.lock"): Lockfile {
  const doc = parseYaml(text) as { lockfile_version?: unknown; depends?: unknown } | null;
  if (!doc || typeof doc !== "object")
    throw new ProfileError(`${where} is not a YAML mapping`, where, "PROFILE_INVALID");
  if (Number(doc.lockfile_version) !== LOCKFILE_VERSION) {
    throw new ProfileError(
      `${where} has lockfile_version ${String(doc.lockfile_version)}, expected 1`,
      where,
      "PROFILE_INVALID",
    );
  }
  const depends = doc.depends ?? [];
  if (!Array.isArray(depends))
    throw new ProfileError(`${where}: depends must be a list`, where, "PROFILE_INVALID");
  for (const [i, e] of depends.entries()) checkLockEntry(e, `${where} depends[${i}]`);
  return { lockfile_version: 1, depends: depends as LockEntry[] };
}

/** A lock entry's pins are content names that may become vendor/ folder names: checked, never trusted. */
function checkLockEntry(e: unknown, at: string): void {
  if (!e || typeof e !== "object" || Array.isArray(e)) {
    throw new ProfileError(`${at} is not a mapping`, at, "PROFILE_INVALID");
  }
  const entry = e as { resolved_source?: unknown; dependencies?: unknown };
  const src = entry.resolved_source;
  if (!src || typeof src !== "object") {
    throw new ProfileError(`${at} has no resolved_source`, at, "PROFILE_INVALID");
  }
  const s = src as Record<string, unknown>;
  if ("sha256" in s) parseSha256Hex(s.sha256, `${at} resolved_source sha256`);
  if ("git" in s && !(typeof s.ref === "string" && GIT_COMMIT_RE.test(s.ref))) {
    throw new IntegrityError(
      "MALFORMED",
      `${at} resolved_source ref ${JSON.stringify(String(s.ref).slice(0, 80))} is not a full git commit id`,
      at,
    );
  }
  if (entry.dependencies !== undefined) {
    if (!Array.isArray(entry.dependencies)) {
      throw new ProfileError(`${at}: dependencies must be a list`, at, "PROFILE_INVALID");
    }
    for (const [i, d] of entry.dependencies.entries()) checkLockEntry(d, `${at} dependencies[${i}]`);
  }
}
