/**
 * Resolve, pin, vendor and pack CINC Auditor profiles.
 *
 * The result of each profile is what `cinc-auditor vendor --overwrite` followed by
 * `cinc-auditor archive` produce (InSpec v6.8.24, the base of CINC Auditor 6): the profile's own
 * files, a fresh inspec.lock, and every transitive dependency extracted flat into vendor/<cache key>/,
 * so `cinc-auditor exec NAME-VERSION.tar.gz` finds all of them by cache key and never goes online.
 * Resolution follows lib/inspec/dependencies/resolver.rb: each dependency is fetched from its
 * source (no single-version solving: several versions of one profile can coexist), its version is
 * checked against the constraints, a name listed twice in one `depends` is an error, and a source
 * that appears again on its own dependency path is a cycle.
 *
 * Two rules go beyond InSpec: one dependency name and version coming from two different contents is
 * refused (InSpec's flattened dependency list would silently keep one of them), and a git dependency with
 * relative_path is also vendored under its commit (see `vendorAliases`).
 */
import { chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { ConfigError, IntegrityError } from "../errors.js";
import { isSha256Hex, parseSha256Hex } from "../oci/digest.js";
import { type Confinement, checkDependencySource, realRoots } from "../sources/profiles/confine.js";
import { GIT_COMMIT_RE } from "../sources/profiles/git.js";
import {
  DEFAULT_SUPERMARKET_URL,
  type FetchContext,
  type FetchedProfile,
  fetchSource,
  type OciOpener,
  type PinnedSource,
} from "../sources/profiles/index.js";
import { listTree, packProfile } from "./archive.js";
import { type LockEntry, type ResolvedSource, renderLockfile } from "./lockfile.js";
import {
  archiveSlug,
  type DependencySpec,
  ProfileError,
  type ProfileSource,
  readMetadata,
} from "./metadata.js";
import { satisfiesAll } from "./version.js";

/** A `profiles:` entry of bundle.config.yaml (shapes from src/config/schema.ts). */
export type ProfileEntry =
  | { git: string; branch?: string; tag?: string; ref?: string; relative_path?: string; name?: string }
  | { url: string; sha256?: string; name?: string }
  | { path: string; name?: string; allow_dependencies_from?: string[] }
  | { supermarket: string; version?: string; url?: string; name?: string }
  | { oci: string; name?: string };

export interface DependencyNode {
  /** The name inspec.lock gives it: the depending profile's `name:` for it, else its own name. */
  name: string;
  /** `name` in its own inspec.yml. */
  profileName: string;
  version: string;
  versionConstraints: string[];
  source: ResolvedSource;
  /** vendor/<cacheKey>/ in the vendored profile. */
  cacheKey: string;
  dependencies: DependencyNode[];
}

export interface ResolvedProfile {
  /** Name in the bundle: the entry's `name`, else inspec.yml's. */
  name: string;
  /** `name` in inspec.yml. */
  profileName: string;
  version: string;
  /** The config entry it came from. */
  origin: ProfileEntry;
  /** The entry pinned: git commit, url sha256, path sha256, OCI digest. */
  source: PinnedSource;
  /** The vendored profile folder (inspec.lock + vendor/). */
  dir: string;
  /** `NAME-VERSION.tar.gz` (inspec archive's name) and where it was written. */
  fileName: string;
  tarPath: string;
  sha256: string;
  size: number;
  /** inspec.lock as written. */
  lockfile: string;
  dependencies: DependencyNode[];
}

export interface ResolveOptions {
  /** Output folder: vendored profiles and archives are written here. */
  workDir: string;
  /** Relative `path:` entries resolve against this folder (the config file's). */
  configDir: string;
  /** Download cache shared between runs: url archives by sha256, reused when a source pins that sha256. */
  cacheDir?: string;
  signal?: AbortSignal;
  /** Extra trusted CA (PEM file) for HTTPS downloads and git. */
  caFile?: string;
  /** Default Supermarket server (https://supermarket.chef.io). */
  supermarketUrl?: string;
  /** Reads `oci:` profile sources (the registry client's repository). */
  openOci?: OciOpener;
  /** Called as each profile or dependency is fetched, for progress output. */
  onFetch?: (label: string) => void;
}

export function sourceFromEntry(entry: ProfileEntry): ProfileSource {
  if ("git" in entry) {
    const s: ProfileSource = { kind: "git", git: entry.git };
    if (entry.branch) s.branch = entry.branch;
    if (entry.tag) s.tag = entry.tag;
    if (entry.ref) s.ref = entry.ref;
    if (entry.relative_path) s.relative_path = entry.relative_path;
    return s;
  }
  if ("supermarket" in entry) {
    const s: ProfileSource = { kind: "supermarket", supermarket: entry.supermarket };
    if (entry.url) s.supermarket_url = entry.url;
    if (entry.version) s.version = entry.version;
    return s;
  }
  if ("url" in entry) {
    const s: ProfileSource = { kind: "url", url: entry.url };
    if (entry.sha256) s.sha256 = parseSha256Hex(entry.sha256.toLowerCase(), `sha256 of profile ${entry.url}`);
    return s;
  }
  if ("path" in entry) return { kind: "path", path: entry.path };
  if ("oci" in entry) return { kind: "oci", oci: entry.oci };
  throw new ConfigError(
    `profile entry ${JSON.stringify(entry)} has no source (git, url, path, supermarket or oci)`,
  );
}

function contentOf(f: FetchedProfile): string {
  return f.contentRoot ?? f.vendorDir;
}

function describeSource(s: ProfileSource): string {
  switch (s.kind) {
    case "git":
      return `git ${s.git}${s.branch ? ` branch ${s.branch}` : s.tag ? ` tag ${s.tag}` : s.ref ? ` ref ${s.ref}` : ""}${s.relative_path ? ` (${s.relative_path})` : ""}`;
    case "url":
      return `url ${s.url}`;
    case "path":
      return `path ${s.path}`;
    case "supermarket":
      return `supermarket ${s.supermarket}`;
    case "oci":
      return `oci ${s.oci}`;
    case "compliance":
      return `compliance ${s.compliance}`;
  }
}

interface Fetched extends FetchedProfile {
  profileName: string;
  version: string;
  depends: DependencySpec[];
}

interface ChainLink {
  identity: string;
  name: string;
}

/** One top-level profile's resolution state: the flat vendor set and the NAME-VERSION index. */
class Resolution {
  readonly vendor = new Map<string, Fetched>();
  readonly byNameVersion = new Map<string, Fetched>();
  /** Cache keys that relative_path git deps of one commit share, for vendorAliases. */
  readonly byCommit = new Map<string, Set<string>>();
}

export class ProfileResolverSession {
  private readonly memo = new Map<string, Promise<Fetched>>();

  constructor(
    private readonly ctx: FetchContext,
    private readonly onFetch?: (label: string) => void,
  ) {}

  async fetch(source: ProfileSource, cwd: string): Promise<Fetched> {
    const key = JSON.stringify([source, source.kind === "path" || source.kind === "git" ? cwd : ""]);
    let p = this.memo.get(key);
    if (!p) {
      p = (async () => {
        this.onFetch?.(describeSource(source));
        const f = await fetchSource(source, cwd, this.ctx);
        const meta = await readMetadata(f.root, f.label);
        if (f.requestedVersion !== undefined && f.requestedVersion !== meta.version) {
          throw new ProfileError(
            `${f.label} is profile ${meta.name} version ${meta.version}, not the requested version ${f.requestedVersion}`,
            f.label,
            "PROFILE_VERSION",
          );
        }
        return { ...f, profileName: meta.name, version: meta.version, depends: meta.depends };
      })();
      this.memo.set(key, p);
      // a failed fetch is not cached: the next caller gets the error again from a fresh attempt
      p.catch(() => this.memo.delete(key));
    }
    return await p;
  }

  /** Resolve the dependency tree below `parent`. */
  async resolveDeps(
    parent: Fetched,
    trust: Confinement,
    chain: ChainLink[],
    state: Resolution,
  ): Promise<DependencyNode[]> {
    const seen = new Set<string>();
    const nodes: DependencyNode[] = [];
    const where =
      chain.length === 1
        ? `the inspec.yml of profile ${parent.profileName}`
        : `the dependency information for ${chain[chain.length - 1]!.name}`;
    for (const spec of parent.depends) {
      if (spec.name !== undefined) {
        if (seen.has(spec.name)) {
          throw new ProfileError(
            `The dependency ${spec.name} is listed twice in ${where}`,
            spec.name,
            "PROFILE_DUPLICATE",
          );
        }
        seen.add(spec.name);
      }
      if (spec.source.kind === "oci") {
        throw new ProfileError(
          `${where}: oci dependencies are not an inspec.yml source`,
          spec.name,
          "PROFILE_UNSUPPORTED",
        );
      }
      await checkDependencySource(spec.source, trust, {
        profile: parent.profileName,
        dependency: spec.name ?? describeSource(spec.source),
        cwd: parent.root,
      });
      const dep = await this.fetch(spec.source, parent.root);
      // a path dependency is part of its parent's content and keeps its trust; anything fetched is remote
      const depTrust: Confinement =
        spec.source.kind === "path"
          ? { local: trust.local, roots: [...trust.roots, ...(await realRoots([contentOf(dep)]))] }
          : { local: false, roots: await realRoots([contentOf(dep)]) };
      const name = spec.name ?? dep.profileName;
      const path = [...chain.map((l) => l.name), name];
      if (chain.some((l) => l.identity === dep.identity)) {
        throw new ProfileError(
          `Dependency ${name} would cause a dependency cycle: ${path.join(" -> ")}`,
          name,
          "PROFILE_CYCLE",
        );
      }
      if (!satisfiesAll(dep.version, spec.versionConstraints)) {
        throw new ProfileError(
          `The profile ${name} from ${dep.label} has a version ${dep.version} which doesn't match ${spec.versionConstraints.join(", ")} (required by ${path.slice(0, -1).join(" -> ")})`,
          name,
          "PROFILE_VERSION",
        );
      }
      this.record(dep, name, state, path);
      const children = await this.resolveDeps(
        dep,
        depTrust,
        [...chain, { identity: dep.identity, name }],
        state,
      );
      nodes.push({
        name,
        profileName: dep.profileName,
        version: dep.version,
        versionConstraints: spec.versionConstraints,
        source: dep.pinned as ResolvedSource,
        cacheKey: dep.cacheKey,
        dependencies: children,
      });
    }
    return nodes;
  }

  /**
   * CINC Auditor flattens the locked tree into one list keyed by "<lock name>-<version>"
   * (dependency_set.rb#flatten_dep_tree, last one wins), so two different contents under one such
   * key would silently run only one of them.
   */
  private record(dep: Fetched, name: string, state: Resolution, path: string[]): void {
    const nv = `${name}-${dep.version}`;
    const other = state.byNameVersion.get(nv);
    if (other && other.cacheKey !== dep.cacheKey) {
      throw new ProfileError(
        `conflicting dependencies: ${name} version ${dep.version} comes from ${other.label} and from ${dep.label} (via ${path.join(" -> ")}) with different content; CINC Auditor would load only one of them`,
        name,
        "PROFILE_CONFLICT",
      );
    }
    state.byNameVersion.set(nv, dep);
    // every cache key is derived from content (sha256 or commit), so one key is one vendor folder
    state.vendor.set(dep.cacheKey, dep);
    const pinned = dep.pinned as ResolvedSource;
    if ("git" in pinned && pinned.relative_path) {
      const set = state.byCommit.get(pinned.ref) ?? new Set<string>();
      set.add(dep.cacheKey);
      state.byCommit.set(pinned.ref, set);
    }
  }

  /**
   * Resolve one config entry completely: fetch and pin it, resolve its dependencies, write the
   * vendored profile to `<workDir>/<slug>-<version>/` and its archive to `<workDir>/<slug>-<version>.tar.gz`.
   */
  async resolveEntry(entry: ProfileEntry, configDir: string, workDir: string): Promise<ResolvedProfile> {
    const source = sourceFromEntry(entry);
    const top = await this.fetch(source, configDir);
    const state = new Resolution();
    const trust: Confinement =
      "path" in entry
        ? {
            local: true,
            roots: await realRoots([
              configDir,
              contentOf(top),
              ...(entry.allow_dependencies_from ?? []).map((d) => resolve(configDir, d)),
            ]),
          }
        : { local: false, roots: await realRoots([contentOf(top)]) };
    const dependencies = await this.resolveDeps(
      top,
      trust,
      [{ identity: top.identity, name: top.profileName }],
      state,
    );
    const base = `${archiveSlug(top.profileName)}-${top.version}`;
    const dir = join(workDir, base);
    await rm(dir, { recursive: true, force: true });
    await copyTree(
      top.root,
      dir,
      (rel) => rel === "vendor" || rel.startsWith("vendor/") || rel === "inspec.lock",
    );
    const lockfile = renderLockfile(dependencies.map(toLockEntry));
    await writeFile(join(dir, "inspec.lock"), lockfile);
    for (const [key, dep] of state.vendor) {
      await copyTree(
        dep.vendorDir,
        join(vendorPath(dir, key, dep.label), ...(dep.vendorUnder ? [dep.vendorUnder] : [])),
      );
    }
    await vendorAliases(dir, state);
    const fileName = `${base}.tar.gz`;
    const tarPath = join(workDir, fileName);
    const packed = await packProfile(dir, tarPath, this.ctx.signal);
    return {
      name: entry.name ?? top.profileName,
      profileName: top.profileName,
      version: top.version,
      origin: entry,
      source: top.pinned,
      dir,
      fileName,
      tarPath,
      sha256: packed.sha256,
      size: packed.size,
      lockfile,
      dependencies,
    };
  }
}

/**
 * CINC Auditor 6 looks a locked git dependency up in the vendor cache by its `ref` (the commit;
 * lib/inspec/cached_fetcher.rb#cache_key prefers `target[:ref]`), while the git fetcher vendors a
 * relative_path dependency under sha256(commit + relative_path). Without help such a dependency
 * would be fetched from the network at exec time. When one relative_path dependency is the only
 * one of its commit, its content is also placed at vendor/<commit>/ so exec finds it offline.
 */
async function vendorAliases(dir: string, state: Resolution): Promise<void> {
  for (const [commit, keys] of state.byCommit) {
    if (keys.size !== 1 || state.vendor.has(commit)) continue;
    const dep = state.vendor.get([...keys][0]!)!;
    await copyTree(dep.vendorDir, join(vendorPath(dir, commit, dep.label), dep.vendorUnder));
  }
}

/**
 * vendor/<key>/ of a vendored profile. Keys are content names (a sha256 or a git commit); anything
 * else is refused before it can name a folder.
 */
function vendorPath(dir: string, key: string, label: string): string {
  if (!isSha256Hex(key) && !GIT_COMMIT_RE.test(key)) {
    throw new IntegrityError(
      "MALFORMED",
      `${label}: vendor cache key ${JSON.stringify(key.slice(0, 80))} is neither a sha256 nor a git commit`,
      label,
    );
  }
  return join(dir, "vendor", key);
}

function toLockEntry(n: DependencyNode): LockEntry {
  const e: LockEntry = { name: n.name, resolved_source: n.source, version_constraints: n.versionConstraints };
  if (n.dependencies.length > 0) e.dependencies = n.dependencies.map(toLockEntry);
  return e;
}

/** Copy the files `inspec archive` would take from `from` (dot names left out) into `to`. */
async function copyTree(from: string, to: string, exclude?: (rel: string) => boolean): Promise<void> {
  await mkdir(to, { recursive: true });
  const entries = await listTree(from, exclude ? { exclude } : {});
  for (const e of entries) {
    const dest = join(to, ...e.rel.split("/"));
    if (e.type === "dir") await mkdir(dest, { recursive: true });
    else {
      await mkdir(dirname(dest), { recursive: true });
      await copyFile(e.abs, dest);
      if (e.executable) await chmod(dest, 0o755);
    }
  }
}

/**
 * Resolve every `profiles:` entry. Profiles are resolved one after another (each shares fetched
 * sources with the next); the same NAME-VERSION from two entries with different content is an error.
 */
export async function resolveProfiles(
  entries: readonly ProfileEntry[],
  opts: ResolveOptions,
): Promise<ResolvedProfile[]> {
  await mkdir(opts.workDir, { recursive: true });
  const tmpDir = await mkdtemp(join(opts.workDir, ".fetch-"));
  const ctx: FetchContext = {
    tmpDir,
    http: opts.caFile ? { caFile: opts.caFile } : {},
    git: opts.caFile ? { caFile: opts.caFile } : {},
    supermarketUrl: opts.supermarketUrl ?? DEFAULT_SUPERMARKET_URL,
  };
  if (opts.signal) ctx.signal = opts.signal;
  if (opts.openOci) ctx.openOci = opts.openOci;
  if (opts.cacheDir) ctx.cacheDir = join(opts.cacheDir, "profiles");
  const session = new ProfileResolverSession(ctx, opts.onFetch);
  const out: ResolvedProfile[] = [];
  try {
    for (const entry of entries) {
      const p = await session.resolveEntry(entry, opts.configDir, opts.workDir);
      const same = out.find((o) => o.profileName === p.profileName && o.version === p.version);
      if (same) {
        if (same.sha256 !== p.sha256) {
          throw new ProfileError(
            `profiles ${JSON.stringify(same.origin)} and ${JSON.stringify(entry)} are both ${p.profileName} ${p.version} but differ`,
            p.profileName,
            "PROFILE_CONFLICT",
          );
        }
        continue;
      }
      out.push(p);
    }
  } finally {
    await rm(tmpDir, { recursive: true, force: true });
  }
  return out;
}
