/**
 * Publishing the bundle's non-image content to the internal artifact repository (S3 or an HTTP raw
 * repository), after the bundle verified: profiles, files, a static gem source and a Helm
 * repository; and, with or without a repository, each chart's values file with its images' internal
 * references pinned by digest.
 */
import type { Readable } from "node:stream";
import type {
  ChartItem,
  FileItem,
  GemItem,
  Inventory,
  InventoryItem,
  ProfileItem,
} from "../bundle/inventory.js";
import { IntegrityError, UsageError } from "../errors.js";
import type { Descriptor } from "../oci/descriptor.js";
import { isSha256Hex, sha256Hex } from "../oci/digest.js";
import { ArtifactType, MediaType } from "../oci/mediatypes.js";
import { formatReference, parseReference } from "../oci/reference.js";
import { profileKey, publishProfiles } from "../profiles/publish.js";
import {
  chartValuesOverride,
  type DiscoveredImage,
  helmRepositoryIndex,
  type IndexedChart,
} from "../sources/charts/index.js";
import { gemSourceFiles } from "../sources/gems/index.js";
import type { ArtifactRepository } from "../store/artifacts.js";
import { openArtifactRepository } from "../store/open-artifacts.js";
import { type PublishObject, publishObjects, smallObject } from "../store/publish.js";
import type { ImportOptions, PlannedImage } from "./import.js";

export interface PublishedProfile {
  name: string;
  version: string;
  sha256: string;
  /** Where the scanner fetches it from (the artifact repository), when one was given. */
  url?: string;
  /** Its OCI artifact in the target registry, pinned. */
  artifact: string;
  uploaded: boolean;
}

export interface PublishedFile {
  name: string;
  /** `os/arch[/variant]`, or `any`. */
  platform: string;
  sha256: string;
  size: number;
  /** Where clients download it (the artifact repository), when one was given. */
  url?: string;
  /** Its OCI artifact in the target registry, pinned. */
  artifact: string;
  uploaded: boolean;
}

export interface PublishedGem {
  name: string;
  version: string;
  /** `ruby`, or the gem's platform. */
  platform: string;
  sha256: string;
  /** The .gem in the artifact repository, when one was given. */
  url?: string;
  /** The static gem source it is installable from: `gem install --clear-sources --source SOURCE NAME`. */
  source?: string;
  /** Its OCI artifact in the target registry, pinned. */
  artifact: string;
  uploaded: boolean;
}

export interface PublishedChart {
  name: string;
  version: string;
  /** sha256 of NAME-VERSION.tgz. */
  sha256: string;
  /** Its OCI artifact in the target registry, pinned. */
  artifact: string;
  /** For `helm install RELEASE oci://REGISTRY/PREFIX/charts/NAME --version VERSION`. */
  oci: string;
  /** The .tgz in the artifact repository's Helm repository, when one was given. */
  url?: string;
  /** The Helm repository (`helm repo add`), when an artifact repository was given. */
  repository?: string;
  uploaded: boolean;
  /** Each image the chart names and its internal reference, pinned by digest. */
  images: { source: string; target: string }[];
  /** The values file (YAML) that points the chart at the internal images. */
  values: string;
}

/** Everything the import published besides images, per kind. */
export interface PublishedArtifacts {
  profiles: PublishedProfile[];
  files: PublishedFile[];
  gems: PublishedGem[];
  charts: PublishedChart[];
}

/** The folder of the artifact repository that is a Helm repository (`helm repo add NAME URL/charts`). */
export const CHART_REPOSITORY_PREFIX = "charts";
/** In the Helm repository: every chart published there, so the next import keeps them in index.yaml. */
const CHART_INDEX_FILE = "airgap-charts.json";

/** The charts an earlier import published (an unreadable list is rebuilt from this import's charts). */
async function readChartIndex(repo: ArtifactRepository, signal?: AbortSignal): Promise<IndexedChart[]> {
  const bytes = repo.get
    ? await repo.get(`${CHART_REPOSITORY_PREFIX}/${CHART_INDEX_FILE}`, signal)
    : undefined;
  if (!bytes) return [];
  try {
    const parsed = JSON.parse(bytes.toString("utf8")) as { charts?: unknown };
    if (!Array.isArray(parsed.charts)) return [];
    return parsed.charts.filter(
      (c): c is IndexedChart =>
        typeof c === "object" &&
        c !== null &&
        typeof c.name === "string" &&
        typeof c.version === "string" &&
        isSha256Hex(c.sha256) &&
        typeof c.url === "string" &&
        typeof c.chartYamlJson === "object" &&
        c.chartYamlJson !== null,
    );
  } catch {
    return [];
  }
}

/** The folder of the artifact repository that is a static gem source (`gem install --source URL/gems`). */
export const GEM_SOURCE_PREFIX = "gems";
/** In the gem source: every gem published there, so the next import keeps them in the index. */
const GEM_INDEX_FILE = "airgap-gems.json";

function gemFullName(g: { name: string; version: string; platform: string }): string {
  return `${g.name}-${g.version}${g.platform === "ruby" ? "" : `-${g.platform}`}`;
}

/** The gems an earlier import published (an unreadable index is rebuilt from this import's gems). */
async function readGemIndex(repo: ArtifactRepository, signal?: AbortSignal): Promise<GemItem["gem"][]> {
  const bytes = repo.get ? await repo.get(`${GEM_SOURCE_PREFIX}/${GEM_INDEX_FILE}`, signal) : undefined;
  if (!bytes) return [];
  try {
    const parsed = JSON.parse(bytes.toString("utf8")) as { gems?: unknown };
    if (!Array.isArray(parsed.gems)) return [];
    return parsed.gems.filter(
      (g): g is GemItem["gem"] =>
        typeof g === "object" &&
        g !== null &&
        typeof g.name === "string" &&
        typeof g.version === "string" &&
        typeof g.platform === "string" &&
        isSha256Hex(g.sha256) &&
        Number.isSafeInteger(g.size) &&
        isSha256Hex(g.gemspec?.sha256) &&
        Number.isSafeInteger(g.gemspec?.size) &&
        Array.isArray(g.dependencies),
    );
  } catch {
    return [];
  }
}

/** Where a plain file of the bundle lands in the artifact repository. */
export function fileKey(name: string, platform: string): string {
  return `files/${name}/${platform}/${name}`;
}

/**
 * Publish the bundle's profiles and files to the artifact repository (when one was given), skipping
 * what is there already: profiles/NAME/VERSION/NAME-VERSION.tar.gz with profiles/index.json, and
 * files/NAME/PLATFORM/NAME. Each is streamed from `fetchBlob`, which verifies it against its digest,
 * and uploaded verified against its sha256. Without a repository each is still listed with its OCI
 * artifact in the registry. Only the items `uploads` accepts are uploaded (a worker's part of a
 * sharded import); the indexes (profiles/index.json, the gem source, the Helm index) always name
 * every item, so every worker writes the same ones.
 */
export async function publishArtifactItems(
  inventory: Inventory,
  images: PlannedImage[],
  opts: ImportOptions,
  fetchBlob: (d: Descriptor, item: InventoryItem) => Promise<Readable>,
  uploads: (name: string) => boolean = () => true,
): Promise<PublishedArtifacts> {
  const elsewhere = (item: InventoryItem) => (uploads(item.name) ? {} : { elsewhere: true });
  const profiles = inventory.items.filter((i): i is ProfileItem => i.kind === "profile");
  const files = inventory.items.filter((i): i is FileItem => i.kind === "file");
  const gems = inventory.items.filter((i): i is GemItem => i.kind === "gem");
  const charts = inventory.items.filter((i): i is ChartItem => i.kind === "chart");
  // each chart's values file: every image it names replaced by its internal reference, pinned
  const internalRef = (chart: ChartItem) => (ref: string) => {
    const img = images.find((i) => i.source === ref);
    if (!img) {
      throw new IntegrityError(
        "MALFORMED",
        `chart ${chart.chart.name} names image ${ref}, which the bundle does not carry`,
        chart.name,
      );
    }
    return formatReference({
      registry: img.targetRef.registry,
      repository: img.targetRef.repository,
      digest: img.digest,
    });
  };
  const chartRecord = (
    item: ChartItem,
    url?: string,
    repository?: string,
    uploaded = false,
  ): PublishedChart => ({
    name: item.chart.name,
    version: item.chart.version,
    sha256: item.chart.sha256,
    artifact: artifactOf(item),
    oci: `oci://${formatReference({ ...parseReference(artifactOf(item)), digest: undefined, tag: undefined })}`,
    ...(url ? { url } : {}),
    ...(repository ? { repository } : {}),
    uploaded,
    images: item.chart.images.map((i) => ({ source: i.ref, target: internalRef(item)(i.ref) })),
    values: chartValuesOverride(item.chart.images as DiscoveredImage[], internalRef(item)),
  });
  const artifactOf = (item: InventoryItem) => {
    const img = images.find((i) => i.source === item.name);
    return img ? formatReference({ ...img.targetRef, tag: undefined, digest: item.digest }) : item.name;
  };
  const fileRecord = (item: FileItem, url?: string, uploaded = false): PublishedFile => ({
    name: item.file.name,
    platform: item.file.platform,
    sha256: item.file.sha256,
    size: item.file.size,
    ...(url ? { url } : {}),
    artifact: artifactOf(item),
    uploaded,
  });
  const gemRecord = (item: GemItem, url?: string, source?: string, uploaded = false): PublishedGem => ({
    name: item.gem.name,
    version: item.gem.version,
    platform: item.gem.platform,
    sha256: item.gem.sha256,
    ...(url ? { url } : {}),
    ...(source ? { source } : {}),
    artifact: artifactOf(item),
    uploaded,
  });
  if (
    !opts.artifacts ||
    (profiles.length === 0 && files.length === 0 && gems.length === 0 && charts.length === 0)
  ) {
    return {
      profiles: profiles.map((item) => ({
        name: item.profile.name,
        version: item.profile.version,
        sha256: item.profile.sha256,
        artifact: artifactOf(item),
        uploaded: false,
      })),
      files: files.map((item) => fileRecord(item)),
      gems: gems.map((item) => gemRecord(item)),
      charts: charts.map((item) => chartRecord(item)),
    };
  }
  const repo = await openArtifactRepository(opts.artifacts, opts.artifactOptions);
  opts.progress.phase(`publishing to ${repo.label}`, 0);
  const result: PublishedArtifacts = { profiles: [], files: [], gems: [], charts: [] };
  if (profiles.length > 0) {
    const layer = (item: ProfileItem): Descriptor => ({
      mediaType: ArtifactType.cincProfile,
      digest: `sha256:${item.profile.sha256}`,
      size: item.profile.size,
    });
    const published = await publishProfiles(
      profiles.map((item) => ({
        name: item.profile.name,
        version: item.profile.version,
        sha256: item.profile.sha256,
        size: item.profile.size,
        stream: () => fetchBlob(layer(item), item),
        ...elsewhere(item),
      })),
      repo,
      { signal: opts.signal },
    );
    result.profiles = profiles.map((item) => {
      const key = profileKey(item.profile.name, item.profile.version);
      return {
        name: item.profile.name,
        version: item.profile.version,
        sha256: item.profile.sha256,
        url: published.urls[key] ?? repo.url(key),
        artifact: artifactOf(item),
        uploaded: published.uploaded.includes(key),
      };
    });
  }
  if (files.length > 0) {
    const objects: PublishObject[] = files.map((item) => ({
      key: fileKey(item.file.name, item.file.platform),
      sha256: item.file.sha256,
      size: item.file.size,
      contentType: "application/octet-stream",
      content: () =>
        fetchBlob(
          {
            mediaType: "application/octet-stream",
            digest: `sha256:${item.file.sha256}`,
            size: item.file.size,
          },
          item,
        ),
      ...elsewhere(item),
    }));
    const published = await publishObjects(objects, repo, { signal: opts.signal });
    result.files = files.map((item) => {
      const key = fileKey(item.file.name, item.file.platform);
      return fileRecord(item, published.urls[key] ?? repo.url(key), published.uploaded.includes(key));
    });
  }
  if (gems.length > 0) {
    // .gem and .gemspec.rz files are named by digest here and streamed from the bundle when needed
    const byDigest = new Map<string, GemItem>();
    for (const item of gems) {
      byDigest.set(`sha256:${item.gem.sha256}`, item);
      byDigest.set(`sha256:${item.gem.gemspec.sha256}`, item);
    }
    // Gems an earlier import published stay in the source: its index is read back and merged
    // (this bundle's gem wins where both have the same name, version and platform).
    const merged = new Map<string, GemItem["gem"]>();
    for (const g of await readGemIndex(repo, opts.signal)) merged.set(gemFullName(g), g);
    for (const item of gems) merged.set(gemFullName(item.gem), item.gem);
    const sourceFiles = gemSourceFiles(
      [...merged.values()].map((g) => ({
        name: g.name,
        version: g.version,
        platform: g.platform,
        sha256: g.sha256,
        size: g.size,
        dependencies: g.dependencies,
        file: `sha256:${g.sha256}`,
        gemspec: { file: `sha256:${g.gemspec.sha256}`, ...g.gemspec },
        ...(g.providedTree ? { providedTree: g.providedTree } : {}),
        ...(g.ruby ? { ruby: g.ruby } : {}),
        ...(g.rubygems ? { rubygems: g.rubygems } : {}),
      })),
    );
    sourceFiles.push({
      path: GEM_INDEX_FILE,
      bytes: Buffer.from(
        `${JSON.stringify({ gems: [...merged.values()].sort((a, b) => (gemFullName(a) < gemFullName(b) ? -1 : 1)) }, null, 2)}\n`,
      ),
      sha256: "",
      size: 0,
    });
    const last = sourceFiles[sourceFiles.length - 1]!;
    last.sha256 = sha256Hex(last.bytes!);
    last.size = last.bytes!.length;
    const objects: PublishObject[] = sourceFiles.map((f) => {
      const key = `${GEM_SOURCE_PREFIX}/${f.path}`;
      if (f.bytes)
        return { key, sha256: f.sha256, size: f.size, contentType: "text/plain", content: f.bytes };
      const digest = f.file!;
      const item = byDigest.get(digest);
      return {
        key,
        sha256: f.sha256,
        size: f.size,
        contentType: "application/octet-stream",
        ...(item ? elsewhere(item) : {}),
        content: () => {
          if (!item) {
            throw new UsageError(
              `${repo.url(key)} is listed by ${repo.url(`${GEM_SOURCE_PREFIX}/${GEM_INDEX_FILE}`)} but is not there, and this bundle does not carry it: import the bundle that did again`,
            );
          }
          return fetchBlob({ mediaType: "application/octet-stream", digest, size: f.size }, item);
        },
      };
    });
    // gems first, the index files (names, versions, info/) last: the index only names gems that are there
    objects.sort((a, b) => Number(Buffer.isBuffer(a.content)) - Number(Buffer.isBuffer(b.content)));
    const published = await publishObjects(objects, repo, { signal: opts.signal });
    const source = repo.url(GEM_SOURCE_PREFIX);
    result.gems = gems.map((item) => {
      const full = `${item.gem.name}-${item.gem.version}${item.gem.platform === "ruby" ? "" : `-${item.gem.platform}`}`;
      const key = `${GEM_SOURCE_PREFIX}/gems/${full}.gem`;
      return gemRecord(item, published.urls[key] ?? repo.url(key), source, published.uploaded.includes(key));
    });
  }
  if (charts.length > 0) {
    // a Helm repository: charts/NAME-VERSION.tgz, then charts/index.yaml naming them (relative URLs)
    const key = (item: ChartItem) =>
      `${CHART_REPOSITORY_PREFIX}/${item.chart.name}-${item.chart.version}.tgz`;
    const objects: PublishObject[] = charts.map((item) => ({
      key: key(item),
      sha256: item.chart.sha256,
      size: item.chart.size,
      contentType: "application/gzip",
      content: () =>
        fetchBlob(
          { mediaType: MediaType.helmChart, digest: `sha256:${item.chart.sha256}`, size: item.chart.size },
          item,
        ),
      ...elsewhere(item),
    }));
    // Charts an earlier import published stay in the repository's index (this bundle's win).
    const listed = new Map<string, IndexedChart>();
    for (const c of await readChartIndex(repo, opts.signal)) listed.set(`${c.name}\0${c.version}`, c);
    for (const item of charts) {
      listed.set(`${item.chart.name}\0${item.chart.version}`, {
        name: item.chart.name,
        version: item.chart.version,
        sha256: item.chart.sha256,
        url: `${item.chart.name}-${item.chart.version}.tgz`,
        chartYamlJson: item.chart.metadata,
      });
    }
    const all = [...listed.values()].sort((a, b) =>
      a.name === b.name ? (a.version < b.version ? -1 : 1) : a.name < b.name ? -1 : 1,
    );
    // the bundle's creation time: the same bundle gives the same index, so a re-import uploads nothing
    const index = helmRepositoryIndex(all, new Date(inventory.created));
    objects.push(
      smallObject(`${CHART_REPOSITORY_PREFIX}/index.yaml`, Buffer.from(index), "application/yaml"),
      smallObject(
        `${CHART_REPOSITORY_PREFIX}/${CHART_INDEX_FILE}`,
        Buffer.from(`${JSON.stringify({ charts: all }, null, 2)}\n`),
        "application/json",
      ),
    );
    const published = await publishObjects(objects, repo, { signal: opts.signal });
    const repository = repo.url(CHART_REPOSITORY_PREFIX);
    result.charts = charts.map((item) =>
      chartRecord(
        item,
        published.urls[key(item)] ?? repo.url(key(item)),
        repository,
        published.uploaded.includes(key(item)),
      ),
    );
  } else result.charts = [];
  for (const p of result.profiles) opts.progress.itemDone(`profile ${p.name} ${p.version}`);
  for (const g of result.gems) opts.progress.itemDone(`gem ${g.name} ${g.version}`);
  for (const f of result.files) opts.progress.itemDone(`file ${f.name} (${f.platform})`);
  return result;
}
