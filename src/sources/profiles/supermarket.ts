/**
 * Supermarket profiles (`supermarket://owner/name`). InSpec v6.8.24
 * (lib/bundles/inspec-supermarket/{api,target}.rb) looks the tool up on the Supermarket server
 * (`/api/v1/tools/<name, downcased>`), checks the owner and hands the tool's source URL to the url
 * fetcher, so the lock records `{url, sha256}` of that archive. airgap does the same with
 * `GET <server>/api/v1/tools/<name>`; a `version:` is checked against the fetched inspec.yml.
 */
import { ConfigError, RemoteError } from "../../errors.js";
import type { ProfileSource } from "../../profiles/metadata.js";
import { type FetchedProfile, ProfileResolver } from "./base.js";
import { httpGetJson } from "./http.js";
import { UrlResolver } from "./url.js";

type SupermarketSource = Extract<ProfileSource, { kind: "supermarket" }>;

export const DEFAULT_SUPERMARKET_URL = "https://supermarket.chef.io";

export function parseSupermarketName(spec: string): { owner: string; name: string } {
  const m = /^(?:supermarket:\/\/)?([^/\s]+)\/([^/\s]+)$/.exec(spec.trim());
  if (!m) throw new ConfigError(`supermarket profile "${spec}" is not supermarket://owner/name`);
  return { owner: m[1]!, name: m[2]! };
}

interface ToolInfo {
  name?: string;
  slug?: string;
  owner?: string;
  source_url?: string;
  tool_source_url?: string;
}

export class SupermarketResolver extends ProfileResolver<SupermarketSource> {
  async fetch(source: SupermarketSource, cwd: string): Promise<FetchedProfile> {
    const { owner, name } = parseSupermarketName(source.supermarket);
    const base = (source.supermarket_url ?? this.ctx.supermarketUrl).replace(/\/+$/, "");
    const api = `${base}/api/v1/tools/${encodeURIComponent(name.toLowerCase())}`;
    let info: ToolInfo;
    try {
      info = (await httpGetJson(api, { ...this.ctx.http, signal: this.ctx.signal })) as ToolInfo;
    } catch (err) {
      if (err instanceof RemoteError && err.status === 404) {
        throw new RemoteError(
          `supermarket profile supermarket://${owner}/${name} does not exist on ${base}`,
          404,
          "NOT_FOUND",
        );
      }
      throw err;
    }
    if (info.owner !== undefined && info.owner !== owner) {
      throw new RemoteError(
        `supermarket profile supermarket://${owner}/${name}: ${base} has that tool under owner ${info.owner}, not ${owner}`,
        undefined,
        "NOT_FOUND",
      );
    }
    const sourceUrl = info.source_url ?? info.tool_source_url;
    if (!sourceUrl) throw new RemoteError(`supermarket tool ${name} on ${base} has no source_url`);
    const fetched = await new UrlResolver(this.ctx).fetch({ kind: "url", url: sourceUrl }, cwd);
    fetched.label = `supermarket://${owner}/${name} (${fetched.label})`;
    if (source.version) fetched.requestedVersion = source.version;
    return fetched;
  }
}
