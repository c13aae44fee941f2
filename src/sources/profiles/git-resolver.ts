/**
 * Git profile sources. Layout and cache key follow InSpec v6.8.24 (lib/inspec/fetcher/git.rb):
 * - resolved_source `{git, ref: <commit>, relative_path?}`;
 * - cache key: the commit, or `sha256(commit + relative_path)` (hex) when relative_path is set;
 * - vendor/<key>/ holds the checkout; with relative_path InSpec's `cp_r(checkout/rel, dest)` puts
 *   the folder itself inside: vendor/<key>/<basename(rel)>/. The `.git` folder InSpec also copies
 *   is left out: `inspec archive` drops dot names, so it never reaches a profile archive anyway.
 */
import { createHash } from "node:crypto";
import { existsSync, realpathSync, statSync } from "node:fs";
import { basename, join, normalize, sep } from "node:path";
import { ConfigError, IntegrityError } from "../../errors.js";
import { ProfileError, type ProfileSource } from "../../profiles/metadata.js";
import { redactSecrets } from "../../redact.js";
import { type FetchedProfile, ProfileResolver } from "./base.js";
import { checkoutCommit, normalizeRemote, pinRef, redactUrl, resolveShortSha } from "./git.js";

type GitSource = Extract<ProfileSource, { kind: "git" }>;

export function gitCacheKey(commit: string, relativePath?: string): string {
  if (!relativePath) return commit;
  return createHash("sha256")
    .update(commit + relativePath)
    .digest("hex");
}

export class GitResolver extends ProfileResolver<GitSource> {
  async fetch(source: GitSource, cwd: string): Promise<FetchedProfile> {
    const set = [source.branch, source.tag, source.ref].filter((x) => x !== undefined);
    if (set.length > 1) {
      throw new ConfigError(`git source ${redactUrl(source.git)}: give only one of branch, tag and ref`);
    }
    const remote = normalizeRemote(source.git, cwd);
    const gitOpts = { ...this.ctx.git, signal: this.ctx.signal };
    let commit: string;
    try {
      commit = await pinRef(remote, source, gitOpts);
    } catch (err) {
      if (source.ref && /^[0-9a-f]{4,39}$/i.test(source.ref)) {
        commit = await resolveShortSha(
          remote,
          source.ref.toLowerCase(),
          await this.scratch("gitref"),
          gitOpts,
        );
      } else throw err;
    }
    const dir = await this.scratch("git");
    await checkoutCommit(remote, commit, dir, gitOpts);
    const rel = source.relative_path ? normalize(source.relative_path).replace(/\/+$/, "") : undefined;
    if (rel && (rel.startsWith("..") || rel.startsWith("/"))) {
      throw new ConfigError(
        `git source ${redactUrl(source.git)}: relative_path "${source.relative_path}" leaves the repository`,
      );
    }
    const root = rel ? join(dir, rel) : dir;
    if (rel && existsSync(root)) {
      // a committed symbolic link as relative_path (or inside it) must not lead out of the checkout
      const [realRoot, realDir] = [realpathSync(root), realpathSync(dir)];
      if (realRoot !== realDir && !realRoot.startsWith(realDir + sep)) {
        throw new IntegrityError(
          "PATH_ESCAPE",
          `git source ${redactUrl(source.git)}: relative_path "${source.relative_path}" is a link leading out of the repository`,
          redactUrl(source.git),
        );
      }
    }
    if (!existsSync(root) || !statSync(root).isDirectory()) {
      throw new ProfileError(
        `Cannot find relative path '${source.relative_path}' within profile in git repo specified by '${redactUrl(source.git)}' (commit ${commit})`,
        redactUrl(source.git),
        "PROFILE_NOT_FOUND",
      );
    }
    // recorded in inspec.lock, annotations and bundle.json: credentials in the URL are not
    const pinned: FetchedProfile["pinned"] = { git: redactSecrets(source.git), ref: commit };
    // InSpec records relative_path exactly as written, and hashes it as written for the key
    if (source.relative_path) pinned.relative_path = source.relative_path;
    return {
      pinned,
      cacheKey: gitCacheKey(commit, source.relative_path),
      vendorDir: root,
      vendorUnder: rel ? basename(rel) : "",
      root,
      contentRoot: dir,
      identity: `git:${source.git}@${commit}:${rel ?? ""}`,
      label: `${redactUrl(source.git)}@${commit.slice(0, 12)}${rel ? `:${rel}` : ""}`,
    };
  }
}
