/**
 * Local profile folders and archives, as InSpec v6.8.24's local fetcher vendors them
 * (lib/inspec/fetcher/local.rb):
 * - an archive: key = sha256 of the file, vendor/<key>/ = its extracted files;
 * - a folder: InSpec archives it (`inspec archive` rules), keys it by that archive's sha256 and
 *   extracts it to vendor/<key>/. InSpec's archive carries the current time, so its key changes on
 *   every run; airgap's archive is reproducible, so the key depends only on the folder's content.
 * resolved_source is `{path, sha256}`. InSpec writes the expanded absolute path of the machine that
 * vendored; airgap writes the path as the depending inspec.yml spells it, so bundles do not leak
 * host paths and stay byte-identical wherever they are built. CINC Auditor finds a locked path
 * dependency by its sha256 in vendor/, never by the path, so running offline is unaffected.
 */
import { realpath, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { packProfile, sha256File, sniffArchive } from "../../profiles/archive.js";
import { ProfileError, type ProfileSource } from "../../profiles/metadata.js";
import { type FetchedProfile, ProfileResolver } from "./base.js";
import { fromArchive } from "./url.js";

type PathSource = Extract<ProfileSource, { kind: "path" }>;

export class PathResolver extends ProfileResolver<PathSource> {
  async fetch(source: PathSource, cwd: string): Promise<FetchedProfile> {
    const raw = source.path.startsWith("file://") ? source.path.slice("file://".length) : source.path;
    const abs = resolve(cwd, raw);
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(abs);
    } catch {
      throw new ProfileError(
        `Profile dependency local path '${abs}' does not exist`,
        source.path,
        "PROFILE_NOT_FOUND",
      );
    }
    if (st.isDirectory()) {
      const real = await realpath(abs);
      const dir = await this.scratch("path");
      const packed = await packProfile(real, join(dir, "profile.tar.gz"), this.ctx.signal);
      return {
        pinned: { path: source.path, sha256: packed.sha256 },
        cacheKey: packed.sha256,
        vendorDir: real,
        vendorUnder: "",
        root: real,
        identity: `path:${real}`,
        label: abs,
      };
    }
    if (!(await sniffArchive(abs))) {
      throw new ProfileError(
        `profile path ${abs} is neither a folder nor a .tar.gz/.zip archive`,
        source.path,
        "PROFILE_INVALID",
      );
    }
    const { sha256 } = await sha256File(abs, this.ctx.signal);
    const dir = await this.scratch("patharchive");
    const { vendorDir, root } = await fromArchive(abs, join(dir, "x"), abs);
    return {
      pinned: { path: source.path, sha256 },
      cacheKey: sha256,
      vendorDir,
      vendorUnder: "",
      root,
      identity: `sha256:${sha256}`,
      label: abs,
    };
  }
}
