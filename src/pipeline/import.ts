import { Readable } from "node:stream";
import { finished } from "node:stream/promises";
import pLimit from "p-limit";
import { type BundleReader, openBundle } from "../bundle/archive/reader.js";
import { CHECKSUMS_FILE, parseChecksums, SIGNATURE_FILES } from "../bundle/checksums.js";
import { INVENTORY_FILE, type Inventory, type InventoryItem, parseInventory } from "../bundle/inventory.js";
import { loadPublicKey } from "../bundle/keys.js";
import { METADATA_MAX_BYTES } from "../bundle/limits.js";
import { verifyChecksumsSignature } from "../bundle/signing.js";
import { SequentialVerifier, type VerifyReport, verifyBundle } from "../bundle/verify.js";
import type { RegistryConfig } from "../config/types.js";
import { AirgapError, type IntegrityCode, IntegrityError, UsageError } from "../errors.js";
import type { Descriptor, ImageIndex } from "../oci/descriptor.js";
import { sha256Hex } from "../oci/digest.js";
import { MAX_MANIFEST_BYTES } from "../oci/mediatypes.js";
import { formatReference, parseReference, type Reference } from "../oci/reference.js";
import { RegistryClient } from "../oci/registry/client.js";
import type { ArtifactRepositoryOptions } from "../store/artifacts.js";
import { BundleArchive, namedRoots, parseIndexJson, referrerRoots } from "../store/bundle.js";
import { type CopyEvent, copyGraph } from "../store/copy.js";
import { registryRepository } from "../store/registry.js";
import { readBounded, withProgress } from "../store/streams.js";
import { findCollisions, type Mapping, mapReference } from "../targets/mapping.js";
import type { Progress } from "./progress.js";
import {
  type PublishedChart,
  type PublishedFile,
  type PublishedGem,
  type PublishedProfile,
  publishArtifactItems,
} from "./publish-artifacts.js";
import { TOOLS_DIR } from "./tools.js";

export interface ImportOptions {
  input: string;
  publicKeyPem?: string;
  requireSignature?: boolean;
  registry: string;
  prefix: string;
  keepSourceRegistry?: boolean;
  flatten?: boolean;
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
  /** Imported in one pass from a pipe or compressed tar (verification and pushes interleaved). */
  streamed?: boolean;
  inventory?: Inventory;
  images: PlannedImage[];
  referrers: number;
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
  };
}

/**
 * `bundle import`: verify the whole bundle first, then push every root through copyGraph with its
 * digest unchanged, tags last. A bundle that arrives on a pipe (or compressed) is verified and
 * pushed in one sequential pass (see streamingImport).
 */
export async function importBundle(opts: ImportOptions): Promise<ImportResult> {
  const started = Date.now();
  const { progress, signal } = opts;
  const reader = await openBundle(opts.input);
  try {
    let report: VerifyReport;
    progress.phase("verifying", 0);
    if (reader.seekable) {
      let verified = 0;
      report = await verifyBundle(reader, {
        publicKeyPem: opts.publicKeyPem,
        requireSignature: opts.requireSignature,
        concurrency: opts.concurrency,
        signal,
        // verify reports bytes hashed so far; progress counts increments
        onProgress: (e) => {
          progress.bytes(e.path, e.bytes - verified);
          verified = e.bytes;
        },
      });
    } else {
      return await streamingImport(reader, opts, started);
    }
    if (!report.ok) {
      return { verify: report, images: [], referrers: 0, stats: emptyStats(started) };
    }

    const { index, inventory } = await readVerifiedHead(reader, opts);
    const archive = new BundleArchive(reader, index, opts.input, true);
    const { images, referrerRoots } = planTargets(index, opts);

    const client = new RegistryClient({ hosts: opts.registries, caFiles: opts.caFiles, signal });
    const limit = pLimit(opts.concurrency ?? 8);
    const stats = { blobsSkipped: 0, manifestsPushed: 0 };
    try {
      await checkBaseContent(inventory, opts, client, limit);
      if (opts.dryRun) {
        await Promise.all(
          images.map(async (img) => {
            const dst = registryRepository(client, img.targetRef.registry, img.targetRef.repository);
            img.exists = await limit(() => dst.exists(img.descriptor, signal));
          }),
        );
        return {
          verify: report,
          inventory,
          images,
          referrers: referrerRoots.length,
          stats: { ...emptyStats(started) },
        };
      }

      progress.phase("pushing", inventory.totals.bytes);
      const inflightByRepo = new Map<string, Map<string, Promise<void>>>();
      const inflightFor = (ref: Reference) => {
        const key = `${ref.registry}/${ref.repository}`;
        const m = inflightByRepo.get(key) ?? new Map<string, Promise<void>>();
        inflightByRepo.set(key, m);
        return m;
      };
      const onEvent = (e: CopyEvent) => {
        if (e.type === "bytes") progress.bytes("push", e.bytes);
        else if (e.type === "skip") stats.blobsSkipped++;
        else if (e.type === "done" && e.desc.mediaType.includes("manifest")) stats.manifestsPushed++;
      };
      const copies = [
        ...images.map((img) => ({ from: img.sourceRepository, to: img.targetRef, root: img.descriptor })),
        ...referrerRoots.map((r) => ({
          from: r.repository,
          to: r.targetRef,
          root: { mediaType: r.descriptor.mediaType, digest: r.descriptor.digest, size: r.descriptor.size },
        })),
      ];
      // Referrers carry a subject: push them after the images so the subject exists first.
      for (const group of [copies.slice(0, images.length), copies.slice(images.length)]) {
        await Promise.all(
          group.map(({ from, to, root }) =>
            copyGraph(
              archive.repository(from),
              registryRepository(client, to.registry, to.repository),
              root,
              {
                limit,
                signal,
                inflight: inflightFor(to),
                onEvent,
              },
            ),
          ),
        );
      }
      // Tags last: a failure above leaves no tag pointing at partial content.
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
      const published = await publishArtifactItems(inventory, images, opts, async (d, item) =>
        (await archive.has(d))
          ? await archive.fetch(d)
          : await targetStore(client, item, opts).fetch(d, signal),
      );
      return {
        verify: report,
        inventory,
        images,
        referrers: referrerRoots.length,
        ...published,
        stats: importStats(client, stats, started),
      };
    } finally {
      await client.close();
    }
  } finally {
    await reader.close();
  }
}

/**
 * index.json and bundle.json as used for the import, re-checked against SHA256SUMS (and its
 * signature) at the moment they are read, so a file changed on disk after the verify pass is caught.
 */
async function readVerifiedHead(
  reader: BundleReader,
  opts: ImportOptions,
): Promise<{ index: ImageIndex; inventory: Inventory }> {
  const sumsBytes = await reader.readSmall(CHECKSUMS_FILE, METADATA_MAX_BYTES);
  if (opts.publicKeyPem) {
    const sig = (await reader.readSmall(SIGNATURE_FILES[0]!, 64 * 1024)).toString("utf8");
    if (!verifyChecksumsSignature(sumsBytes, sig, loadPublicKey(opts.publicKeyPem))) {
      throw new IntegrityError(
        "SIGNATURE_INVALID",
        `${CHECKSUMS_FILE} changed after it was verified`,
        CHECKSUMS_FILE,
      );
    }
  }
  const sums = parseChecksums(sumsBytes.toString("utf8"));
  const read = async (path: string, max: number) => {
    const bytes = await reader.readSmall(path, max);
    if (sha256Hex(bytes) !== sums.get(path)) {
      throw new IntegrityError("CHECKSUM_MISMATCH", `${path} changed after it was verified`, path);
    }
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
    throw new UsageError(
      `the mapping sends different content to the same target:\n  ${collisions.join("\n  ")}`,
    );
  }
  return { images, referrerRoots: referrers };
}

/**
 * An incremental bundle leaves out what its base bundle carried: before anything is pushed, make
 * sure the target holds every such blob, in the repository that needs it.
 */
async function checkBaseContent(
  inventory: Inventory,
  opts: ImportOptions,
  client: RegistryClient,
  limit: ReturnType<typeof pLimit>,
): Promise<void> {
  const omitted = new Set(inventory.since?.omittedBlobs ?? []);
  if (omitted.size === 0) return;
  const missing: string[] = [];
  await Promise.all(
    inventory.items.flatMap((item) => {
      const to = mapReference(parseReference(item.name), mappingOf(opts));
      const dst = registryRepository(client, to.registry, to.repository);
      return item.blobs
        .filter((d) => omitted.has(d))
        .map((digest) =>
          limit(async () => {
            // the size is not needed to ask a registry whether it has a blob
            if (
              !(await dst.exists({ mediaType: "application/octet-stream", digest, size: 0 }, opts.signal))
            ) {
              missing.push(
                `${digest} (${item.name} → ${formatReference({ ...to, tag: undefined, digest: undefined })})`,
              );
            }
          }),
        );
    }),
  );
  if (missing.length > 0) {
    const base = inventory.since!;
    throw new UsageError(
      `this bundle is incremental on top of ${base.bundle} (${base.name} ${base.version}, created ${base.created}) and the target lacks ${missing.length} blob(s) it leaves out, e.g. ${missing.slice(0, 3).join(", ")}: import ${base.bundle} into the same target first`,
    );
  }
}

function importStats(
  client: RegistryClient,
  own: { blobsSkipped: number; manifestsPushed: number },
  started: number,
): ImportResult["stats"] {
  return {
    blobsUploaded: client.stats.blobsUploaded,
    blobsMounted: client.stats.blobsMounted,
    bytesUploaded: client.stats.bytesUploaded,
    blobsSkipped: own.blobsSkipped,
    manifestsPushed: own.manifestsPushed,
    seconds: (Date.now() - started) / 1000,
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
        images: PlannedImage[];
        referrers: ReturnType<typeof referrerRoots>;
        /** blob digest → target repositories that need it */
        blobTargets: Map<string, Reference[]>;
        manifestTypes: Map<string, string>;
        roots: Set<string>;
      }
    | undefined;
  const client = new RegistryClient({ hosts: opts.registries, caFiles: opts.caFiles, signal });
  const deferredRoots = new Map<string, Buffer>();
  const stats = { blobsSkipped: 0, manifestsPushed: 0 };
  const storeFor = (ref: Reference) => registryRepository(client, ref.registry, ref.repository);
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
            await checkBaseContent(plan.inventory, opts, client, pLimit(opts.concurrency ?? 8));
            if (opts.dryRun) break;
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
            if (await dst.exists(desc, signal)) stats.blobsSkipped++;
            else {
              await dst.push(desc, Readable.from([bytes]), signal);
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
          verified.resume();
          await finished(verified);
        } else {
          const counted = withProgress(verified, desc, (n) => progress.bytes(entry.path, n));
          await storeFor(first).push(desc, counted, signal);
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
          streamed: true,
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
      for (const img of plan.images)
        img.exists = await storeFor(img.targetRef).exists(img.descriptor, signal);
      return {
        verify: verifier.finish(),
        inventory: plan.inventory,
        images: plan.images,
        referrers: plan.referrers.length,
        stats: emptyStats(started),
      };
    }
    const report = verifier.finish();
    if (!report.ok) {
      return {
        verify: report,
        streamed: true,
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
      if (await dst.exists(d, signal)) return;
      await dst.push(d, Readable.from([bytes]), signal);
      stats.manifestsPushed++;
    };
    for (const img of plan.images) await pushRoot(img.targetRef, img.descriptor);
    for (const r of plan.referrers) {
      const source = parseReference(r.repository);
      const to = mapReference({ registry: source.registry, repository: source.repository }, mappingOf(opts));
      await pushRoot(to, {
        mediaType: r.descriptor.mediaType,
        digest: r.descriptor.digest,
        size: r.descriptor.size,
      });
    }
    for (const img of plan.images) {
      if (img.tagged && img.targetRef.tag)
        await storeFor(img.targetRef).tag(img.descriptor, img.targetRef.tag, signal);
      progress.itemDone(img.target);
    }
    // The pipe is spent: artifacts are read back (verified) from the registry they just landed in.
    const published = await publishArtifactItems(plan.inventory, plan.images, opts, (d, item) =>
      targetStore(client, item, opts).fetch(d, signal),
    );
    return {
      verify: report,
      inventory: plan.inventory,
      images: plan.images,
      referrers: plan.referrers.length,
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

/** From the head files of a streamed bundle: targets, which blobs each repository needs, media types. */
function planStreaming(head: Map<string, Buffer>, opts: ImportOptions) {
  const index = parseIndexJson(head.get("index.json")!, opts.input);
  const inventory = parseInventory(head.get(INVENTORY_FILE)!);
  const { images, referrerRoots: referrers } = planTargets(index, opts);
  const mapping = mappingOf(opts);
  const blobTargets = new Map<string, Reference[]>();
  const manifestTypes = new Map<string, string>();
  for (const item of inventory.items) {
    const source = parseReference(item.name);
    const to = mapReference({ registry: source.registry, repository: source.repository }, mapping);
    for (const digest of item.blobs) {
      const list = blobTargets.get(digest) ?? [];
      if (!list.some((r) => r.registry === to.registry && r.repository === to.repository)) list.push(to);
      blobTargets.set(digest, list);
    }
    for (const m of item.manifests ?? []) manifestTypes.set(m.digest, m.mediaType);
  }
  for (const m of index.manifests) manifestTypes.set(m.digest, m.mediaType);
  const roots = new Set(index.manifests.map((m) => m.digest));
  return { index, inventory, images, referrers, blobTargets, manifestTypes, roots };
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
