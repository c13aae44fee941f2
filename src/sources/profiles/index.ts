/** Profile sources: one resolver per kind of source, chosen by `resolverFor`. */
import { ProfileError, type ProfileSource } from "../../profiles/metadata.js";
import type { FetchContext, FetchedProfile, ProfileResolver } from "./base.js";
import { GitResolver } from "./git-resolver.js";
import { OciResolver } from "./oci.js";
import { PathResolver } from "./path.js";
import { SupermarketResolver } from "./supermarket.js";
import { UrlResolver } from "./url.js";

export type { FetchContext, FetchedProfile, OciOpener, PinnedSource } from "./base.js";
export { ProfileResolver } from "./base.js";
export { gitCacheKey } from "./git-resolver.js";
export { DEFAULT_SUPERMARKET_URL } from "./supermarket.js";
export { transformUrl } from "./url.js";

export function resolverFor(source: ProfileSource, ctx: FetchContext): ProfileResolver {
  switch (source.kind) {
    case "git":
      return new GitResolver(ctx) as ProfileResolver;
    case "url":
      return new UrlResolver(ctx) as ProfileResolver;
    case "path":
      return new PathResolver(ctx) as ProfileResolver;
    case "supermarket":
      return new SupermarketResolver(ctx) as ProfileResolver;
    case "oci":
      return new OciResolver(ctx) as ProfileResolver;
    case "compliance":
      throw new ProfileError(
        `dependency compliance: ${source.compliance} needs a Chef Automate/Compliance server, which airgap cannot reach or carry; vendor it as a url, git or path dependency instead`,
        source.compliance,
        "PROFILE_UNSUPPORTED",
      );
  }
}

export async function fetchSource(
  source: ProfileSource,
  cwd: string,
  ctx: FetchContext,
): Promise<FetchedProfile> {
  return await resolverFor(source, ctx).fetch(source, cwd);
}
