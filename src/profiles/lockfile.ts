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
  return { lockfile_version: 1, depends: (doc.depends ?? []) as LockEntry[] };
}
