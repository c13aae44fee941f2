import { mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, homedir } from "node:os";
import { basename, join } from "node:path";
import { Readable } from "node:stream";
import pLimit from "p-limit";
import { type BundleFile, type WriteTarget, writeBundle } from "../bundle/archive/writer.js";
import { CHECKSUMS_FILE, formatChecksums, SIGNATURE_FILES } from "../bundle/checksums.js";
import {
  type CarriedExtra,
  type ImageItem,
  INVENTORY_FILE,
  INVENTORY_FORMAT,
  type Inventory,
  type InventoryItem,
} from "../bundle/inventory.js";
import { readBundleSummary } from "../bundle/summary.js";
import { CARRY_KINDS } from "../config/schema.js";
import type { BundleConfig, ImageSpec, ProfileSource, RunnerSpec } from "../config/types.js";
import { AirgapError, UsageError } from "../errors.js";
import {
  ANNOTATION_CONTAINERD_NAME,
  ANNOTATION_REF_NAME,
  type Descriptor,
  type ImageIndex,
} from "../oci/descriptor.js";
import { digestHex, sha256Hex } from "../oci/digest.js";
import { isManifestLike, MediaType } from "../oci/mediatypes.js";
import { formatReference, parseReference } from "../oci/reference.js";
import { RegistryClient } from "../oci/registry/client.js";
import type { ProfileEntry, ProfileInventoryRecord } from "../profiles/index.js";
import { redactDeep, redactSecrets } from "../redact.js";
import { planFiles } from "../sources/files/index.js";
import { type ResolvedImage, resolveImage } from "../sources/images.js";
import type { ArtifactRepositoryOptions } from "../store/artifacts.js";
import { type CopyEvent, type CosignTagKind, copyGraph } from "../store/copy.js";
import { ANNOTATION_REPOSITORY, ANNOTATION_SUBJECT, OciLayoutStore } from "../store/layout.js";
import { type RegistryStore, registryRepository } from "../store/registry.js";
import { RUNNER_IMAGE } from "../targets/manifests.js";
import { trackTemp } from "../temp-files.js";
import { VERSION } from "../version.js";
import {
  ARTIFACT_REPOSITORY_HOST,
  type ArtifactContext,
  type BundledArtifact,
  bundleChartItems,
  bundleFileItems,
  bundleGemItems,
  chartPlanItem,
  filePlanItem,
  gemPlanItems,
  type ResolvedChartEntry,
  resolveChartEntries,
} from "./artifacts.js";
import { collectGraph } from "./graph.js";
import type { Progress } from "./progress.js";
import { assembleRunnerImage } from "./runner-image.js";
import { type CarriedFile, carriedTools, TOOLS_DIR } from "./tools.js";

export interface CreateOptions {
  config: BundleConfig;
  configText: string;
  output: WriteTarget;
  cacheDir?: string;
  platforms?: string[];
  concurrency?: number;
  caFiles?: string[];
  dryRun?: boolean;
  /** With dryRun: plan from the config alone, opening no connection (items to pin are marked). */
  offline?: boolean;
  /** Endpoint, credentials and TLS for an `s3://` output or --since bundle: the artifact repository's settings. */
  s3?: ArtifactRepositoryOptions;
  /** Replace an existing output. */
  overwrite?: boolean;
  /** An older bundle whose layers and configs this one leaves out (incremental bundle). */
  since?: string;
  /** Files without a sha256 in the config are downloaded and pinned by the sha256 seen (warned). */
  allowUnpinned?: boolean;
  /** Signs SHA256SUMS; returns the two signature files' contents. */
  sign?: (sums: Buffer) => { sigBase64: string; sigstoreBundleJson: string };
  /** Upstream signature policy, checked per image before it enters the bundle. */
  checkPolicy?: (image: ResolvedImage, client: RegistryClient) => Promise<ImageItem["policy"]>;
  progress: Progress;
  signal?: AbortSignal;
}

export interface PlanItem {
  kind: InventoryItem["kind"];
  name: string;
  source: string;
  digest: string;
  sourceDigest: string;
  platforms: string[];
  size: number;
  blobs: number;
  cachedBytes: number;
  cached: boolean;
  /** Offline plans only: the config does not pin this item; create pins it over the network. */
  needsNetwork?: boolean;
}

export interface CreateResult {
  plan: PlanItem[];
  inventory?: Inventory;
  output?: { paths: string[]; bytes: number };
  stats: {
    pulledBytes: number;
    pulledBlobs: number;
    skippedBlobs: number;
    seconds: number;
    /** Registry requests and downloads tried again after a failure; resumes continued a broken blob by Range, restarts began it again. */
    retries: number;
    resumes: number;
    restarts: number;
  };
  /** Things the user should know that did not stop the bundle (e.g. files pinned by what was downloaded). */
  warnings: string[];
  /** What an offline plan could not know (printed, not warned). */
  notes?: string[];
}

/** The base bundle's items that carried blobs the new bundle leaves out, with those blobs. */
function baseHolders(base: Inventory, omitted: Set<string>): NonNullable<Inventory["since"]>["holders"] {
  return base.items.flatMap((item) => {
    const blobs = item.blobs.filter((d) => omitted.has(d));
    return blobs.length > 0 ? [{ name: item.name, blobs }] : [];
  });
}

function retryStats(client: RegistryClient): Pick<CreateResult["stats"], "retries" | "resumes" | "restarts"> {
  const { retries, resumes, restarts } = client.stats;
  return { retries, resumes, restarts };
}

/** The stats of a run that pulled nothing (a dry run); `client` when it talked to registries. */
function nothingPulled(started: number, client?: RegistryClient): CreateResult["stats"] {
  return {
    pulledBytes: 0,
    pulledBlobs: 0,
    skippedBlobs: 0,
    seconds: (Date.now() - started) / 1000,
    ...(client ? retryStats(client) : { retries: 0, resumes: 0, restarts: 0 }),
  };
}

export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "cinc-airgap");
}

export function defaultConcurrency(): number {
  return Math.max(4, availableParallelism() * 2);
}

const CARRY_TO_COSIGN: Record<string, CosignTagKind> = {
  signatures: "sig",
  attestations: "att",
  sboms: "sbom",
};

/**
 * `bundle create`: resolve every image to a digest, pull each graph into the cache (an OCI layout,
 * shared across runs), then lay out the bundle from the cache: index.json, bundle.json, SHA256SUMS
 * (+ signature), blobs in children-before-parents order.
 */
export async function createBundle(opts: CreateOptions): Promise<CreateResult> {
  const started = Date.now();
  const { config, signal, progress } = opts;
  if (
    !config.runner &&
    (["images", "profiles", "files", "gems", "charts"] as const).every((k) => config[k].length === 0)
  ) {
    throw new UsageError(
      `${config.file} names nothing to bundle (no images, profiles, charts, gems or files)`,
    );
  }
  const warnings: string[] = [];
  // Every download is known (URL and pin) before anything is fetched: a missing checksum stops here.
  const plannedFiles = planFiles(config.files, {
    ...(opts.platforms ? { platforms: opts.platforms } : {}),
    allowUnpinned: Boolean(opts.allowUnpinned),
  });

  if (opts.offline) {
    if (!opts.dryRun) throw new UsageError("--offline plans only: use it with --dry-run");
    const cache = await OciLayoutStore.open(opts.cacheDir ?? defaultCacheDir(), { create: true });
    const { offlinePlan } = await import("./offline-plan.js");
    const { plan, notes } = await offlinePlan(config, plannedFiles, cache, {
      platforms: opts.platforms,
      runnerName: `${RUNNER_ITEM_REPOSITORY}:${VERSION}`,
      describeProfile: describeProfileSource,
    });
    return {
      plan,
      stats: nothingPulled(started),
      warnings,
      notes,
    };
  }

  const client = new RegistryClient({
    hosts: config.registries,
    caFiles: opts.caFiles ?? [],
    signal,
  });
  const cache = await OciLayoutStore.open(opts.cacheDir ?? defaultCacheDir(), { create: true });
  const limit = pLimit(opts.concurrency ?? defaultConcurrency());
  const artifactContext: ArtifactContext = {
    config,
    cache,
    limit,
    progress,
    warnings,
    ...(opts.caFiles ? { caFiles: opts.caFiles } : {}),
    ...(signal ? { signal } : {}),
  };
  const chartWork = config.charts.length > 0 ? await mkdtemp(join(cache.root, "charts-work-")) : undefined;
  const untrackChartWork = chartWork ? trackTemp(chartWork) : () => {};
  try {
    // 0. Charts first: the images their values name (`images: auto`) join the image plan.
    const charts = chartWork
      ? await resolveChartEntries({ ...artifactContext, client, workDir: chartWork })
      : [];
    const imageSpecs = [...config.images, ...chartImageSpecs(charts, config, warnings, progress)];

    // 1. Pin every image before anything is pulled.
    progress.phase("resolving", 0);
    const images = await Promise.all(
      imageSpecs.map(async (spec) => {
        const store = registryRepository(client, spec.reference.registry, spec.reference.repository);
        const platforms = opts.platforms && opts.platforms.length > 0 ? opts.platforms : spec.platforms;
        const resolved = await limit(() =>
          resolveImage(store, { ref: spec.ref, platforms, carry: spec.carry }, [], signal),
        );
        progress.resolved(resolved.name, resolved.root.digest);
        return { resolved, store };
      }),
    );
    // The runner image is built from its base after the pull; its base is pinned here with the rest.
    const runner = config.runner
      ? await resolveRunnerBase(client, config.runner, opts.platforms, limit, signal)
      : undefined;
    if (runner) {
      progress.resolved(`${runner.name} (base)`, runner.base.root.digest);
      const base = config.runner!.reference;
      if (!base.digest && base.tag === "latest") {
        warnings.push(
          `runner base ${runner.base.name}: :latest is pinned to the digest it has today; name a Node version (and @sha256:<hex>)`,
        );
      }
    }
    assertUniqueNames(images.map((i) => i.resolved));

    // 2. Plan: sizes and what the cache already holds (manifests only are fetched).
    // What the pull will really move: each uncached blob once, however many images share it.
    const toPull = new Map<string, number>();
    const plan = await Promise.all(
      images.map(({ resolved, store }) => planImage(resolved, store, cache, limit, toPull, signal)),
    );
    if (runner) plan.push(await runnerPlanItem(runner, cache, limit, toPull, signal));
    for (const entry of config.profiles) plan.push(profilePlanItem(entry));
    plan.push(...charts.map(chartPlanItem));
    plan.push(...gemPlanItems(config));
    for (const file of plannedFiles) plan.push(await filePlanItem(file, cache));
    if (opts.dryRun) {
      return {
        plan,
        stats: nothingPulled(started, client),
        warnings,
      };
    }

    // 3. Upstream signature policy, before a byte of an image is pulled.
    const policies = new Map<string, ImageItem["policy"]>();
    if (opts.checkPolicy) {
      const check = opts.checkPolicy;
      await Promise.all(
        images.map(async ({ resolved }) =>
          policies.set(resolved.name, await limit(() => check(resolved, client))),
        ),
      );
    }

    // 4. Pull into the cache.
    const stats = { pulledBytes: 0, pulledBlobs: 0, skippedBlobs: 0 };
    const inflight = new Map<string, Promise<void>>();
    progress.phase(
      "pulling",
      [...toPull.values()].reduce((n, size) => n + size, 0),
    );
    const pulled: PulledImage[] = await Promise.all(
      images.map(async ({ resolved, store }) => {
        const dst = cache.repository(resolved.repository);
        const onEvent = (e: CopyEvent) => {
          if (e.type === "bytes") {
            stats.pulledBytes += e.bytes;
            progress.bytes(resolved.name, e.bytes);
          } else if (e.type === "done") stats.pulledBlobs++;
          else if (e.type === "skip") {
            stats.skippedBlobs++;
            progress.skipped(resolved.name, e.desc.size);
          }
        };
        const cosignTags = resolved.carry
          .map((c) => CARRY_TO_COSIGN[c])
          .filter((k): k is CosignTagKind => !!k);
        const extras: CarriedExtra[] = [];
        for (const root of resolved.copyRoots) {
          const result = await copyGraph(store, dst, root, {
            limit,
            inflight,
            signal,
            cosignTags,
            referrers: resolved.carry.includes("referrers"),
            onEvent,
          });
          for (const x of result.extras) {
            const carried: CarriedExtra = {
              kind: x.kind,
              subject: x.subject,
              digest: x.descriptor.digest,
              mediaType: x.descriptor.mediaType,
            };
            if (x.tag) carried.tag = x.tag;
            if (x.descriptor.artifactType) carried.artifactType = x.descriptor.artifactType;
            extras.push(carried);
          }
        }
        if (resolved.filteredIndex) {
          await dst.push(resolved.root, Readable.from([resolved.filteredIndex]), signal);
        }
        const policy = policies.get(resolved.name);
        progress.itemDone(resolved.name);
        return { resolved, extras, policy };
      }),
    );

    // 4a. The runner image, built into the cache from its base and the tool this bundle carries.
    const tools = await carriedTools();
    if (runner) {
      const onEvent = (e: CopyEvent) => {
        if (e.type === "bytes") {
          stats.pulledBytes += e.bytes;
          progress.bytes(runner.name, e.bytes);
        } else if (e.type === "done") stats.pulledBlobs++;
        else if (e.type === "skip") stats.skippedBlobs++;
      };
      pulled.push(await buildRunnerInCache(runner, tools[0]!, cache, { limit, inflight, onEvent }, signal));
      progress.itemDone(runner.name);
    }

    // 4b. Profiles: resolve sources and depends, vendor, pack, store as OCI artifacts in the cache.
    const profiles = config.profiles.length > 0 ? await bundleProfiles(config, cache, client, opts) : [];
    const imageDigests = new Map(images.map(({ resolved }) => [resolved.name, resolved.root.digest]));
    const artifacts: BundledArtifact[] = [
      ...profiles.map(profileArtifact),
      ...(plannedFiles.length > 0 ? await bundleFileItems(plannedFiles, artifactContext) : []),
      ...(config.gems.length > 0 ? await bundleGemItems(artifactContext) : []),
      ...(charts.length > 0
        ? await bundleChartItems(charts, imageDigests, { ...artifactContext, client, inflight })
        : []),
    ];

    // 5. Lay out the bundle from the cache.
    progress.phase("writing", 0);
    const seen = new Set<string>();
    const ordered: Descriptor[] = [];
    // Each item's graph is collected once; appending what is new keeps children before parents
    // across items, since a shared child was already placed by an earlier item.
    const place = (graph: Descriptor[]) => {
      for (const d of graph) {
        if (seen.has(d.digest)) continue;
        seen.add(d.digest);
        ordered.push(d);
      }
    };
    const roots: Descriptor[] = [];
    const items: InventoryItem[] = [];
    for (const { resolved, extras, policy, built } of pulled) {
      const view = cache.repository(resolved.repository);
      const itemGraph = await collectGraph(view, resolved.root, new Map(), [], signal);
      place(itemGraph);
      roots.push(rootEntry(resolved.name, resolved.root));
      const extraBlobs: string[] = [];
      const manifests = itemGraph
        .filter((d) => isManifestLike(d.mediaType))
        .map(({ digest, mediaType, size }) => ({ digest, mediaType, size }));
      for (const x of extras) {
        const desc: Descriptor = { mediaType: x.mediaType, digest: x.digest, size: 0 };
        const found = await view.resolve(x.digest);
        desc.size = found.size;
        const extraGraph = await collectGraph(view, desc, new Map(), [], signal);
        for (const d of extraGraph) {
          extraBlobs.push(d.digest);
          if (isManifestLike(d.mediaType) && !manifests.some((m) => m.digest === d.digest)) {
            manifests.push({ digest: d.digest, mediaType: d.mediaType, size: d.size });
          }
        }
        place(extraGraph);
        if (x.tag) {
          roots.push(rootEntry(`${resolved.repository}:${x.tag}`, desc));
        } else {
          const annotations: Record<string, string> = {
            [ANNOTATION_SUBJECT]: x.subject,
            [ANNOTATION_REPOSITORY]: resolved.repository,
          };
          roots.push({ ...desc, ...(x.artifactType ? { artifactType: x.artifactType } : {}), annotations });
        }
      }
      const item: ImageItem = {
        kind: "image",
        name: resolved.name,
        source: resolved.entry.ref,
        digest: resolved.root.digest,
        mediaType: resolved.root.mediaType,
        size: itemGraph.reduce((n, d) => n + d.size, 0),
        blobs: [
          ...itemGraph.map((d) => d.digest),
          ...extraBlobs.filter((d) => !itemGraph.some((g) => g.digest === d)),
        ],
        manifests,
        sourceDigest: resolved.sourceDescriptor.digest,
        platforms: resolved.platforms,
        carried: extras,
      };
      if (resolved.reference.tag) item.tag = resolved.reference.tag;
      if (resolved.sourcePlatforms) item.sourcePlatforms = resolved.sourcePlatforms;
      if (policy) item.policy = policy;
      if (built) item.built = built;
      items.push(item);
    }

    for (const a of artifacts) {
      const view = cache.repository(a.repository);
      const graph = await collectGraph(view, a.descriptor, new Map(), [], signal);
      place(graph);
      roots.push(rootEntry(a.name, a.descriptor));
      const manifests = [
        { digest: a.descriptor.digest, mediaType: a.descriptor.mediaType, size: a.descriptor.size },
      ];
      for (const extra of a.extraRoots ?? []) {
        const extraGraph = await collectGraph(view, extra.descriptor, new Map(), [], signal);
        place(extraGraph);
        roots.push(rootEntry(extra.name, extra.descriptor));
        for (const d of extraGraph) {
          if (!graph.some((g) => g.digest === d.digest)) graph.push(d);
          if (isManifestLike(d.mediaType) && !manifests.some((m) => m.digest === d.digest)) {
            manifests.push({ digest: d.digest, mediaType: d.mediaType, size: d.size });
          }
        }
      }
      items.push(
        a.item({
          name: a.name,
          source: a.source,
          digest: a.descriptor.digest,
          mediaType: a.descriptor.mediaType,
          size: graph.reduce((n, d) => n + d.size, 0),
          blobs: graph.map((d) => d.digest),
          manifests,
        }),
      );
    }

    // Incremental: leave out layers and configs the base bundle already carried (never manifests:
    // they are small, and import walks them).
    let since: Inventory["since"];
    let carried = ordered;
    if (opts.since) {
      const base = await readBundleSummary(opts.since, opts.s3 ? { s3: opts.s3 } : {});
      const inBase = (d: Descriptor) => base.sizes.get(`blobs/sha256/${digestHex(d.digest)}`) === d.size;
      const omitted = ordered.filter((d) => !isManifestLike(d.mediaType) && inBase(d));
      carried = ordered.filter((d) => !omitted.includes(d));
      since = {
        bundle: basename(opts.since),
        name: base.inventory.metadata.name,
        version: base.inventory.metadata.version,
        created: base.inventory.created,
        omittedBlobs: omitted.map((d) => d.digest),
        holders: baseHolders(base.inventory, new Set(omitted.map((d) => d.digest))),
      };
    }

    // Config URLs may carry credentials (used for fetching); the inventory crosses the gap, so every
    // string in it, the embedded config text included, is redacted, and the recorded sha256 is of
    // the text as recorded.
    const configText = redactSecrets(opts.configText);
    const inventory: Inventory = redactDeep({
      format: INVENTORY_FORMAT,
      tool: { name: "cinc-airgap", version: VERSION },
      created: new Date().toISOString(),
      metadata: config.metadata,
      config: { file: config.file, sha256: sha256Hex(configText), text: configText },
      platforms: opts.platforms && opts.platforms.length > 0 ? opts.platforms : config.platforms,
      items,
      totals: { items: items.length, blobs: carried.length, bytes: carried.reduce((n, d) => n + d.size, 0) },
      ...(since ? { since } : {}),
    } satisfies Inventory);
    const files = bundleFiles(cache, carried, roots, inventory, opts.sign, tools);
    progress.expect(files.reduce((n, f) => n + f.size, 0));
    let written = 0;
    const output = await writeBundle(files, opts.output, {
      signal,
      overwrite: Boolean(opts.overwrite),
      ...(opts.s3 ? { s3: opts.s3 } : {}),
      // the writer reports bytes written so far; progress counts increments
      onProgress: (total) => {
        progress.bytes("write", total - written);
        written = total;
      },
    });
    return {
      plan,
      inventory,
      output,
      stats: { ...stats, seconds: (Date.now() - started) / 1000, ...retryStats(client) },
      warnings,
    };
  } finally {
    if (chartWork) await rm(chartWork, { recursive: true, force: true });
    untrackChartWork();
    await client.close();
  }
}

interface PulledImage {
  resolved: ResolvedImage;
  extras: CarriedExtra[];
  policy: ImageItem["policy"] | undefined;
  /** Set for the runner image, which create builds. */
  built?: ImageItem["built"];
}

/** The runner image's name in the bundle: under the pseudo host import drops, like every artifact. */
export const RUNNER_ITEM_REPOSITORY = `${ARTIFACT_REPOSITORY_HOST}/${RUNNER_IMAGE}`;

interface RunnerPlan {
  name: string;
  spec: RunnerSpec;
  store: RegistryStore;
  /** The base, pinned and filtered to the runner's platforms. */
  base: ResolvedImage;
}

async function resolveRunnerBase(
  client: RegistryClient,
  spec: RunnerSpec,
  platforms: string[] | undefined,
  limit: ReturnType<typeof pLimit>,
  signal?: AbortSignal,
): Promise<RunnerPlan> {
  const store = registryRepository(client, spec.reference.registry, spec.reference.repository);
  const wanted = platforms && platforms.length > 0 ? platforms : spec.platforms;
  const base = await limit(() =>
    resolveImage(store, { ref: spec.base, platforms: wanted, carry: [] }, [], signal),
  );
  return { name: `${RUNNER_ITEM_REPOSITORY}:${VERSION}`, spec, store, base };
}

async function runnerPlanItem(
  runner: RunnerPlan,
  cache: OciLayoutStore,
  limit: ReturnType<typeof pLimit>,
  toPull: Map<string, number>,
  signal?: AbortSignal,
): Promise<PlanItem> {
  const base = await planImage(runner.base, runner.store, cache, limit, toPull, signal);
  return {
    ...base,
    name: runner.name,
    source: `${runner.base.name}@${runner.base.sourceDescriptor.digest} + ${TOOLS_DIR}/airgap-${VERSION}.mjs`,
    digest: "(built at create)",
  };
}

/**
 * Build the runner image into the cache: the base's chosen platforms, copied and verified, plus
 * one layer holding the very tool the bundle carries. It then travels as an image like any other.
 */
async function buildRunnerInCache(
  runner: RunnerPlan,
  tool: CarriedFile,
  cache: OciLayoutStore,
  copy: {
    limit: ReturnType<typeof pLimit>;
    inflight: Map<string, Promise<void>>;
    onEvent: (e: CopyEvent) => void;
  },
  signal?: AbortSignal,
): Promise<PulledImage> {
  const { base, store } = runner;
  const { descriptor, bytes } = await store.fetchManifest(base.sourceDescriptor.digest, signal);
  const built = await assembleRunnerImage(
    { store, reference: base.reference, descriptor, bytes },
    cache.repository(RUNNER_ITEM_REPOSITORY),
    { platforms: base.platforms, tool: tool.bytes, copy, ...(signal ? { signal } : {}) },
  );
  const reference = parseReference(runner.name);
  const resolved: ResolvedImage = {
    entry: { ref: runner.spec.base },
    reference,
    name: runner.name,
    repository: RUNNER_ITEM_REPOSITORY,
    sourceDescriptor: descriptor,
    root: built.root,
    copyRoots: [built.root],
    platforms: built.platforms,
    ...(base.sourcePlatforms ? { sourcePlatforms: base.sourcePlatforms } : {}),
    carry: [],
  };
  return {
    resolved,
    extras: [],
    policy: undefined,
    built: {
      base: `${base.name}@${built.baseDigest}`,
      baseDigest: built.baseDigest,
      file: tool.path,
      layer: built.layer,
    },
  };
}

/**
 * The images `images: auto` charts name that the config does not list already, pinned like every
 * image (at the config's platforms, carrying everything). Each is printed; `:latest` is warned about,
 * since the digest it is pinned to today says nothing about tomorrow's.
 */
function chartImageSpecs(
  charts: ResolvedChartEntry[],
  config: BundleConfig,
  warnings: string[],
  progress: Progress,
): ImageSpec[] {
  const have = new Set(config.images.map((i) => formatReference(i.reference)));
  const out: ImageSpec[] = [];
  for (const { chart } of charts) {
    for (const img of chart.images) {
      const reference = parseReference(img.ref);
      const key = formatReference(reference);
      if (img.latest) {
        warnings.push(
          `chart ${chart.name} ${chart.version} names ${key} (${img.valuesPath.join(".")}): :latest is pinned to the digest it has today; name a version in the chart's values`,
        );
      }
      if (have.has(key)) continue;
      have.add(key);
      progress.info(`  chart ${chart.name} adds image ${key}`);
      out.push({ ref: key, reference, platforms: [...config.platforms], carry: [...CARRY_KINDS] });
    }
  }
  return out;
}

/** Profiles live in the bundle under this pseudo registry: import drops the host like any other. */
export const PROFILE_REPOSITORY_HOST = ARTIFACT_REPOSITORY_HOST;

function profileEntry(p: ProfileSource): ProfileEntry {
  switch (p.type) {
    case "git":
      return {
        git: p.git,
        [p.refKind]: p.ref,
        ...(p.relativePath ? { relative_path: p.relativePath } : {}),
        ...(p.name ? { name: p.name } : {}),
      };
    case "url":
      return { url: p.url, ...(p.sha256 ? { sha256: p.sha256 } : {}), ...(p.name ? { name: p.name } : {}) };
    case "path":
      return {
        path: p.path,
        ...(p.name ? { name: p.name } : {}),
        ...(p.allowDependenciesFrom ? { allow_dependencies_from: p.allowDependenciesFrom } : {}),
      };
    case "supermarket":
      return {
        supermarket: `supermarket://${p.supermarket}`,
        url: p.url,
        ...(p.version ? { version: p.version } : {}),
        ...(p.name ? { name: p.name } : {}),
      };
    case "oci":
      return { oci: formatReference(p.reference), ...(p.name ? { name: p.name } : {}) };
  }
}

function describeProfileSource(p: ProfileSource): string {
  switch (p.type) {
    case "git":
      return `${p.git}@${p.ref}${p.relativePath ? `#${p.relativePath}` : ""}`;
    case "url":
      return p.url;
    case "path":
      return p.path;
    case "supermarket":
      return `supermarket://${p.supermarket}${p.version ? `@${p.version}` : ""}`;
    case "oci":
      return formatReference(p.reference);
  }
}

function profilePlanItem(p: ProfileSource): PlanItem {
  return {
    kind: "profile",
    name: p.name ?? describeProfileSource(p),
    source: describeProfileSource(p),
    digest: p.type === "url" && p.sha256 ? `sha256:${p.sha256}` : "(pinned at create)",
    sourceDigest: "",
    platforms: [],
    size: 0,
    blobs: 0,
    cachedBytes: 0,
    cached: false,
  };
}

interface BundledProfile {
  name: string;
  repository: string;
  source: string;
  descriptor: Descriptor;
  record: ProfileInventoryRecord;
}

async function bundleProfiles(
  config: BundleConfig,
  cache: OciLayoutStore,
  client: RegistryClient,
  opts: CreateOptions,
): Promise<BundledProfile[]> {
  opts.progress.phase("profiles", 0);
  const workDir = await mkdtemp(join(cache.root, "profiles-work-"));
  const untrack = trackTemp(workDir);
  try {
    // Loaded only when a config has profiles: it brings git, archive and InSpec format code.
    const { resolveProfiles, storeProfileArtifact } = await import("../profiles/index.js");
    const resolved = await resolveProfiles(config.profiles.map(profileEntry), {
      workDir,
      configDir: config.dir,
      cacheDir: join(cache.root, "profile-downloads"),
      caFile: opts.caFiles?.[0],
      signal: opts.signal,
      openOci: (registry, repository) => registryRepository(client, registry, repository),
      onFetch: (label) => opts.progress.info(`  fetching ${label}`),
    });
    const out: BundledProfile[] = [];
    for (const [i, p] of resolved.entries()) {
      const repository = `${PROFILE_REPOSITORY_HOST}/profiles/${p.name}`;
      const { descriptor, inventory } = await storeProfileArtifact(cache.repository(repository), p, {
        signal: opts.signal,
      });
      out.push({
        name: `${repository}:${p.version}`,
        repository,
        source: describeProfileSource(config.profiles[i]!),
        descriptor,
        record: inventory,
      });
      opts.progress.itemDone(`${p.name} ${p.version} (${p.dependencies.length} dependencies)`);
    }
    return out;
  } finally {
    await rm(workDir, { recursive: true, force: true });
    untrack();
  }
}

function profileArtifact(p: BundledProfile): BundledArtifact {
  return {
    name: p.name,
    repository: p.repository,
    source: p.source,
    descriptor: p.descriptor,
    item: (common) => ({
      ...common,
      kind: "profile",
      profile: {
        name: p.record.profileName,
        version: p.record.version,
        sha256: p.record.sha256,
        size: p.record.size,
        file: p.record.fileName,
      },
      pinned: p.record.source as unknown as Record<string, unknown>,
      dependencies: p.record.dependencies,
    }),
  };
}

function rootEntry(name: string, desc: Descriptor): Descriptor {
  return {
    mediaType: desc.mediaType,
    digest: desc.digest,
    size: desc.size,
    ...(desc.artifactType ? { artifactType: desc.artifactType } : {}),
    annotations: { [ANNOTATION_REF_NAME]: name, [ANNOTATION_CONTAINERD_NAME]: name },
  };
}

function assertUniqueNames(images: ResolvedImage[]): void {
  const byName = new Map<string, string>();
  for (const img of images) {
    const prev = byName.get(img.name);
    if (prev !== undefined && prev !== img.root.digest) {
      throw new UsageError(
        `${img.name} is listed twice with different content (${prev} and ${img.root.digest})`,
      );
    }
    byName.set(img.name, img.root.digest);
  }
}

async function planImage(
  resolved: ResolvedImage,
  store: RegistryStore,
  cache: OciLayoutStore,
  limit: ReturnType<typeof pLimit>,
  toPull: Map<string, number>,
  signal?: AbortSignal,
): Promise<PlanItem> {
  // Walk the source's manifests (small) to size the graph; blobs are only HEADed in the cache.
  const graph: Descriptor[] = [];
  const seen = new Map<string, Descriptor>();
  for (const root of resolved.copyRoots) await limit(() => collectGraph(store, root, seen, graph, signal));
  if (resolved.filteredIndex) graph.push(resolved.root);
  let cachedBytes = 0;
  let allCached = true;
  for (const d of graph) {
    if (await cache.hasBlob(d)) cachedBytes += d.size;
    else {
      allCached = false;
      toPull.set(d.digest, d.size);
    }
  }
  return {
    kind: "image",
    name: resolved.name,
    source: resolved.entry.ref,
    digest: resolved.root.digest,
    sourceDigest: resolved.sourceDescriptor.digest,
    platforms: resolved.platforms,
    size: graph.reduce((n, d) => n + d.size, 0),
    blobs: graph.length,
    cachedBytes,
    cached: allCached,
  };
}

/** The bundle's files in stream order: signature, checksums, inventory, layout files, then blobs. */
function bundleFiles(
  cache: OciLayoutStore,
  blobs: Descriptor[],
  roots: Descriptor[],
  inventory: Inventory,
  sign: CreateOptions["sign"],
  tools: CarriedFile[],
): BundleFile[] {
  const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: roots };
  const small: { path: string; bytes: Buffer }[] = [
    { path: INVENTORY_FILE, bytes: Buffer.from(`${JSON.stringify(inventory, null, 2)}\n`) },
    { path: "oci-layout", bytes: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
    { path: "index.json", bytes: Buffer.from(`${JSON.stringify(index, null, 2)}\n`) },
  ];
  const sums = Buffer.from(
    formatChecksums([
      ...small.map((f) => ({ path: f.path, sha256: sha256Hex(f.bytes) })),
      ...blobs.map((d) => ({ path: `blobs/sha256/${digestHex(d.digest)}`, sha256: digestHex(d.digest) })),
      ...tools.map((t) => ({ path: t.path, sha256: t.sha256 })),
    ]),
  );
  const head: BundleFile[] = [];
  if (sign) {
    const { sigBase64, sigstoreBundleJson } = sign(sums);
    const [sigFile, bundleFile] = SIGNATURE_FILES as [string, string];
    head.push({
      path: sigFile,
      size: Buffer.byteLength(sigBase64),
      source: { bytes: Buffer.from(sigBase64) },
    });
    head.push({
      path: bundleFile,
      size: Buffer.byteLength(sigstoreBundleJson),
      source: { bytes: Buffer.from(sigstoreBundleJson) },
    });
  }
  head.push({ path: CHECKSUMS_FILE, size: sums.length, source: { bytes: sums } });
  for (const f of small) head.push({ path: f.path, size: f.bytes.length, source: { bytes: f.bytes } });
  for (const d of blobs) {
    head.push({
      path: `blobs/sha256/${digestHex(d.digest)}`,
      size: d.size,
      source: { file: cache.blobPath(d.digest) },
    });
  }
  // after the blobs: the canonical order, and a one-pass import has planned everything by then
  for (const t of tools) head.push({ path: t.path, size: t.bytes.length, source: { bytes: t.bytes } });
  if (blobs.length === 0)
    throw new AirgapError("nothing to write: the bundle would hold no content", "EMPTY");
  return head;
}
