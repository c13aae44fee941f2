import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import pLimit from "p-limit";
import { type BundleReader, openBundle } from "../bundle/archive/reader.js";
import { INVENTORY_FILE, type Inventory, parseInventory } from "../bundle/inventory.js";
import { SequentialVerifier, type VerifyReport, verifyBundle } from "../bundle/verify.js";
import type { RegistryConfig } from "../config/types.js";
import { UsageError } from "../errors.js";
import type { Descriptor } from "../oci/descriptor.js";
import { MAX_MANIFEST_BYTES } from "../oci/mediatypes.js";
import { formatReference, parseReference, type Reference } from "../oci/reference.js";
import { RegistryClient } from "../oci/registry/client.js";
import { BundleArchive, parseIndexJson } from "../store/bundle.js";
import { type CopyEvent, copyGraph } from "../store/copy.js";
import { findCollisions, type Mapping, mapReference } from "../targets/mapping.js";
import type { Progress } from "./progress.js";

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
  /** Folder for spooling a bundle that arrives on a pipe. */
  tempDir?: string;
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

export interface ImportResult {
  verify: VerifyReport;
  inventory?: Inventory;
  images: PlannedImage[];
  referrers: number;
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
 * digest unchanged, tags last. A bundle that arrives on a pipe (or compressed) is spooled to a
 * temporary folder while it is verified in the same pass, then imported from there.
 */
export async function importBundle(opts: ImportOptions): Promise<ImportResult> {
  const started = Date.now();
  const { progress, signal } = opts;
  let reader = await openBundle(opts.input);
  let spool: string | undefined;
  try {
    let report: VerifyReport;
    progress.phase("verifying", 0);
    if (reader.seekable) {
      report = await verifyBundle(reader, {
        publicKeyPem: opts.publicKeyPem,
        requireSignature: opts.requireSignature,
        concurrency: opts.concurrency,
        signal,
        onProgress: (e) => progress.bytes(e.path, e.bytes),
      });
    } else {
      spool = await mkdtemp(
        join(opts.tempDir ?? dirnameForSpool(), `airgap-import-${randomBytes(4).toString("hex")}-`),
      );
      report = await spoolVerified(reader, spool, opts);
      await reader.close();
      if (report.ok) reader = await openBundle(spool);
    }
    if (!report.ok) {
      return { verify: report, images: [], referrers: 0, stats: emptyStats(started) };
    }

    const index = parseIndexJson(await reader.readSmall("index.json", MAX_MANIFEST_BYTES), opts.input);
    const inventory = parseInventory(await reader.readSmall(INVENTORY_FILE, 256 * 1024 * 1024));
    const archive = new BundleArchive(reader, index, opts.input);
    const mapping = {
      registry: opts.registry,
      prefix: opts.prefix,
      keepSourceRegistry: opts.keepSourceRegistry,
      flatten: opts.flatten,
      mappings: opts.mappings,
    };
    const images: PlannedImage[] = archive.named().map(({ name, descriptor }) => {
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
    const referrerRoots = archive.referrerRoots().map((r) => {
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

    const client = new RegistryClient({ hosts: opts.registries, caFiles: opts.caFiles, signal });
    const limit = pLimit(opts.concurrency ?? 8);
    const stats = { blobsSkipped: 0, manifestsPushed: 0 };
    try {
      if (opts.dryRun) {
        await Promise.all(
          images.map(async (img) => {
            const dst = client.repository(img.targetRef.registry, img.targetRef.repository);
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
        let m = inflightByRepo.get(key);
        if (!m) inflightByRepo.set(key, (m = new Map()));
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
            copyGraph(archive.repository(from), client.repository(to.registry, to.repository), root, {
              limit,
              signal,
              inflight: inflightFor(to),
              onEvent,
            }),
          ),
        );
      }
      // Tags last: a failure above leaves no tag pointing at partial content.
      await Promise.all(
        images
          .filter((img) => img.tagged && img.targetRef.tag)
          .map((img) =>
            limit(() =>
              client
                .repository(img.targetRef.registry, img.targetRef.repository)
                .tag(img.descriptor, img.targetRef.tag!, signal),
            ),
          ),
      );
      for (const img of images) progress.itemDone(img.target);
      return {
        verify: report,
        inventory,
        images,
        referrers: referrerRoots.length,
        stats: {
          blobsUploaded: client.stats.blobsUploaded,
          blobsMounted: client.stats.blobsMounted,
          bytesUploaded: client.stats.bytesUploaded,
          blobsSkipped: stats.blobsSkipped,
          manifestsPushed: stats.manifestsPushed,
          seconds: (Date.now() - started) / 1000,
        },
      };
    } finally {
      await client.close();
    }
  } finally {
    await reader.close();
    if (spool) await rm(spool, { recursive: true, force: true });
  }
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

function dirnameForSpool(): string {
  return process.env.TMPDIR || "/tmp";
}

/** One pass over a sequential bundle: every entry verified as it is written to `dir`. */
async function spoolVerified(reader: BundleReader, dir: string, opts: ImportOptions): Promise<VerifyReport> {
  const verifier = new SequentialVerifier({
    publicKeyPem: opts.publicKeyPem,
    requireSignature: opts.requireSignature,
    signal: opts.signal,
  });
  try {
    for await (const entry of reader.entries(opts.signal)) {
      const verified = verifier.accept(entry);
      const path = join(dir, entry.path);
      await mkdir(dirname(path), { recursive: true });
      await pipeline(verified, createWriteStream(path, { flags: "wx" }), { signal: opts.signal });
      opts.progress.bytes(entry.path, entry.size);
    }
  } catch (err) {
    const report = verifier.finish();
    const problem = err as { code?: string; item?: string; message?: string };
    if (report.problems.length === 0 || !report.problems.some((p) => p.message === problem.message)) {
      report.problems.push({
        code: (problem.code as VerifyReport["problems"][number]["code"]) ?? "MALFORMED",
        item: problem.item ?? opts.input,
        message: problem.message ?? String(err),
      });
    }
    report.ok = false;
    if (!(err instanceof Error) || !("exitCode" in err) || (err as { exitCode: number }).exitCode !== 3)
      throw err;
    return report;
  }
  return verifier.finish();
}
