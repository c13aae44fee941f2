/**
 * inspec.yml: the parts airgap needs (name, version, depends), read as InSpec v6.8.24 reads them
 * (lib/inspec/metadata.rb: `depends` is a list of hashes whose keys pick the fetcher).
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { AirgapError, IntegrityError } from "../errors.js";
import { parseSha256Hex, type Sha256Hex } from "../oci/digest.js";
import { constraintList, parseConstraint, parseVersion } from "./version.js";

/** Where a profile or a dependency comes from, before pinning. */
export type ProfileSource =
  | { kind: "git"; git: string; branch?: string; tag?: string; ref?: string; relative_path?: string }
  | { kind: "url"; url: string; sha256?: Sha256Hex; username?: string; password?: string }
  | { kind: "path"; path: string }
  | { kind: "supermarket"; supermarket: string; supermarket_url?: string; version?: string }
  | { kind: "oci"; oci: string }
  | { kind: "compliance"; compliance: string };

export interface DependencySpec {
  /** The name the depending profile gives it (`name:`), if any. */
  name?: string;
  /** `Array(version)`, as InSpec keeps it. */
  versionConstraints: string[];
  source: ProfileSource;
}

export interface ProfileMetadata {
  name: string;
  version: string;
  title?: string;
  depends: DependencySpec[];
}

export class ProfileError extends AirgapError {
  constructor(
    message: string,
    readonly item?: string,
    code = "PROFILE",
    options?: { cause?: unknown },
  ) {
    super(message, code, options);
  }
}

function str(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string" || typeof v === "number") return String(v);
  return undefined;
}

/** One `depends` entry → its source. The keys are checked in InSpec's fetcher priority order. */
export function dependencySource(raw: Record<string, unknown>, where: string): ProfileSource {
  const s = (k: string) => str(raw[k]);
  if (raw.supermarket !== undefined) {
    const out: ProfileSource = { kind: "supermarket", supermarket: String(raw.supermarket) };
    const su = s("supermarket_url");
    if (su) out.supermarket_url = su;
    return out;
  }
  if (raw.compliance !== undefined) return { kind: "compliance", compliance: String(raw.compliance) };
  if (raw.url !== undefined) {
    const out: ProfileSource = { kind: "url", url: String(raw.url) };
    const sha = s("sha256");
    // InSpec compares the pin case-insensitively; anything but 64 hex digits is refused here, before
    // the value can reach the download cache, where it names a file.
    if (sha) out.sha256 = parseSha256Hex(sha.toLowerCase(), `${where}: sha256 of ${String(raw.url)}`);
    if (s("username")) out.username = s("username");
    if (s("password")) out.password = s("password");
    return out;
  }
  if (raw.git !== undefined) {
    const out: ProfileSource = { kind: "git", git: String(raw.git) };
    for (const k of ["branch", "tag", "ref", "relative_path"] as const) {
      const v = s(k);
      if (v) out[k] = v;
    }
    return out;
  }
  if (raw.path !== undefined) return { kind: "path", path: String(raw.path) };
  if (raw.gem !== undefined) {
    throw new ProfileError(
      `${where}: gem-based profile dependencies (gem: ${String(raw.gem)}) are not supported`,
      where,
    );
  }
  throw new ProfileError(
    `${where}: dependency ${str(raw.name) ?? "(unnamed)"} has no source (expected one of path, url, git, supermarket, compliance)`,
    where,
  );
}

export function parseMetadata(text: string, where: string): ProfileMetadata {
  let doc: unknown;
  try {
    // scalars as written: `version: 1.10` is the version "1.10", not the number 1.1
    doc = parseYaml(text, { schema: "failsafe" });
  } catch (err) {
    throw new ProfileError(
      `${where} is not valid YAML: ${(err as Error).message}`,
      where,
      "PROFILE_INVALID",
      {
        cause: err,
      },
    );
  }
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) {
    throw new ProfileError(`${where} is not a YAML mapping`, where, "PROFILE_INVALID");
  }
  const m = doc as Record<string, unknown>;
  const name = str(m.name);
  if (!name) throw new ProfileError(`${where} has no name`, where, "PROFILE_INVALID");
  const version = str(m.version);
  if (!version) throw new ProfileError(`${where} (profile ${name}) has no version`, where, "PROFILE_INVALID");
  try {
    parseVersion(version);
  } catch {
    throw new ProfileError(
      `${where}: version "${version}" of profile ${name} is not a semantic version`,
      where,
      "PROFILE_INVALID",
    );
  }
  const depends: DependencySpec[] = [];
  const rawDeps = m.depends === undefined || m.depends === "" ? [] : m.depends;
  if (!Array.isArray(rawDeps))
    throw new ProfileError(`${where}: depends must be a list`, where, "PROFILE_INVALID");
  rawDeps.forEach((d, i) => {
    const at = `${where} depends[${i}]`;
    if (!d || typeof d !== "object" || Array.isArray(d)) {
      throw new ProfileError(`${at} is not a mapping`, where, "PROFILE_INVALID");
    }
    const raw = d as Record<string, unknown>;
    const versionConstraints = constraintList(raw.version);
    for (const c of versionConstraints.flatMap((x) => x.split(","))) {
      try {
        if (c.trim()) parseConstraint(c);
      } catch (err) {
        throw new ProfileError(`${at}: ${(err as Error).message}`, where, "PROFILE_INVALID");
      }
    }
    const spec: DependencySpec = { versionConstraints, source: dependencySource(raw, at) };
    const n = str(raw.name);
    if (n) spec.name = n;
    depends.push(spec);
  });
  const out: ProfileMetadata = { name, version, depends };
  const title = str(m.title);
  if (title) out.title = title;
  return out;
}

/** Largest inspec.yml read (real ones are a few KiB; the file may come from an untrusted archive). */
export const MAX_METADATA_BYTES = 1024 ** 2;

export async function readMetadata(profileRoot: string, label: string): Promise<ProfileMetadata> {
  const file = join(profileRoot, "inspec.yml");
  let text: string;
  try {
    const { size } = await stat(file);
    if (size > MAX_METADATA_BYTES) {
      throw new IntegrityError(
        "MALFORMED",
        `${label}: inspec.yml has ${size} bytes, more than the ${MAX_METADATA_BYTES}-byte limit`,
        label,
      );
    }
    text = await readFile(file, "utf8");
  } catch (err) {
    if (err instanceof IntegrityError) throw err;
    throw new ProfileError(
      `${label} has no inspec.yml at its root; is it a CINC Auditor profile?`,
      label,
      "PROFILE_INVALID",
      {
        cause: err,
      },
    );
  }
  return parseMetadata(text, `${label}: inspec.yml`);
}

/** `inspec archive`'s file name slug (lib/inspec/profile.rb#archive_name). */
export function archiveSlug(name: string): string {
  return name
    .toLowerCase()
    .trim()
    .replace(/ /g, "-")
    .replace(/[^\w-]/g, "_");
}
