/**
 * Profile archives at an HTTP(S) URL, as InSpec v6.8.24's url fetcher (lib/inspec/fetcher/url.rb)
 * handles them: browse URLs of GitHub and Bitbucket become archive URLs, the archive is pinned by
 * its sha256 (verified when given, recorded when not), and the sha256 is the vendor cache key.
 */
import { existsSync } from "node:fs";
import { copyFile, mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError } from "../../errors.js";
import { digestPath, type Sha256Hex } from "../../oci/digest.js";
import { commonPrefix, extractArchive, listFiles, sha256File } from "../../profiles/archive.js";
import type { ProfileSource } from "../../profiles/metadata.js";
import { redactSecrets } from "../../redact.js";
import { type FetchedProfile, ProfileResolver } from "./base.js";
import { type GitOptions, pinRef } from "./git.js";
import { download, redact } from "./http.js";

type UrlSource = Extract<ProfileSource, { kind: "url" }>;

// InSpec's patterns, verbatim in meaning (Ruby's \w is ASCII like JavaScript's without the u flag).
const GITHUB_URL_REGEX = /^https?:\/\/(www\.)?github\.com\/(?<user>[\w-]+)\/(?<repo>[\w.-]+?)(\.git)?(\/)?$/;
const GITHUB_URL_WITH_TREE_REGEX =
  /^https?:\/\/(www\.)?github\.com\/(?<user>[\w-]+)\/(?<repo>[\w.-]+)\/tree\/(?<commit>[\w.]+)(\/)?$/;
const BITBUCKET_URL_REGEX =
  /^https?:\/\/(www\.)?bitbucket\.org\/(?<user>[\w-]+)\/(?<repo>[\w-]+)(\.git)?(\/)?$/;
const BITBUCKET_URL_BRANCH_REGEX =
  /^https?:\/\/(www\.)?bitbucket\.org\/(?<user>[\w-]+)\/(?<repo>[\w-]+)\/branch\/(?<branch>[\w.]+)(\/)?$/;
const BITBUCKET_URL_COMMIT_REGEX =
  /^https?:\/\/(www\.)?bitbucket\.org\/(?<user>[\w-]+)\/(?<repo>[\w-]+)\/commits\/(?<commit>[\w.]+)(\/)?$/;
// GitLab is airgap's addition (InSpec has no GitLab rule); same three shapes, GitLab's archive path.
const GITLAB_URL_REGEX = /^https?:\/\/(www\.)?gitlab\.com\/(?<path>[\w.-]+(?:\/[\w.-]+)+?)(\.git)?(\/)?$/;
const GITLAB_URL_TREE_REGEX =
  /^https?:\/\/(www\.)?gitlab\.com\/(?<path>[\w.-]+(?:\/[\w.-]+)+?)\/-\/tree\/(?<ref>[\w.]+)(\/)?$/;
const GITLAB_URL_COMMIT_REGEX =
  /^https?:\/\/(www\.)?gitlab\.com\/(?<path>[\w.-]+(?:\/[\w.-]+)+?)\/-\/commit\/(?<ref>[0-9a-f]{7,40})(\/)?$/;

/** Resolves the default branch of a hosted repository to its commit (InSpec: `git ls-remote URL HEAD`). */
export type DefaultRef = (repoGitUrl: string) => Promise<string>;

export function defaultRefVia(opts: GitOptions): DefaultRef {
  return async (remote) => await pinRef(remote, {}, opts);
}

/**
 * A browse URL turned into the archive URL InSpec downloads; any other URL unchanged. For the bare
 * repository URL InSpec asks git for the default branch's commit and downloads that commit's archive.
 */
interface Rule {
  re: RegExp;
  /** The archive URL; `ref` is the default branch's commit when the rule needs one. */
  to: (g: Record<string, string>, ref: string) => string;
  /** Git URL whose HEAD names the default branch, for bare repository URLs. */
  head?: (g: Record<string, string>) => string;
}

const lastPart = (p: string) => p.split("/").pop() ?? p;

const RULES: Rule[] = [
  {
    re: GITHUB_URL_REGEX,
    head: (g) => `https://github.com/${g.user}/${g.repo}.git`,
    to: (g, ref) => `https://github.com/${g.user}/${g.repo}/archive/${ref}.tar.gz`,
  },
  {
    re: GITHUB_URL_WITH_TREE_REGEX,
    to: (g) => `https://github.com/${g.user}/${g.repo}/archive/${g.commit}.tar.gz`,
  },
  {
    re: BITBUCKET_URL_REGEX,
    head: (g) => `https://bitbucket.org/${g.user}/${g.repo}.git`,
    to: (g, ref) => `https://bitbucket.org/${g.user}/${g.repo}/get/${ref}.tar.gz`,
  },
  {
    re: BITBUCKET_URL_BRANCH_REGEX,
    to: (g) => `https://bitbucket.org/${g.user}/${g.repo}/get/${g.branch}.tar.gz`,
  },
  {
    re: BITBUCKET_URL_COMMIT_REGEX,
    to: (g) => `https://bitbucket.org/${g.user}/${g.repo}/get/${g.commit}.tar.gz`,
  },
  {
    re: GITLAB_URL_TREE_REGEX,
    to: (g) => `https://gitlab.com/${g.path}/-/archive/${g.ref}/${lastPart(g.path!)}-${g.ref}.tar.gz`,
  },
  {
    re: GITLAB_URL_COMMIT_REGEX,
    to: (g) => `https://gitlab.com/${g.path}/-/archive/${g.ref}/${lastPart(g.path!)}-${g.ref}.tar.gz`,
  },
  {
    re: GITLAB_URL_REGEX,
    head: (g) => `https://gitlab.com/${g.path}.git`,
    to: (g, ref) => `https://gitlab.com/${g.path}/-/archive/${ref}/${lastPart(g.path!)}-${ref}.tar.gz`,
  },
];

/**
 * A browse URL turned into the archive URL InSpec downloads; any other URL unchanged. For the bare
 * repository URL InSpec asks git for the default branch's commit and downloads that commit's archive.
 */
export async function transformUrl(target: string, defaultRef: DefaultRef): Promise<string> {
  for (const rule of RULES) {
    const m = rule.re.exec(target);
    if (!m) continue;
    if (rule.re === GITLAB_URL_REGEX && target.includes("/-/")) continue;
    const g = (m.groups ?? {}) as Record<string, string>;
    const ref = rule.head ? await defaultRef(rule.head(g)) : "";
    return rule.to(g, ref);
  }
  return target;
}

const withoutUserinfo = redactSecrets;

/** A fetched profile from an archive file already on disk and verified. */
export async function fromArchive(
  file: string,
  extractTo: string,
  label: string,
): Promise<{ vendorDir: string; root: string }> {
  await extractArchive(file, extractTo, label);
  const prefix = commonPrefix(await listFiles(extractTo));
  return {
    vendorDir: extractTo,
    root: prefix ? join(extractTo, ...prefix.split("/").filter(Boolean)) : extractTo,
  };
}

export class UrlResolver extends ProfileResolver<UrlSource> {
  /**
   * Download, or take the archive from the cache when the source pins a sha256 the cache holds
   * (re-hashed before use). Fresh downloads are added to the cache.
   */
  private async cachedDownload(
    url: string,
    dest: string,
    headers: Record<string, string>,
    expectSha256: Sha256Hex | undefined,
  ): Promise<{ path: string; sha256: Sha256Hex }> {
    const cacheDir = this.ctx.cacheDir ? join(this.ctx.cacheDir, "sha256") : undefined;
    if (cacheDir && expectSha256) {
      // digestPath re-checks the pin: only 64 hex digits may name a file in the cache
      const cached = digestPath(cacheDir, expectSha256, "sha256 pin");
      if (existsSync(cached)) {
        const { sha256 } = await sha256File(cached, this.ctx.signal);
        if (sha256 === expectSha256) return { path: cached, sha256 };
        // a damaged cache entry: only ever a file named by a validated digest inside the cache
        await rm(cached, { force: true });
      }
    }
    const dl = await download(url, dest, {
      ...this.ctx.http,
      headers,
      signal: this.ctx.signal,
      expectSha256,
    });
    if (cacheDir) {
      await mkdir(cacheDir, { recursive: true });
      const target = digestPath(cacheDir, dl.sha256, "downloaded sha256");
      const tmp = join(cacheDir, `.${dl.sha256}.${process.pid}`);
      await copyFile(dl.path, tmp);
      await rename(tmp, target);
    }
    return dl;
  }

  async fetch(source: UrlSource, _cwd: string): Promise<FetchedProfile> {
    let parsed: URL;
    try {
      parsed = new URL(source.url);
    } catch {
      throw new ConfigError(`profile url "${source.url}" is not a URL`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw new ConfigError(`profile url ${redact(source.url)} must be http:// or https://`);
    }
    const url = await transformUrl(source.url, defaultRefVia({ ...this.ctx.git, signal: this.ctx.signal }));
    const dir = await this.scratch("url");
    const headers: Record<string, string> = { ...this.ctx.http.headers };
    if (source.username !== undefined) {
      headers.authorization = `Basic ${Buffer.from(`${source.username}:${source.password ?? ""}`).toString("base64")}`;
    }
    const dl = await this.cachedDownload(url, join(dir, "archive"), headers, source.sha256);
    const { vendorDir, root } = await fromArchive(dl.path, join(dir, "x"), redact(url));
    return {
      // credentials in the URL are used for the download but never written to the lock or bundle
      pinned: { url: withoutUserinfo(url), sha256: dl.sha256 },
      cacheKey: dl.sha256,
      vendorDir,
      vendorUnder: "",
      root,
      identity: `sha256:${dl.sha256}`,
      label: redact(url),
    };
  }
}
