import { Readable } from "node:stream";
import { finished } from "node:stream/promises";
import pLimit from "p-limit";
import { blobHexOf } from "../bundle/archive/paths.js";
import { type BundleReader, openBundle } from "../bundle/archive/reader.js";
import { INVENTORY_FILE, type Inventory, type InventoryItem, parseInventory } from "../bundle/inventory.js";
import { METADATA_MAX_BYTES } from "../bundle/limits.js";
import {
  type BundleHead,
  headReport,
  readBundleHead,
  SequentialVerifier,
  type VerifyProblem,
  type VerifyReport,
  verifyBundle,
} from "../bundle/verify.js";
import type { RegistryConfig } from "../config/types.js";
import { AirgapError, type IntegrityCode, IntegrityError, UsageError } from "../errors.js";
import type { Descriptor, ImageIndex } from "../oci/descriptor.js";
import { sha256Hex } from "../oci/digest.js";
import { isIndex, MAX_MANIFEST_BYTES } from "../oci/mediatypes.js";
import { formatReference, parseReference, type Reference } from "../oci/reference.js";
import { RegistryClient } from "../oci/registry/client.js";
import type { ArtifactRepositoryOptions } from "../store/artifacts.js";
import { BundleArchive, namedRoots, parseIndexJson, referrerRoots } from "../store/bundle.js";
import { type CopyEvent, type CopyResult, copyGraph, isTransient } from "../store/copy.js";
import { registryRepository } from "../store/registry.js";
import { readBounded, withProgress } from "../store/streams.js";
import { findCollisions, type Mapping, mapReference } from "../targets/mapping.js";
import { locateBaseContent, placeLeftOutChildren, withBaseContent } from "./delta.js";
import { type ManifestKind, manifestKinds, preflight, preflightTargets } from "./preflight.js";
import type { Progress } from "./progress.js";
import type {
  publishArtifactItems as PublishArtifactItems,
  PublishedArtifacts,
  PublishedChart,
  PublishedFile,
  PublishedGem,
  PublishedProfile,
} from "./publish-artifacts.js";
import { type ShardSelection, type ShardSpec, selectShard } from "./shard.js";
import { TOOLS_DIR } from "./tools.js";

export interface ImportOptions {
  input: string;
  publicKeyPem?: string;
  requireSignature?: boolean;
  registry: string;
  prefix: string;
  keepSourceRegistry?: boolean;
  flatten?: boolean;
  /** Create what the target lacks where the registry has an API for it (Harbor projects). */
  createRepositories?: boolean;
  mappings?: Mapping[];
  /** TLS settings per host (the target's included). */
  registries?: RegistryConfig[];
  caFiles?: string[];
  concurrency?: number;
  dryRun?: boolean;
  /** Artifact repository for profiles: s3://BUCKET/PREFIX or http(s)://HOST/PATH/. */
  artifacts?: string;
  artifactOptions?: ArtifactRepositoryOptions;
  progress: Progress;
  signal?: AbortSignal;
  /** Hash the whole bundle before pushing anything (a file or directory; a pipe is always one pass). */
  verifyAll?: boolean;
  /**
   * Push only worker `index` of `count`'s part of the items (see shard.ts); the cluster
   * configuration still covers every item. Absent: everything, as `{ index: 0, count: 1 }`.
   */
  shard?: ShardSpec;
}

/** What one worker of a sharded import pushed: its items, by name. */
export interface ShardReport extends ShardSpec {
  items: string[];
  /** Estimated cost of its items, in bytes (bytes plus a per-blob cost; see shard.ts). */
  cost: number;
}

export interface PlannedImage {
  source: string;
  target: string;
  digest: string;
  mediaType: string;
  /** Source repository (bundle) and target reference. */
  sourceRepository: string;
  targetRef: Reference;
  descriptor: Descriptor;
  tagged: boolean;
  exists?: boolean;
}

export type { PublishedChart, PublishedFile, PublishedGem, PublishedProfile } from "./publish-artifacts.js";

export interface ImportResult {
  verify: VerifyReport;
  /**
   * Verification and pushes were interleaved (the default; a pipe or compressed tar always):
   * on a failure, verified blobs that landed before it may remain, untagged, with no root manifest.
   */
  onePass?: boolean;
  inventory?: Inventory;
  /** Every root of the bundle and where it goes (with --shard too: the cluster configuration needs all). */
  images: PlannedImage[];
  referrers: number;
  /** With --shard: which part this run pushed. */
  shard?: ShardReport;
  profiles?: PublishedProfile[];
  files?: PublishedFile[];
  gems?: PublishedGem[];
  charts?: PublishedChart[];
  stats: {
    blobsUploaded: number;
    blobsMounted: number;
    blobsSkipped: number;
    manifestsPushed: number;
    bytesUploaded: number;
    seconds: number;
    /**
     * Registry requests and blob copies tried again after a failure (a cut connection, 5xx, 429);
     * `uploadsRestarted` of them began a blob's upload again from its first byte.
     */
    retries: number;
    uploadsRestarted: number;
    /** Blobs opened and bytes read from a file or directory bundle (not from a pipe). */
    bundleBlobsRead?: number;
    bundleBytesRead?: number;
  };
}

/**
 * `bundle import`, in one pass over what it pushes. The head first: signature, SHA256SUMS, and
 * index.json / bundle.json against it. Then every root's graph is copied with each blob verified
 * against its digest (its SHA256SUMS entry) while it uploads; blobs the target holds are not read.
 * Root manifests and tags go last, after every copy has landed, so a tampered bundle leaves no
 * root or tag behind. `verifyAll` hashes the whole bundle before anything is pushed, as a separate
 * pass. A bundle that arrives on a pipe (or compressed) is verified and pushed in one sequential
 * pass (see streamingImport).
 */
export async function importBundle(opts: ImportOptions): Promise<ImportResult> {
  const started = Date.now();
  const { progress, signal } = opts;
  // an s3:// bundle is read with the artifact repository's endpoint, credentials and TLS
  const reader = await openBundle(opts.input, opts.artifactOptions ? { s3: opts.artifactOptions } : {});
  try {
    progress.phase("verifying", 0);
    if (!reader.seekable) return await streamingImport(reader, opts, started);
    const head = await readBundleHead(reader, opts);
    // What the head's check itself hashed: index.json and bundle.json (SHA256SUMS and signatures are
    // judged by readBundleHead).
    const checked = { files: 0, blobs: 0, bytes: 0 };
    const failed = (problems: VerifyProblem[] = [], pushing = false): ImportResult => ({
      verify: headReport(head, checked, problems),
      onePass: pushing,
      images: [],
      referrers: 0,
      stats: emptyStats(started),
    });
    if (!head.complete || head.problems.length > 0) return failed();
    const blobNames = blobNameProblems(head);
    if (blobNames.length > 0) return failed(blobNames);

    let fullReport: VerifyReport | undefined;
    if (opts.verifyAll) {
      let verified = 0;
      fullReport = await verifyBundle(reader, {
        publicKeyPem: opts.publicKeyPem,
        requireSignature: opts.requireSignature,
        concurrency: opts.concurrency,
        signal,
        // verify reports bytes hashed so far (and the total); progress counts increments
        onProgress: (e) => {
          if (e.totalBytes !== undefined) progress.expect(e.totalBytes);
          progress.bytes(e.path, e.bytes - verified);
          verified = e.bytes;
        },
      });
      if (!fullReport.ok) {
        return { verify: fullReport, images: [], referrers: 0, stats: emptyStats(started) };
      }
    }

    let index: ImageIndex;
    let inventory: Inventory;
    try {
      ({ index, inventory } = await readVerifiedHead(reader, opts, head.sums, checked));
    } catch (err) {
      if (err instanceof IntegrityError) return failed([problemOf(err)]);
      throw err;
    }
    const dangling = danglingRootProblems(index, head);
    if (dangling.length > 0) return failed(dangling);
    // Without the full pass, every blob read from the bundle is hashed while it streams.
    const archive = new BundleArchive(reader, index, opts.input, Boolean(opts.verifyAll));
    const planned = planTargets(index, opts);
    const selection = selectShard(inventory.items, index, opts.shard ?? { index: 0, count: 1 });
    // Below, what this worker pushes; the result still lists every root (planned.images).
    const { images, referrerRoots } = ownPart(planned, selection);

    const client = new RegistryClient({ hosts: opts.registries, caFiles: opts.caFiles, signal });
    const limit = pLimit(opts.concurrency ?? 8);
    const stats = { blobsSkipped: 0, manifestsPushed: 0, uploadsRestarted: 0 };
    try {
      const base = await locateBaseContent(
        ownInventory(inventory, selection),
        mappingOf(opts),
        client,
        limit,
        signal,
      );
      if (opts.dryRun) {
        await checkTargets(client, images, referrerRoots, limit, opts);
        await Promise.all(
          images.map(async (img) => {
            const dst = registryRepository(client, img.targetRef.registry, img.targetRef.repository);
            img.exists = await limit(() => dst.exists(img.descriptor, signal));
          }),
        );
        return {
          verify: fullReport ?? headReport(head, checked),
          inventory,
          images,
          referrers: referrerRoots.length,
          ...shardReport(opts, selection),
          stats: { ...emptyStats(started) },
        };
      }

      // A blob the registry refused in one upload form, or lost behind a lying HEAD, is read again.
      const source = (from: string) => withBaseContent(archive.repository(from), base);
      const pushTarget = (to: Reference, from?: string) =>
        registryRepository(client, to.registry, to.repository, {
          refill: (d) => (from ? source(from) : archive).fetch(d),
        });
      // Kinds of manifest are judged for what will be pushed: roots the target holds are not read.
      await checkTargets(
        client,
        images,
        referrerRoots,
        limit,
        opts,
        async (d, to) => {
          if (!(await archive.has(d))) return undefined;
          // a repository that refuses even the question is judged by the pre-flight itself
          const held = to ? await limit(() => pushTarget(to).exists(d, signal)).catch(() => false) : false;
          signal?.throwIfAborted();
          if (held) return undefined;
          return await archive.readManifest(d);
        },
        async (d, to, tag) => {
          // A root the target holds, under the tag it should have: nothing to write there (a re-run).
          const dst = pushTarget(to);
          const held = await limit(() => dst.exists(d, signal)).catch(() => false);
          return (
            held &&
            (tag === undefined || (await limit(() => dst.tagNames(tag, d.digest, signal)).catch(() => false)))
          );
        },
      );
      progress.phase("pushing", expectedBytes(inventory, selection, opts));
      const inflightByRepo = new Map<string, Map<string, Promise<void>>>();
      const inflightFor = (ref: Reference) => {
        const key = `${ref.registry}/${ref.repository}`;
        const m = inflightByRepo.get(key) ?? new Map<string, Promise<void>>();
        inflightByRepo.set(key, m);
        return m;
      };
      // A root the target holds stands for its whole item: those bytes need not move.
      const itemBytes = new Map(inventory.items.map((i) => [i.digest, i.size]));
      const onEvent = (e: CopyEvent) => {
        if (e.type === "bytes") progress.bytes("push", e.bytes);
        else if (e.type === "retry") stats.uploadsRestarted++;
        else if (e.type === "skip") {
          stats.blobsSkipped++;
          progress.skipped("push", itemBytes.get(e.desc.digest) ?? e.desc.size);
        } else if (e.type === "done" && e.desc.mediaType.includes("manifest")) stats.manifestsPushed++;
      };
      const copies = [
        ...images.map((img) => ({ from: img.sourceRepository, to: img.targetRef, root: img.descriptor })),
        ...referrerRoots.map((r) => ({
          from: r.repository,
          to: r.targetRef,
          root: { mediaType: r.descriptor.mediaType, digest: r.descriptor.digest, size: r.descriptor.size },
        })),
      ];
      // Everything below the roots, all copies at once; the first failure stops the others.
      const stop = new AbortController();
      const copySignal = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
      const settled = await Promise.allSettled(
        copies.map(({ from, to, root }) =>
          copyGraph(source(from), pushTarget(to, from), root, {
            limit,
            signal: copySignal,
            inflight: inflightFor(to),
            onEvent,
            holdRoot: true,
            presentRootIsComplete: true,
          }).catch((err: unknown) => {
            stop.abort(err);
            throw err;
          }),
        ),
      );
      signal?.throwIfAborted();
      const integrity = settled.flatMap((r) =>
        r.status === "rejected" && r.reason instanceof IntegrityError ? [problemOf(r.reason)] : [],
      );
      if (integrity.length > 0) {
        checked.blobs += archive.read.blobs;
        checked.bytes += archive.read.bytes;
        return failed(integrity, true);
      }
      const other = settled.find((r) => r.status === "rejected");
      if (other) throw (other as PromiseRejectedResult).reason;

      // Every blob landed: roots (images before referrers, whose subjects they name; manifests
      // before indexes, which may name them), then tags.
      const held = settled
        .map((r, i) => ({
          ...copies[i]!,
          bytes: (r as PromiseFulfilledResult<CopyResult>).value.heldRoot,
          i,
        }))
        .filter((h): h is typeof h & { bytes: Buffer } => h.bytes !== undefined)
        .sort(
          (a, b) =>
            Number(a.i >= images.length) - Number(b.i >= images.length) ||
            Number(isIndex(a.root.mediaType)) - Number(isIndex(b.root.mediaType)) ||
            a.i - b.i,
        );
      for (const { to, root, bytes } of held) {
        await limit(() => pushTarget(to).push(root, Readable.from([bytes]), signal));
        progress.bytes("push", bytes.length);
        stats.manifestsPushed++;
      }
      await Promise.all(
        images
          .filter((img) => img.tagged && img.targetRef.tag)
          .map((img) =>
            limit(() =>
              registryRepository(client, img.targetRef.registry, img.targetRef.repository).tag(
                img.descriptor,
                img.targetRef.tag!,
                signal,
              ),
            ),
          ),
      );
      for (const img of images) progress.itemDone(img.target);
      // An incremental bundle may leave a blob out: the target registry holds it then (checked above).
      const published = await publishArtifacts(
        inventory,
        planned.images,
        opts,
        async (d, item) =>
          (await archive.has(d))
            ? await archive.fetch(d)
            : await targetStore(client, item, opts).fetch(d, signal),
        selection.ownsItem,
      );
      checked.blobs += archive.read.blobs;
      checked.bytes += archive.read.bytes;
      return {
        verify: fullReport ?? headReport(head, checked),
        onePass: !opts.verifyAll,
        inventory,
        images: planned.images,
        referrers: planned.referrerRoots.length,
        ...shardReport(opts, selection),
        ...published,
        stats: {
          ...importStats(client, stats, started),
          bundleBlobsRead: archive.read.blobs,
          bundleBytesRead: archive.read.bytes,
        },
      };
    } finally {
      await client.close();
    }
  } finally {
    await reader.close();
  }
}

/** The roots this worker pushes: all of them without --shard. */
function ownPart(planned: ReturnType<typeof planTargets>, selection: ShardSelection) {
  return {
    images: planned.images.filter((i) => selection.ownsNamedRoot(i.source, i.digest)),
    referrerRoots: planned.referrerRoots.filter((r) =>
      selection.ownsReferrer(r.repository, r.descriptor.digest),
    ),
  };
}

/** The inventory cut down to this worker's items (for checks that concern what it pushes). */
function ownInventory(inventory: Inventory, selection: ShardSelection): Inventory {
  return { ...inventory, items: inventory.items.filter((i) => selection.ownsItem(i.name)) };
}

/** Bytes the progress display expects: the bundle's, or this worker's items'. */
function expectedBytes(inventory: Inventory, selection: ShardSelection, opts: ImportOptions): number {
  if (!opts.shard) return inventory.totals.bytes;
  return inventory.items.filter((i) => selection.ownsItem(i.name)).reduce((n, i) => n + i.size, 0);
}

function shardReport(opts: ImportOptions, selection: ShardSelection): { shard?: ShardReport } {
  if (!opts.shard) return {};
  return { shard: { ...opts.shard, items: selection.items, cost: selection.cost } };
}

/** A verification failure as a report problem, named by its file in the bundle. */
function problemOf(err: IntegrityError): VerifyProblem {
  const item = err.item?.startsWith("sha256:") ? `blobs/sha256/${err.item.slice(7)}` : (err.item ?? "bundle");
  return { code: err.code as IntegrityCode, item, message: err.message };
}

/**
 * Every root index.json names must be in the bundle, at the size it says: a bundle whose index
 * points at nothing is malformed, even where import would push none of those roots.
 */
function danglingRootProblems(index: ImageIndex, head: BundleHead): VerifyProblem[] {
  const problems: VerifyProblem[] = [];
  for (const d of index.manifests ?? []) {
    const path = `blobs/sha256/${d.digest.slice("sha256:".length)}`;
    const size = head.present.get(path);
    if (size === undefined) {
      problems.push({
        code: "DANGLING_REFERENCE",
        item: "index.json",
        message: `index.json refers to ${d.digest}, which is not in the bundle`,
      });
    } else if (size !== d.size) {
      problems.push({
        code: "SIZE_MISMATCH",
        item: path,
        message: `index.json says ${path} is ${d.size} bytes, but it is ${size}`,
      });
    }
    if (problems.length >= 20) break;
  }
  return problems;
}

/** A blob's file name is its digest: SHA256SUMS must list that very digest for it. */
function blobNameProblems(head: BundleHead): VerifyProblem[] {
  const problems: VerifyProblem[] = [];
  for (const { path, expected } of head.toHash) {
    if (!path.startsWith("blobs/")) continue;
    const hex = blobHexOf(path);
    if (hex === undefined) {
      problems.push({
        code: "MALFORMED",
        item: path,
        message: `${path} is not named blobs/sha256/<64 hex digits>`,
      });
    } else if (hex !== expected) {
      problems.push({
        code: "DIGEST_MISMATCH",
        item: path,
        message: `SHA256SUMS lists ${path} with sha256 ${expected.slice(0, 12)}…, not the digest its name gives`,
      });
    }
  }
  return problems;
}

/**
 * index.json and bundle.json as used for the import, hashed against SHA256SUMS (whose signature the
 * head check judged) at the moment they are read, so what is parsed is what was checked.
 */
async function readVerifiedHead(
  reader: BundleReader,
  opts: ImportOptions,
  sums: Map<string, string>,
  checked: { files: number; bytes: number },
): Promise<{ index: ImageIndex; inventory: Inventory }> {
  const read = async (path: string, max: number) => {
    const bytes = await reader.readSmall(path, max);
    if (sha256Hex(bytes) !== sums.get(path)) {
      throw new IntegrityError(
        "CHECKSUM_MISMATCH",
        `${path}: content does not match its SHA256SUMS entry`,
        path,
      );
    }
    checked.files++;
    checked.bytes += bytes.length;
    return bytes;
  };
  return {
    index: parseIndexJson(await read("index.json", METADATA_MAX_BYTES), opts.input),
    inventory: parseInventory(await read(INVENTORY_FILE, METADATA_MAX_BYTES)),
  };
}

/** Where every root of the bundle goes; refuses a mapping that sends different content to one tag. */
function planTargets(index: ImageIndex, opts: ImportOptions) {
  const mapping = mappingOf(opts);
  const images: PlannedImage[] = namedRoots(index).map(({ name, descriptor }) => {
    const source = parseReference(name);
    const targetRef = mapReference(source, mapping);
    return {
      source: name,
      target: formatReference(targetRef),
      digest: descriptor.digest,
      mediaType: descriptor.mediaType,
      sourceRepository: `${source.registry}/${source.repository}`,
      targetRef,
      descriptor: { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size },
      tagged: source.tag !== undefined,
    };
  });
  const referrers = referrerRoots(index).map((r) => {
    const source = parseReference(r.repository);
    return {
      ...r,
      targetRef: mapReference({ registry: source.registry, repository: source.repository }, mapping),
    };
  });
  const collisions = findCollisions(
    images.map((i) => ({ source: i.source, target: i.target, digest: i.digest })),
  );
  if (collisions.length > 0) {
    throw new UsageError("the mapping sends different content to the same target:", { details: collisions });
  }
  return { images, referrerRoots: referrers };
}

/**
 * Pre-flight (pipeline/preflight.ts): before the first push, every target repository and every
 * kind of manifest is checked against the registry, and all problems are reported at once.
 * `readManifest` (absent for a pipe) gives a root's manifest bytes, undefined when the bundle
 * leaves it out.
 *
 * A dry run checks the repositories only (an upload session started and cancelled, no content) and
 * creates nothing: the manifest-kind probe PUTs a manifest, which a conforming registry refuses
 * (its blob is absent) but a lax one might store, and a dry run promises to write nothing.
 */
async function checkTargets(
  client: RegistryClient,
  images: PlannedImage[],
  referrers: { repository: string; targetRef: Reference; descriptor: Descriptor }[],
  limit: ReturnType<typeof pLimit>,
  opts: ImportOptions,
  readManifest?: (d: Descriptor, to?: Reference) => Promise<Buffer | undefined>,
  complete?: (d: Descriptor, to: Reference, tag?: string) => Promise<boolean>,
): Promise<void> {
  const roots = [
    ...images.map((i) => ({
      item: i.source,
      to: i.targetRef,
      desc: i.descriptor,
      tag: i.tagged ? i.targetRef.tag : undefined,
    })),
    ...referrers.map((r) => ({
      item: `referrer ${r.descriptor.digest} of ${r.repository}`,
      to: r.targetRef,
      desc: r.descriptor,
      tag: undefined,
    })),
  ];
  let kinds: ManifestKind[] = [];
  if (readManifest && !opts.dryRun) {
    const read = await Promise.all(
      roots.map(async (r) => ({ ...r, bytes: await readManifest(r.desc, r.to) })),
    );
    const present = read.filter((r): r is typeof r & { bytes: Buffer } => r.bytes !== undefined);
    const cache = new Map(present.map((p) => [p.desc.digest, p.bytes]));
    kinds = await manifestKinds(present, async (d) => cache.get(d.digest) ?? (await readManifest(d)));
  }
  // A repository this run will not write to (every root there held and tagged) is not probed.
  const writes = complete
    ? (await Promise.all(roots.map(async (r) => ((await complete(r.desc, r.to, r.tag)) ? [] : [r])))).flat()
    : roots;
  await preflight(client, preflightTargets(writes), kinds, limit, {
    createRepositories: Boolean(opts.createRepositories) && !opts.dryRun,
    signal: opts.signal,
  });
}

const ARTIFACT_KINDS = new Set(["profile", "file", "gem", "chart"]);

/**
 * Profiles, files, gems and charts are published to the artifact repository; the code that does it
 * (charts, gems, profiles, their version rules) loads only for a bundle that carries some.
 */
async function publishArtifacts(
  ...args: Parameters<typeof PublishArtifactItems>
): Promise<PublishedArtifacts> {
  if (!args[0].items.some((i) => ARTIFACT_KINDS.has(i.kind)))
    return { profiles: [], files: [], gems: [], charts: [] };
  return (await import("./publish-artifacts.js")).publishArtifactItems(...args);
}

function importStats(
  client: RegistryClient,
  own: { blobsSkipped: number; manifestsPushed: number; uploadsRestarted: number },
  started: number,
): ImportResult["stats"] {
  return {
    blobsUploaded: client.stats.blobsUploaded,
    blobsMounted: client.stats.blobsMounted,
    bytesUploaded: client.stats.bytesUploaded,
    blobsSkipped: own.blobsSkipped,
    manifestsPushed: own.manifestsPushed,
    seconds: (Date.now() - started) / 1000,
    retries: client.stats.retries + own.uploadsRestarted,
    uploadsRestarted: own.uploadsRestarted,
  };
}

function emptyStats(started: number): ImportResult["stats"] {
  return {
    blobsUploaded: 0,
    blobsMounted: 0,
    blobsSkipped: 0,
    manifestsPushed: 0,
    bytesUploaded: 0,
    seconds: (Date.now() - started) / 1000,
    retries: 0,
    uploadsRestarted: 0,
  };
}

/**
 * One sequential pass over a bundle from a pipe: the signature and checksum list come first and are
 * checked before anything else is read; each blob is verified while it streams into the registry
 * (a blob that fails never completes its upload); child manifests are pushed once their children
 * have landed; root manifests and tags only after the whole bundle verified, so a tampered bundle
 * never leaves a tag behind.
 */
async function streamingImport(
  reader: BundleReader,
  opts: ImportOptions,
  started: number,
): Promise<ImportResult> {
  const { signal, progress } = opts;
  const verifier = new SequentialVerifier({
    publicKeyPem: opts.publicKeyPem,
    requireSignature: opts.requireSignature,
    signal,
  });
  const head = new Map<string, Buffer>();
  let plan:
    | {
        index: ImageIndex;
        inventory: Inventory;
        /** Every root; `own` is the part this worker pushes. */
        images: PlannedImage[];
        referrers: ReturnType<typeof planTargets>["referrerRoots"];
        own: ReturnType<typeof ownPart>;
        selection: ShardSelection;
        /** blob digest → target repositories that need it */
        blobTargets: Map<string, Reference[]>;
        manifestTypes: Map<string, string>;
        roots: Set<string>;
      }
    | undefined;
  const client = new RegistryClient({ hosts: opts.registries, caFiles: opts.caFiles, signal });
  const deferredRoots = new Map<string, Buffer>();
  const stats = { blobsSkipped: 0, manifestsPushed: 0, uploadsRestarted: 0 };
  const storeFor = (ref: Reference) => registryRepository(client, ref.registry, ref.repository);
  let base: Awaited<ReturnType<typeof locateBaseContent>>;
  const baseCopies = new Map<string, Map<string, Promise<void>>>();
  // Left-out blobs a manifest names go to its repository first (mounted, or copied inside the target).
  const placeBase = (bytes: Buffer, desc: Descriptor, to: Reference) => {
    const key = `${to.registry}/${to.repository}`;
    const inflight = baseCopies.get(key) ?? new Map<string, Promise<void>>();
    baseCopies.set(key, inflight);
    return placeLeftOutChildren(base, bytes, desc, storeFor(to), {
      signal,
      inflight,
      onEvent: (e) => {
        if (e.type === "retry") stats.uploadsRestarted++;
      },
    });
  };
  try {
    try {
      for await (const entry of reader.entries(signal)) {
        const verified = verifier.accept(entry);
        if (entry.path.startsWith(`${TOOLS_DIR}/`)) {
          // carried for the isolated side (tools/airgap-VERSION.mjs): verified, not imported
          verified.resume();
          await finished(verified);
          continue;
        }
        if (!entry.path.startsWith("blobs/")) {
          const max =
            entry.path === INVENTORY_FILE || entry.path === "index.json"
              ? METADATA_MAX_BYTES
              : MAX_MANIFEST_BYTES;
          head.set(entry.path, await readBounded(verified, max, entry.path));
          if (!plan && head.has("index.json") && head.has(INVENTORY_FILE)) {
            plan = planStreaming(head, opts);
            base = await locateBaseContent(
              ownInventory(plan.inventory, plan.selection),
              mappingOf(opts),
              client,
              pLimit(opts.concurrency ?? 8),
              signal,
            );
            // from a pipe the manifests are not read yet: repositories only
            await checkTargets(
              client,
              plan.own.images,
              plan.own.referrerRoots,
              pLimit(opts.concurrency ?? 8),
              opts,
            );
            if (opts.dryRun) break;
            progress.phase("pushing", expectedBytes(plan.inventory, plan.selection, opts));
          }
          continue;
        }
        if (!plan) {
          throw new IntegrityError(
            "MALFORMED",
            `${entry.path} comes before index.json and bundle.json`,
            entry.path,
          );
        }
        const digest = `sha256:${entry.path.slice("blobs/sha256/".length)}`;
        const targets = plan.blobTargets.get(digest) ?? [];
        const mediaType = plan.manifestTypes.get(digest);
        const desc: Descriptor = {
          mediaType: mediaType ?? "application/octet-stream",
          digest,
          size: entry.size,
        };
        if (mediaType) {
          const bytes = await readBounded(verified, MAX_MANIFEST_BYTES, entry.path);
          if (plan.roots.has(digest)) {
            deferredRoots.set(digest, bytes);
            continue;
          }
          for (const t of targets) {
            const dst = storeFor(t);
            if (await dst.exists(desc, signal)) {
              stats.blobsSkipped++;
              progress.skipped(entry.path, bytes.length);
            } else {
              await placeBase(bytes, desc, t);
              await dst.push(desc, Readable.from([bytes]), signal);
              progress.bytes(entry.path, bytes.length);
              stats.manifestsPushed++;
            }
          }
          continue;
        }
        if (targets.length === 0) {
          // Not part of any item: still verified (and reported unlisted or not by the verifier).
          verified.resume();
          await finished(verified);
          continue;
        }
        const [first, ...rest] = targets as [Reference, ...Reference[]];
        if (await storeFor(first).exists(desc, signal)) {
          // Already there: the entry is still read to the end, so it is verified like every other.
          stats.blobsSkipped++;
          progress.skipped(entry.path, entry.size);
          verified.resume();
          await finished(verified);
        } else {
          const counted = withProgress(verified, desc, (n) => progress.bytes(entry.path, n));
          try {
            await storeFor(first).push(desc, counted, signal);
          } catch (err) {
            if (!isTransient(err) || signal?.aborted) throw err;
            throw new AirgapError(
              `uploading ${desc.digest} to ${first.registry}/${first.repository} failed (${(err as Error).message}); a bundle read from a pipe cannot be read again to retry it: import from the bundle file or directory instead (a rerun skips what already landed)`,
              "UPLOAD_FAILED",
              { cause: err },
            );
          }
          if (!verified.readableEnded) {
            // The registry took it without reading it all (a mount): read the rest to verify it.
            verified.unpipe();
            verified.resume();
            await finished(verified);
          }
        }
        for (const t of rest) await storeFor(t).push(desc, cannotReread(desc), signal);
      }
    } catch (err) {
      if (err instanceof IntegrityError) {
        const report = verifier.finish();
        report.ok = false;
        if (!report.problems.some((p) => p.item === (err.item ?? opts.input))) {
          report.problems.push({
            code: err.code as IntegrityCode,
            item: err.item ?? opts.input,
            message: err.message,
          });
        }
        return {
          verify: report,
          onePass: true,
          images: plan?.images ?? [],
          referrers: 0,
          stats: emptyStats(started),
        };
      }
      throw err;
    }
    if (!plan)
      throw new IntegrityError("MALFORMED", `${opts.input} holds no index.json or bundle.json`, opts.input);
    if (opts.dryRun) {
      for (const img of plan.own.images)
        img.exists = await storeFor(img.targetRef).exists(img.descriptor, signal);
      return {
        verify: verifier.finish(),
        inventory: plan.inventory,
        images: plan.own.images,
        referrers: plan.own.referrerRoots.length,
        ...shardReport(opts, plan.selection),
        stats: emptyStats(started),
      };
    }
    const report = verifier.finish();
    if (!report.ok) {
      return {
        verify: report,
        onePass: true,
        images: plan.images,
        referrers: 0,
        stats: emptyStats(started),
      };
    }

    // Everything verified: roots (images before referrers, whose subjects they name), then tags.
    const pushRoot = async (to: Reference, d: Descriptor) => {
      const bytes = deferredRoots.get(d.digest);
      if (!bytes) throw new IntegrityError("MISSING_FILE", `root ${d.digest} is not in the bundle`, d.digest);
      const dst = storeFor(to);
      if (await dst.exists(d, signal)) {
        progress.skipped(d.digest, bytes.length);
        return;
      }
      await placeBase(bytes, d, to);
      await dst.push(d, Readable.from([bytes]), signal);
      progress.bytes(d.digest, bytes.length);
      stats.manifestsPushed++;
    };
    for (const img of plan.own.images) await pushRoot(img.targetRef, img.descriptor);
    for (const r of plan.own.referrerRoots) {
      const to = r.targetRef;
      await pushRoot(to, {
        mediaType: r.descriptor.mediaType,
        digest: r.descriptor.digest,
        size: r.descriptor.size,
      });
    }
    for (const img of plan.own.images) {
      if (img.tagged && img.targetRef.tag)
        await storeFor(img.targetRef).tag(img.descriptor, img.targetRef.tag, signal);
      progress.itemDone(img.target);
    }
    // The pipe is spent: artifacts are read back (verified) from the registry they just landed in.
    const published = await publishArtifacts(
      plan.inventory,
      plan.images,
      opts,
      (d, item) => targetStore(client, item, opts).fetch(d, signal),
      plan.selection.ownsItem,
    );
    return {
      verify: report,
      inventory: plan.inventory,
      images: plan.images,
      referrers: plan.referrers.length,
      ...shardReport(opts, plan.selection),
      ...published,
      stats: importStats(client, stats, started),
    };
  } finally {
    await client.close();
  }
}

/** The target repository an item was pushed to. */
function targetStore(client: RegistryClient, item: InventoryItem, opts: ImportOptions) {
  const to = mapReference(parseReference(item.name), mappingOf(opts));
  return registryRepository(client, to.registry, to.repository);
}

function mappingOf(opts: ImportOptions) {
  return {
    registry: opts.registry,
    prefix: opts.prefix,
    keepSourceRegistry: opts.keepSourceRegistry,
    flatten: opts.flatten,
    mappings: opts.mappings,
  };
}

/**
 * From the head files of a streamed bundle: targets, which blobs each repository needs (of this
 * worker's items: the others' are verified as they pass, not pushed), media types.
 */
function planStreaming(head: Map<string, Buffer>, opts: ImportOptions) {
  const index = parseIndexJson(head.get("index.json")!, opts.input);
  const inventory = parseInventory(head.get(INVENTORY_FILE)!);
  const planned = planTargets(index, opts);
  const selection = selectShard(inventory.items, index, opts.shard ?? { index: 0, count: 1 });
  const own = ownPart(planned, selection);
  const mapping = mappingOf(opts);
  const blobTargets = new Map<string, Reference[]>();
  const manifestTypes = new Map<string, string>();
  for (const item of inventory.items) {
    for (const m of item.manifests ?? []) manifestTypes.set(m.digest, m.mediaType);
    if (!selection.ownsItem(item.name)) continue;
    const source = parseReference(item.name);
    const to = mapReference({ registry: source.registry, repository: source.repository }, mapping);
    for (const digest of item.blobs) {
      const list = blobTargets.get(digest) ?? [];
      if (!list.some((r) => r.registry === to.registry && r.repository === to.repository)) list.push(to);
      blobTargets.set(digest, list);
    }
  }
  for (const m of index.manifests) manifestTypes.set(m.digest, m.mediaType);
  const roots = new Set(index.manifests.map((m) => m.digest));
  return {
    index,
    inventory,
    images: planned.images,
    referrers: planned.referrerRoots,
    own,
    selection,
    blobTargets,
    manifestTypes,
    roots,
  };
}

/** The body for a second repository of a blob read from a pipe: only a cross-repository mount can serve it. */
function cannotReread(desc: Descriptor): Readable {
  return new Readable({
    read() {
      this.destroy(
        new AirgapError(
          `${desc.digest} is needed in several repositories and the registry refused a cross-repository mount; import from a file or directory instead of a pipe`,
          "MOUNT_REFUSED",
        ),
      );
    },
  });
}
