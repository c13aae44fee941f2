/**
 * Non-image content in a bundle (files, gems, charts): each kind resolved and pinned, downloaded
 * verified, and stored in the cache layout as an OCI artifact under the `localhost/KIND/NAME:TAG`
 * pseudo registry, with the inventory entry bundle.json records for it.
 */
import { createReadStream } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type pLimit from "p-limit";
import {
  ARTIFACT_REPOSITORY_HOST,
  type ChartItem,
  type GemItem,
  type InventoryItem,
} from "../bundle/inventory.js";
import type { BundleConfig, ChartSource } from "../config/types.js";
import { UsageError } from "../errors.js";
import type { Descriptor } from "../oci/descriptor.js";
import { ArtifactType, isManifestLike } from "../oci/mediatypes.js";
import type { RegistryClient } from "../oci/registry/client.js";
import {
  type OciChartRepository,
  ociChartPuller,
  type ResolvedChart,
  resolveChart,
  storeHelmChartArtifact,
} from "../sources/charts/index.js";
import {
  ANY_PLATFORM,
  downloadFile,
  fileArtifactSpec,
  httpOptionsFor,
  type PlannedFile,
  platformSlug,
  withoutUserinfo,
} from "../sources/files/index.js";
import { type ResolvedGem, resolveGems } from "../sources/gems/index.js";
import { copyGraph } from "../store/copy.js";
import type { OciLayoutStore } from "../store/layout.js";
import { type ArtifactSpec, storeArtifact } from "../store/oci-artifact.js";
import { type RegistryStore, registryRepository } from "../store/registry.js";
import type { Store } from "../store/store.js";
import { trackTemp } from "../temp-files.js";
import type { PlanItem } from "./create.js";
import type { Progress } from "./progress.js";

export { ARTIFACT_REPOSITORY_HOST };

/** What bundling an artifact kind needs from `bundle create`. */
export interface ArtifactContext {
  config: BundleConfig;
  cache: OciLayoutStore;
  limit: ReturnType<typeof pLimit>;
  progress: Progress;
  caFiles?: string[];
  signal?: AbortSignal;
  /** Collected and printed at the end (they do not stop the bundle). */
  warnings: string[];
}

/** The fields every inventory item has; an artifact adds its kind's own. */
export type ItemCommon = Pick<
  InventoryItem,
  "name" | "source" | "digest" | "mediaType" | "size" | "blobs" | "manifests"
>;

/** Non-image content stored in the cache as an OCI artifact: where it is and its inventory entry. */
export interface BundledArtifact {
  /** Root name in index.json, e.g. `localhost/files/kubectl:linux-amd64`. */
  name: string;
  repository: string;
  source: string;
  descriptor: Descriptor;
  /** Further roots that belong to the item (cosign signature tags of an oci:// chart). */
  extraRoots?: { name: string; descriptor: Descriptor }[];
  item: (common: ItemCommon) => InventoryItem;
}

function fileRoot(file: PlannedFile): { repository: string; name: string } {
  const repository = `${ARTIFACT_REPOSITORY_HOST}/files/${file.name}`;
  return { repository, name: `${repository}:${platformSlug(file.platform)}` };
}

/** The cached blob with this sha256, when the cache holds it intact. */
async function cachedBlob(cache: OciLayoutStore, sha256: string): Promise<number | undefined> {
  const digest = `sha256:${sha256}`;
  const size = await stat(cache.blobPath(digest)).then(
    (st) => st.size,
    () => undefined,
  );
  return size !== undefined && (await cache.hasBlob({ digest, size })) ? size : undefined;
}

export async function filePlanItem(file: PlannedFile, cache: OciLayoutStore): Promise<PlanItem> {
  const cachedSize = file.sha256 ? await cachedBlob(cache, file.sha256) : undefined;
  return {
    kind: "file",
    name: fileRoot(file).name,
    source: withoutUserinfo(file.url),
    digest: file.sha256 ? `sha256:${file.sha256}` : "(recorded at create: --allow-unpinned)",
    sourceDigest: "",
    platforms: file.platform === ANY_PLATFORM ? [] : [file.platform],
    size: cachedSize ?? 0,
    blobs: 1,
    cachedBytes: cachedSize ?? 0,
    cached: cachedSize !== undefined,
  };
}

/**
 * Download every planned file (verified against its pin while it streams; a pinned file the cache
 * holds is not downloaded again) and store each as an ORAS-style artifact in the cache.
 */
export async function bundleFileItems(
  planned: PlannedFile[],
  ctx: ArtifactContext,
): Promise<BundledArtifact[]> {
  const { config, cache, limit, warnings } = ctx;
  ctx.progress.phase("files", 0);
  const workDir = await mkdtemp(join(cache.root, "files-work-"));
  const untrack = trackTemp(workDir);
  try {
    return await Promise.all(
      planned.map((file, i) =>
        limit(async (): Promise<BundledArtifact> => {
          const { repository, name } = fileRoot(file);
          const url = withoutUserinfo(file.url);
          let sha256 = file.sha256;
          let size = sha256 ? await cachedBlob(cache, sha256) : undefined;
          let path = sha256 ? cache.blobPath(`sha256:${sha256}`) : "";
          if (sha256 === undefined || size === undefined) {
            ctx.progress.info(`  fetching ${name}`);
            const dl = await downloadFile(file, join(workDir, String(i)), {
              ...httpOptionsFor(file.url, config.registries, ctx.caFiles?.[0]),
              ...(ctx.signal ? { signal: ctx.signal } : {}),
            });
            ctx.progress.bytes(name, dl.size);
            ({ sha256, size, path } = dl);
            if (!file.sha256) {
              warnings.push(
                `file ${file.name} (${file.platform}) has no sha256 in ${config.file}: pinned to the sha256 downloaded, ${dl.sha256} (--allow-unpinned); add it to the config`,
              );
            }
          }
          const record = { name: file.name, platform: file.platform, url, sha256, size };
          const descriptor = await storeArtifact(
            cache.repository(repository),
            fileArtifactSpec(record, path),
            {
              ...(ctx.signal ? { signal: ctx.signal } : {}),
            },
          );
          ctx.progress.itemDone(name);
          return {
            name,
            repository,
            source: url,
            descriptor,
            item: (common) => ({
              ...common,
              kind: "file",
              file: { ...record, pinned: Boolean(file.sha256) },
            }),
          };
        }),
      ),
    );
  } finally {
    await rm(workDir, { recursive: true, force: true });
    untrack();
  }
}

/** `localhost/gems/NAME:VERSION` or `…:VERSION-PLATFORM` for a platform build. */
export function gemRoot(gem: { name: string; version: string; platform: string }): {
  repository: string;
  name: string;
} {
  const repository = `${ARTIFACT_REPOSITORY_HOST}/gems/${gem.name}`;
  const tag = gem.platform === "ruby" ? gem.version : `${gem.version}-${gem.platform}`;
  return { repository, name: `${repository}:${tag}` };
}

export const ANNOTATION_GEM_NAME = "io.cinc-airgap.gem.name";
export const ANNOTATION_GEM_PLATFORM = "io.cinc-airgap.gem.platform";

/** The .gem and its .gemspec.rz as one ORAS-style artifact, each layer titled with its file name. */
function gemArtifactSpec(gem: ResolvedGem): ArtifactSpec {
  const full = `${gem.name}-${gem.version}${gem.platform === "ruby" ? "" : `-${gem.platform}`}`;
  return {
    artifactType: ArtifactType.gem,
    layers: [
      {
        mediaType: GEM_LAYER,
        digest: `sha256:${gem.sha256}`,
        size: gem.size,
        title: `${full}.gem`,
        open: () => createReadStream(gem.file),
      },
      {
        mediaType: GEMSPEC_LAYER,
        digest: `sha256:${gem.gemspec.sha256}`,
        size: gem.gemspec.size,
        title: `${full}.gemspec.rz`,
        open: () => createReadStream(gem.gemspec.file),
      },
    ],
    annotations: {
      [ANNOTATION_GEM_NAME]: gem.name,
      [ANNOTATION_GEM_PLATFORM]: gem.platform,
      "org.opencontainers.image.version": gem.version,
      "org.opencontainers.image.source": withoutUserinfo(gem.source),
    },
  };
}

/** Layer media types of a gem artifact: the .gem (a tar) and its deflated Marshal gemspec. */
export const GEM_LAYER = "application/vnd.rubygems.gem.v1.tar";
export const GEMSPEC_LAYER = "application/vnd.rubygems.gemspec.v1.marshal+deflate";

export function gemPlanItems(config: BundleConfig): PlanItem[] {
  return config.gems.map((g) => ({
    kind: "gem",
    name: `${g.name}${g.version ? ` ${g.version}` : ""}`,
    source: withoutUserinfo(g.source),
    digest: "(resolved at create, with its dependencies)",
    sourceDigest: "",
    platforms: g.platform ? [g.platform] : [],
    size: 0,
    blobs: 0,
    cachedBytes: 0,
    cached: false,
  }));
}

/**
 * Resolve the config's gems with every runtime dependency (less the provided ones) through their
 * compact indexes, download each verified against the index's sha256, and store each .gem with its
 * .gemspec.rz as an artifact.
 */
export async function bundleGemItems(ctx: ArtifactContext): Promise<BundledArtifact[]> {
  ctx.progress.phase("gems", 0);
  const workDir = await mkdtemp(join(ctx.cache.root, "gems-work-"));
  const untrack = trackTemp(workDir);
  try {
    const caFile = ctx.caFiles?.[0];
    const resolved = await resolveGems(ctx.config.gems, {
      workDir,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      ...(caFile ? { http: { caFile } } : {}),
    });
    const out: BundledArtifact[] = [];
    for (const gem of resolved) {
      const { repository, name } = gemRoot(gem);
      const descriptor = await storeArtifact(ctx.cache.repository(repository), gemArtifactSpec(gem), {
        ...(ctx.signal ? { signal: ctx.signal } : {}),
      });
      const record: GemItem["gem"] = {
        name: gem.name,
        version: gem.version,
        platform: gem.platform,
        sha256: gem.sha256,
        size: gem.size,
        gemspec: { sha256: gem.gemspec.sha256, size: gem.gemspec.size },
        source: withoutUserinfo(gem.source),
        dependencies: gem.dependencies,
        requiredBy: gem.requiredBy,
        ...(gem.providedTree ? { providedTree: gem.providedTree } : {}),
        ...(gem.ruby ? { ruby: gem.ruby } : {}),
        ...(gem.rubygems ? { rubygems: gem.rubygems } : {}),
      };
      out.push({
        name,
        repository,
        source: `${withoutUserinfo(gem.source)} ${gem.name}`,
        descriptor,
        item: (common) => ({ ...common, kind: "gem", gem: record }),
      });
      ctx.progress.itemDone(name);
    }
    return out;
  } finally {
    await rm(workDir, { recursive: true, force: true });
    untrack();
  }
}

/** Helm tags a chart with its version, `+` written as `_`. */
export function chartTag(version: string): string {
  return version.replace(/\+/g, "_");
}

export function chartRoot(chart: { name: string; version: string }): { repository: string; name: string } {
  const repository = `${ARTIFACT_REPOSITORY_HOST}/charts/${chart.name}`;
  return { repository, name: `${repository}:${chartTag(chart.version)}` };
}

export interface ResolvedChartEntry {
  spec: ChartSource;
  chart: ResolvedChart;
}

/**
 * Resolve every `charts:` entry to a packaged, pinned .tgz (repo, git and path charts are packaged as
 * `helm package` would; oci:// charts are read from their registry). Runs before images are resolved:
 * the images `images: auto` charts name join the image plan.
 */
export async function resolveChartEntries(
  ctx: ArtifactContext & { client: RegistryClient; workDir: string },
): Promise<ResolvedChartEntry[]> {
  ctx.progress.phase("charts", 0);
  const indexCache = new Map<string, Promise<string>>();
  // an oci:// chart's layer lands in the cache as it is read, so the copy of its graph later finds it there
  const pullOci = ociChartPuller(
    (registry, repository) =>
      throughCache(
        registryRepository(ctx.client, registry, repository),
        ctx.cache.repository(`${ARTIFACT_REPOSITORY_HOST}/charts/${repository.split("/").pop()}`),
      ),
    ctx.signal,
  );
  const out: ResolvedChartEntry[] = [];
  for (const spec of ctx.config.charts) {
    const caFile = ctx.caFiles?.[0];
    const chart = await resolveChart(spec, {
      workDir: ctx.workDir,
      configDir: ctx.config.dir,
      pullOci,
      indexCache,
      ...(caFile ? { caFile } : {}),
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });
    for (const w of chart.warnings) ctx.warnings.push(`chart ${chart.name} ${chart.version}: ${w}`);
    ctx.progress.info(`  chart ${chart.name} ${chart.version}`);
    out.push({ spec, chart });
  }
  const seen = new Map<string, string>();
  for (const { chart } of out) {
    const prev = seen.get(chart.name);
    if (prev !== undefined && prev !== chart.version) {
      throw new UsageError(
        `chart ${chart.name} is listed twice (versions ${prev} and ${chart.version}); a bundle carries one version of each chart`,
      );
    }
    seen.set(chart.name, chart.version);
  }
  return out;
}

/**
 * A source repository whose blobs are read through the cache: a blob the cache lacks is copied in
 * (verified while it is written), then read from there. Manifests come from the source: the cache
 * takes a manifest only after its children, which copyGraph places.
 */
function throughCache(src: RegistryStore, cache: Store): OciChartRepository {
  return {
    label: src.label,
    resolve: (ref, signal) => src.resolve(ref, signal),
    exists: (desc, signal) => src.exists(desc, signal),
    referrers: (desc, signal) => src.referrers(desc, signal),
    listTags: (signal) => src.listTags(signal),
    fetch: async (desc, signal) => {
      if (isManifestLike(desc.mediaType)) return await src.fetch(desc, signal);
      if (!(await cache.exists(desc, signal))) await cache.push(desc, await src.fetch(desc, signal), signal);
      return await cache.fetch(desc, signal);
    },
  };
}

export function chartPlanItem({ chart }: ResolvedChartEntry): PlanItem {
  return {
    kind: "chart",
    name: chartRoot(chart).name,
    source: chart.source,
    digest: `sha256:${chart.sha256}`,
    sourceDigest: "",
    platforms: [],
    size: chart.size,
    blobs: 3,
    cachedBytes: 0,
    cached: false,
  };
}

/**
 * Store each chart in the cache under `localhost/charts/NAME:VERSION`: oci:// charts are copied as
 * they are (manifest digest kept, cosign signature tags carried) like any OCI artifact; the others
 * as `helm push` writes a packaged chart. `imageDigests` pins the images the chart's values name.
 */
export async function bundleChartItems(
  entries: ResolvedChartEntry[],
  imageDigests: Map<string, string>,
  ctx: ArtifactContext & { client: RegistryClient; inflight: Map<string, Promise<void>> },
): Promise<BundledArtifact[]> {
  const out: BundledArtifact[] = [];
  for (const { spec, chart } of entries) {
    const { repository, name } = chartRoot(chart);
    const dst = ctx.cache.repository(repository);
    let descriptor: Descriptor;
    const extraRoots: { name: string; descriptor: Descriptor }[] = [];
    if (spec.type === "oci") {
      const src = registryRepository(ctx.client, spec.reference.registry, spec.reference.repository);
      descriptor = await src.resolve(chartTag(chart.version), ctx.signal);
      const result = await copyGraph(src, dst, descriptor, {
        limit: ctx.limit,
        inflight: ctx.inflight,
        cosignTags: ["sig", "att", "sbom"],
        ...(ctx.signal ? { signal: ctx.signal } : {}),
      });
      for (const x of result.extras) {
        if (x.tag) extraRoots.push({ name: `${repository}:${x.tag}`, descriptor: x.descriptor });
      }
    } else {
      const a = await storeHelmChartArtifact(dst, chart, chart.metadata, {
        ...(ctx.signal ? { signal: ctx.signal } : {}),
      });
      descriptor = a.manifestDescriptor;
    }
    const record: ChartItem["chart"] = {
      name: chart.name,
      version: chart.version,
      sha256: chart.sha256,
      size: chart.size,
      pinned: chart.pinned,
      metadata: chart.metadata,
      images: chart.images.map((img) => {
        const digest = imageDigests.get(img.ref);
        return { ...img, ...(digest ? { digest } : {}) };
      }),
    };
    out.push({
      name,
      repository,
      source: chart.source,
      descriptor,
      extraRoots,
      item: (common) => ({ ...common, kind: "chart", chart: record }),
    });
    ctx.progress.itemDone(name);
  }
  return out;
}
