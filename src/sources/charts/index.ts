/**
 * Helm charts as bundle sources: resolve a `charts:` entry to one packaged, pinned .tgz with the
 * images its values name. Kinds:
 * - `repo` + `name` + `version`: from a Helm repository (repo.ts), verified against index.yaml;
 * - `git` + `ref` + `path`: the folder at the pinned commit, packaged with its dependencies (package.ts);
 * - `path`: a folder on disk below the config file's folder, packaged the same way.
 * `oci` charts are OCI artifacts already: the registry client copies them; `pullOci` is only used
 * when given (for top-level oci charts and oci:// dependencies).
 */
import { mkdir, mkdtemp, realpath, rm, stat } from "node:fs/promises";
import { join, normalize, relative, resolve, sep } from "node:path";
import type { ChartSource } from "../../config/types.js";
import { ConfigError, IntegrityError } from "../../errors.js";
import { checkoutCommit, normalizeRemote, pinRef, redactUrl, resolveShortSha } from "../profiles/git.js";
import { type HttpOptions, redact } from "../profiles/http.js";
import { type ChartTree, readChartArchive } from "./archive.js";
import type { ChartDependency } from "./chart-yaml.js";
import { ChartError } from "./errors.js";
import { type DiscoveredImage, discoverImages } from "./images.js";
import { type FetchedDependency, inside, type PackagedDependency, packageChartDir } from "./package.js";
import { fetchRepoChart } from "./repo.js";

export type { ChartTree } from "./archive.js";
export { readChartArchive } from "./archive.js";
export type { HelmChartArtifact, IndexedChart } from "./artifact.js";
export {
  goJson,
  helmChartArtifact,
  helmMetadataJson,
  helmOciAnnotations,
  helmRepositoryIndex,
  storeHelmChartArtifact,
} from "./artifact.js";
export { ChartError } from "./errors.js";
export { HelmIgnore } from "./helmignore.js";
export type { DiscoveredImage } from "./images.js";
export { discoverImages } from "./images.js";
export type { OciChartRepository, OpenOciRepository } from "./oci.js";
export { ociChartPuller } from "./oci.js";
export type { FetchedDependency, PackagedDependency } from "./package.js";
export { chartValuesOverride } from "./values.js";

export interface ResolvedChart {
  name: string;
  version: string;
  /** The entry as written, credentials redacted. */
  source: string;
  /** {repo, url, digest} | {git, commit, path} | {path, sha256} */
  pinned: Record<string, unknown>;
  /** The packaged .tgz on disk. */
  file: string;
  sha256: string;
  size: number;
  /** Chart.yaml as parsed (strings as written): the input of helmChartArtifact and helmRepositoryIndex. */
  metadata: Record<string, unknown>;
  /** Dependencies carried in charts/, as a tree. */
  dependencies: PackagedDependency[];
  /** Images the values name ([] when the entry says `images: false`, and for repo charts). */
  images: DiscoveredImage[];
  warnings: string[];
}

export interface ChartContext {
  /** Scratch and output folder: packaged charts are written below it. */
  workDir: string;
  /** The config file's folder: `path:` charts and their file:// dependencies must stay inside it. */
  configDir: string;
  signal?: AbortSignal;
  /** Extra trusted CA (PEM file) for HTTPS (Helm repositories and git). */
  caFile?: string;
  /** Skip TLS verification for Helm repositories (only when the user says so). */
  insecure?: boolean;
  /** Extra HTTP headers for Helm repositories (e.g. Authorization). */
  headers?: Record<string, string>;
  gitBinary?: string;
  /** Pulls an oci:// chart (dependency or top-level entry) as a .tgz; without it they are refused. */
  pullOci?: (dep: ChartDependency & { repository: string }, dir: string) => Promise<FetchedDependency>;
  /** index.yaml texts by URL, shared between the charts of one run. */
  indexCache?: Map<string, Promise<string>>;
}

function httpOptions(ctx: ChartContext): HttpOptions {
  const o: HttpOptions = {};
  if (ctx.caFile) o.caFile = ctx.caFile;
  if (ctx.insecure) o.insecure = true;
  if (ctx.headers) o.headers = ctx.headers;
  if (ctx.signal) o.signal = ctx.signal;
  return o;
}

/** How a chart is named in messages and the inventory. */
export function describeChartSource(spec: ChartSource, configDir: string): string {
  switch (spec.type) {
    case "repo":
      return `${redact(spec.repo)} ${spec.name} ${spec.version}`;
    case "oci":
      return `${spec.oci} ${spec.version}`;
    case "git":
      return `${redactUrl(spec.git)}@${spec.ref}:${spec.path}`;
    case "path":
      return `path:${relative(configDir, spec.path).split(sep).join("/") || "."}`;
  }
}

async function treeOf(file: string, name: string, version: string, label: string): Promise<ChartTree> {
  const tree = await readChartArchive(file, label);
  if (tree.metadata.name !== name || tree.metadata.version !== version) {
    throw new IntegrityError(
      "MALFORMED",
      `${label}: the archive holds chart ${tree.metadata.name} ${tree.metadata.version}, not ${name} ${version}`,
      label,
    );
  }
  return tree;
}

/** Resolve, fetch, package and pin one `charts:` entry. */
export async function resolveChart(spec: ChartSource, ctx: ChartContext): Promise<ResolvedChart> {
  await mkdir(ctx.workDir, { recursive: true });
  const scratch = await mkdtemp(join(ctx.workDir, "chart-"));
  try {
    return await resolveInto(spec, ctx, scratch);
  } catch (err) {
    // nothing of a chart that failed stays behind in the work folder
    await rm(scratch, { recursive: true, force: true });
    throw err;
  }
}

async function resolveInto(spec: ChartSource, ctx: ChartContext, scratch: string): Promise<ResolvedChart> {
  const source = describeChartSource(spec, ctx.configDir);
  const http = httpOptions(ctx);
  const indexCache = ctx.indexCache ?? new Map<string, Promise<string>>();
  const warnings: string[] = [];

  const fetchRepo = async (dep: ChartDependency & { repository: string }): Promise<FetchedDependency> => {
    const dir = await mkdtemp(join(scratch, "dep-"));
    const r = await fetchRepoChart(
      { repo: dep.repository, name: dep.name, version: dep.version ?? "*" },
      dir,
      http,
      indexCache,
    );
    return { file: r.file, name: r.name, version: r.version, sha256: r.sha256 };
  };
  const pullOci = ctx.pullOci
    ? async (dep: ChartDependency & { repository: string }) =>
        await ctx.pullOci!(dep, await mkdtemp(join(scratch, "oci-")))
    : undefined;

  let name: string;
  let version: string;
  let file: string;
  let sha256: string;
  let size: number;
  let pinned: Record<string, unknown>;
  let metadata: Record<string, unknown>;
  let dependencies: PackagedDependency[] = [];
  let wantImages = false;
  let tree: ChartTree;

  if (spec.type === "repo") {
    const r = await fetchRepoChart(spec, scratch, http, indexCache);
    ({ name, version, file, sha256, size } = r);
    pinned = { repo: r.repo, url: r.url, digest: `sha256:${r.digest}` };
    tree = await treeOf(file, name, version, `chart ${name} ${version} from ${r.repo}`);
    metadata = tree.metadata.raw;
  } else if (spec.type === "oci") {
    if (!pullOci) {
      throw new ChartError(
        `chart ${spec.oci}: OCI charts are copied by the registry client, not resolved here`,
        spec.oci,
        "CHART_NEEDS_OCI",
      );
    }
    // oci://registry/path/NAME: Helm's pull names the chart by the last path component
    const parts = spec.reference.repository.split("/");
    const chartName = parts.pop()!;
    const repository = `oci://${[spec.reference.registry, ...parts].join("/")}`;
    const r = await pullOci({ name: chartName, version: spec.version, repository });
    ({ name, version, file, sha256 } = r);
    size = (await stat(file)).size;
    pinned = { oci: spec.oci, digest: r.manifestDigest ?? `sha256:${sha256}` };
    tree = await treeOf(file, name, version, `chart ${spec.oci}`);
    metadata = tree.metadata.raw;
  } else {
    let chartDir: string;
    let boundary: string;
    let boundaryName: string;
    let label: (abs: string) => string;
    if (spec.type === "git") {
      const rel = normalize(spec.path).replace(/\/+$/, "");
      if (rel === ".." || rel.startsWith(`..${sep}`) || rel.startsWith("/")) {
        throw new ConfigError(`chart ${source}: path "${spec.path}" leaves the repository`);
      }
      const remote = normalizeRemote(spec.git, ctx.configDir);
      const gitOpts = { caFile: ctx.caFile, signal: ctx.signal, gitBinary: ctx.gitBinary };
      let commit: string;
      try {
        commit = await pinRef(remote, { ref: spec.ref }, gitOpts);
      } catch (err) {
        if (!/^[0-9a-f]{4,39}$/i.test(spec.ref)) throw err;
        commit = await resolveShortSha(
          remote,
          spec.ref.toLowerCase(),
          await mkdtemp(join(scratch, "ref-")),
          gitOpts,
        );
      }
      const checkout = join(scratch, "checkout");
      await checkoutCommit(remote, commit, checkout, gitOpts);
      boundary = await realpath(checkout);
      boundaryName = `the repository ${redactUrl(spec.git)}`;
      chartDir = join(boundary, rel);
      pinned = { git: redactUrl(spec.git), commit, path: spec.path };
      label = (abs) =>
        `${redactUrl(spec.git)}@${commit.slice(0, 12)}:${relative(boundary, abs).split(sep).join("/") || "."}`;
    } else {
      boundary = await realpath(ctx.configDir);
      boundaryName = `the config folder ${ctx.configDir}`;
      chartDir = resolve(ctx.configDir, spec.path);
      if (!inside(resolve(ctx.configDir), chartDir)) {
        throw new ConfigError(
          `chart ${source}: ${spec.path} is outside the config folder ${ctx.configDir}; charts on disk must live below it`,
        );
      }
      const rel = relative(resolve(ctx.configDir), chartDir);
      // checked against the real path of the config folder, so a symbolic link above it changes nothing
      chartDir = join(boundary, rel);
      pinned = { path: rel.split(sep).join("/") || "." };
      label = (abs) => relative(boundary, abs).split(sep).join("/") || ".";
    }
    const outDir = join(scratch, "packaged");
    await mkdir(outDir, { recursive: true });
    const packaged = await packageChartDir(chartDir, {
      boundary,
      boundaryName,
      outDir,
      fetchRepo,
      ...(pullOci ? { pullOci } : {}),
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      label,
    });
    ({ name, version, file, sha256, size, dependencies } = packaged);
    // the checkout is no longer needed once the chart is packaged
    if (spec.type === "git") await rm(join(scratch, "checkout"), { recursive: true, force: true });
    if (spec.type === "path") pinned.sha256 = sha256;
    wantImages = spec.images === "auto";
    tree = await treeOf(file, name, version, `chart ${source}`);
    metadata = packaged.metadata.raw;
  }

  const images = wantImages ? discoverImages(tree, warnings) : [];
  return { name, version, source, pinned, file, sha256, size, metadata, dependencies, images, warnings };
}

/** The images a packaged chart's values name (for charts resolved without `images: auto`). */
export async function discoverChartImages(
  file: string,
  label = file,
): Promise<{ images: DiscoveredImage[]; warnings: string[] }> {
  const warnings: string[] = [];
  const images = discoverImages(await readChartArchive(file, label), warnings);
  return { images, warnings };
}
