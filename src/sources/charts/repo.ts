/**
 * Charts from a Helm repository (`repo:` + `name:` + `version:`), as `helm pull --repo` fetches them:
 * `<repo>/index.yaml`, the highest version that satisfies the range (an exact version is a range of
 * one), its first URL resolved against the repository URL, and the download verified against the
 * index's `digest` (sha256 of the .tgz) while it streams. Nothing lands under its name unless it matches.
 */
import { readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import semver from "semver";
import { IntegrityError, RemoteError } from "../../errors.js";
import { download, type HttpOptions, redact } from "../profiles/http.js";
import { parseYamlMapping } from "./chart-yaml.js";
import { ChartError } from "./errors.js";
import { maxSatisfyingHelm, validHelmRange } from "./versions.js";

/** index.yaml of large public repositories runs to tens of MiB; past this it is refused, not parsed. */
export const MAX_INDEX_BYTES = 64 * 1024 * 1024;

export interface IndexEntry {
  name: string;
  version: string;
  urls: string[];
  digest?: string;
}

export interface RepoChart {
  name: string;
  version: string;
  /** The repository as written, credentials redacted. */
  repo: string;
  /** The .tgz URL (redacted), and its sha256 as index.yaml lists it. */
  url: string;
  digest: string;
  file: string;
  sha256: string;
  size: number;
}

function baseUrl(repo: string): string {
  return repo.endsWith("/") ? repo : `${repo}/`;
}

/** GET `url` into `dest` through the shared HTTP helper; failures are named for the chart. */
async function get(url: string, dest: string, http: HttpOptions, what: string) {
  try {
    return await download(url, dest, http);
  } catch (err) {
    if (err instanceof IntegrityError) throw err;
    const status = (err as RemoteError).status;
    const cause = (err as Error).cause as Error | undefined;
    const why = status ? `HTTP ${status}` : (cause?.message ?? (err as Error).message);
    throw new RemoteError(`${what}: GET ${redact(url)} failed: ${why}`, status, "REMOTE", { cause: err });
  }
}

async function fetchText(url: string, dest: string, http: HttpOptions, what: string): Promise<string> {
  // the helper streams to disk; the size is checked before the text is read and parsed
  const { size } = await get(url, dest, http, what);
  if (size > MAX_INDEX_BYTES) {
    await rm(dest, { force: true });
    throw new IntegrityError(
      "MALFORMED",
      `${what}: ${redact(url)} is ${size} bytes, over the ${MAX_INDEX_BYTES}-byte limit`,
      redact(url),
    );
  }
  return await readFile(dest, "utf8");
}

/** Parse an index.yaml into its entries for `name`. */
export function indexEntries(text: string, name: string, what: string): IndexEntry[] {
  const doc = parseYamlMapping(text, what);
  const entries = doc.entries;
  if (typeof entries !== "object" || entries === null || Array.isArray(entries)) {
    throw new IntegrityError("MALFORMED", `${what} has no entries mapping; is this a Helm repository?`, what);
  }
  const list = (entries as Record<string, unknown>)[name];
  if (list === undefined) return [];
  if (!Array.isArray(list))
    throw new IntegrityError("MALFORMED", `${what}: entries.${name} is not a list`, what);
  return list.flatMap((e): IndexEntry[] => {
    const o = e as Record<string, unknown>;
    if (!o || typeof o !== "object") return [];
    const version =
      typeof o.version === "string" ? o.version : typeof o.version === "number" ? String(o.version) : "";
    const urls = Array.isArray(o.urls) ? o.urls.filter((u): u is string => typeof u === "string") : [];
    const entry: IndexEntry = { name, version, urls };
    if (typeof o.digest === "string") entry.digest = o.digest;
    return [entry];
  });
}

/** The highest entry whose version satisfies `constraint`, or a ChartError listing what there is. */
export function selectVersion(entries: IndexEntry[], constraint: string, what: string): IndexEntry {
  const valid = entries.filter((e) => semver.valid(e.version));
  const exact = valid.find((e) => e.version === constraint || e.version === constraint.replace(/^v/, ""));
  if (exact) return exact;
  if (!validHelmRange(constraint)) {
    throw new ChartError(
      `${what}: version "${constraint}" is neither a version nor a semver range`,
      what,
      "CHART_INVALID",
    );
  }
  const best = maxSatisfyingHelm(
    valid.map((e) => e.version),
    constraint,
  );
  if (!best) {
    const have = valid
      .map((e) => e.version)
      .sort(semver.rcompare)
      .join(", ");
    throw new ChartError(
      `${what}: no version satisfies "${constraint}"; the repository has ${have || "no versions of it"}`,
      what,
      "CHART_VERSION_NOT_FOUND",
    );
  }
  return valid.find((e) => e.version === best)!;
}

/**
 * Download `name` at `constraint` from the Helm repository `repo` into `dir` (which must exist).
 * `indexCache` shares index.yaml texts between charts of one run.
 */
export async function fetchRepoChart(
  req: { repo: string; name: string; version: string },
  dir: string,
  http: HttpOptions,
  indexCache: Map<string, Promise<string>> = new Map(),
): Promise<RepoChart> {
  const repoLabel = redact(req.repo);
  const what = `chart ${req.name} from ${repoLabel}`;
  const indexUrl = new URL("index.yaml", baseUrl(req.repo)).toString();
  let text = indexCache.get(indexUrl);
  if (!text) {
    text = fetchText(indexUrl, join(dir, `index-${indexCache.size}.yaml`), http, what);
    indexCache.set(indexUrl, text);
  }
  const entries = indexEntries(await text, req.name, `${repoLabel} index.yaml`);
  if (entries.length === 0) {
    throw new ChartError(
      `${what}: the repository's index.yaml lists no chart named ${req.name}`,
      repoLabel,
      "CHART_NOT_FOUND",
    );
  }
  const entry = selectVersion(entries, req.version, what);
  const digest = entry.digest?.replace(/^sha256:/, "").toLowerCase();
  if (!digest || !/^[a-f0-9]{64}$/.test(digest)) {
    throw new IntegrityError(
      "MALFORMED",
      `${what} ${entry.version}: index.yaml gives no sha256 digest for it, so it cannot be verified`,
      `${req.name}-${entry.version}`,
    );
  }
  const first = entry.urls[0];
  if (!first)
    throw new IntegrityError("MALFORMED", `${what} ${entry.version}: index.yaml lists no URL`, req.name);
  const url = new URL(first, baseUrl(req.repo)).toString();
  const dest = join(dir, `${req.name}-${entry.version}.tgz`);
  const part = `${dest}.download`;
  const got = await get(url, part, http, `${what} ${entry.version}`);
  if (got.sha256 !== digest) {
    await rm(part, { force: true });
    throw new IntegrityError(
      "DIGEST_MISMATCH",
      `chart ${req.name} ${entry.version} from ${redact(url)} has sha256 ${got.sha256}, but the index.yaml of ${repoLabel} lists ${digest}`,
      `${req.name}-${entry.version}`,
    );
  }
  await rename(part, dest);
  return {
    name: req.name,
    version: entry.version,
    repo: repoLabel,
    url: redact(url),
    digest,
    file: dest,
    sha256: got.sha256,
    size: got.size,
  };
}
