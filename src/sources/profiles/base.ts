/**
 * The shared part of every profile source: a resolver turns a source (config entry or inspec.yml
 * `depends` entry) into a pinned, fetched profile on disk. Subclasses only fetch; pinning rules,
 * cache keys and vendor layouts follow InSpec v6.8.24's fetchers and are documented where made.
 */
import { mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import type { ResolvedSource } from "../../profiles/lockfile.js";
import type { ProfileSource } from "../../profiles/metadata.js";
import type { ReadOnlyStore } from "../../store/store.js";
import type { GitOptions } from "./git.js";
import type { HttpOptions } from "./http.js";

/** Opens an OCI repository for reading; supplied by the caller (the registry client). */
export type OciOpener = (registry: string, repository: string) => ReadOnlyStore | Promise<ReadOnlyStore>;

export interface FetchContext {
  /** Scratch folder of this run; fetched sources are written below it. */
  tmpDir: string;
  signal?: AbortSignal;
  http: HttpOptions;
  git: GitOptions;
  /** Default Supermarket server when a source does not name one. */
  supermarketUrl: string;
  /** Downloads by sha256 (`<cacheDir>/sha256/<hex>`), reused when a source pins that sha256. */
  cacheDir?: string;
  /** How to read `oci:` sources; without it they are refused. */
  openOci?: OciOpener;
}

/** How a source was pinned: the lockfile's resolved_source, or an OCI digest for top-level OCI profiles. */
export type PinnedSource = ResolvedSource | { oci: string; digest: string };

export interface FetchedProfile {
  /** What goes into inspec.lock's `resolved_source` (and the inventory). */
  pinned: PinnedSource;
  /** InSpec's vendor cache key: vendor/<cacheKey>/. */
  cacheKey: string;
  /** The folder whose content InSpec would leave in vendor/<cacheKey>/ ... */
  vendorDir: string;
  /** ... placed under this sub-folder of vendor/<cacheKey>/ ("" = directly). */
  vendorUnder: string;
  /** The profile root (the folder holding inspec.yml). */
  root: string;
  /**
   * Everything this source fetched (a git checkout, an extracted archive): a remote profile's
   * `path:` dependencies must stay inside it. Default: vendorDir.
   */
  contentRoot?: string;
  /** Stable identity of the pinned content, for cycle detection and de-duplication. */
  identity: string;
  /** The source as a user would name it, for messages. */
  label: string;
  /** The version a source asked for itself (Supermarket `version:`), checked against inspec.yml. */
  requestedVersion?: string;
}

export abstract class ProfileResolver<S extends ProfileSource = ProfileSource> {
  constructor(protected readonly ctx: FetchContext) {}

  /** Fetch and pin `source`; relative paths resolve against `cwd` (the depending profile or config folder). */
  abstract fetch(source: S, cwd: string): Promise<FetchedProfile>;

  protected async scratch(prefix: string): Promise<string> {
    return await mkdtemp(join(this.ctx.tmpDir, `${prefix}-`));
  }
}
