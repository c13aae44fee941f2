/**
 * The runner image of the in-cluster import Job, built with no container engine: a pinned Node base
 * image and one deterministic layer holding the single-file airgap at /opt/cinc-airgap/airgap.mjs.
 * One builder serves both places that make it: `bundle create` (from the source registry into the
 * cache, so the image travels in the bundle like any other) and `airgap runner-image` (from one
 * registry to another). Base layers are copied (verified) into the destination, then the new
 * layer, configs and manifests; the caller tags the root last.
 */
import { Readable } from "node:stream";
import { appendLayer, filesLayer, imageIndex } from "../bundle/runner-image.js";
import type { RegistryConfig } from "../config/types.js";
import { UsageError } from "../errors.js";
import {
  type Descriptor,
  formatPlatform,
  type ImageManifest,
  parseManifest,
  parsePlatform,
  platformMatches,
} from "../oci/descriptor.js";
import { sha256Digest } from "../oci/digest.js";
import { isIndex, MAX_MANIFEST_BYTES, MediaType } from "../oci/mediatypes.js";
import { formatReference, parseReference, type Reference } from "../oci/reference.js";
import { RegistryClient } from "../oci/registry/client.js";
import { type CopyGraphOptions, copyGraph } from "../store/copy.js";
import { registryRepository } from "../store/registry.js";
import type { ReadOnlyStore, Store } from "../store/store.js";
import { readBounded } from "../store/streams.js";
import { VERSION } from "../version.js";

export const RUNNER_TOOL_PATH = "opt/cinc-airgap/airgap.mjs";

export interface RunnerBase {
  /** Where the base's manifests and blobs are read from. */
  store: ReadOnlyStore;
  /** The base's reference, for labels and messages (its digest is taken from `descriptor`). */
  reference: Reference;
  descriptor: Descriptor;
  /** The base's root manifest or index, as served. */
  bytes: Buffer;
}

export interface AssembledRunner {
  /** The runner's root: an OCI index when the base is multi-platform, else one image manifest. */
  root: Descriptor;
  platforms: string[];
  /** The digest of the one layer added (the same for every platform). */
  layer: string;
  /** The base's digest it was built from. */
  baseDigest: string;
}

/**
 * The platforms of an index to build: the asked ones, or every real platform when none is asked
 * (attestation manifests, `unknown/unknown`, are never images to run).
 */
function chooseChildren(base: RunnerBase, platforms: string[]): Descriptor[] {
  const index = parseManifest(base.bytes, base.descriptor);
  const manifests = "manifests" in index ? index.manifests : [];
  const wanted = platforms.map(parsePlatform);
  const children = manifests.filter((m) =>
    wanted.length > 0
      ? wanted.some((w) => platformMatches(m.platform, w))
      : m.platform !== undefined && m.platform.os !== "unknown",
  );
  if (children.length === 0) {
    const offered = manifests.map((m) => formatPlatform(m.platform)).filter(Boolean);
    throw new UsageError(
      `the runner base ${formatReference(base.reference)} offers ${offered.join(", ") || "no platforms"}; none matches ${platforms.join(", ")}`,
    );
  }
  return children;
}

/**
 * The runner image in `dst`: for each chosen platform of the base, the base's graph (copied and
 * verified) plus the one layer holding `tool`; over several platforms, an OCI index. Everything is
 * pushed except a tag. Deterministic: the same base and tool give the same digests.
 */
export async function assembleRunnerImage(
  base: RunnerBase,
  dst: Store,
  opts: {
    platforms: string[];
    tool: Buffer;
    signal?: AbortSignal;
    copy?: Pick<CopyGraphOptions, "limit" | "inflight" | "onEvent">;
  },
): Promise<AssembledRunner> {
  const { signal } = opts;
  const read = async (d: Descriptor) =>
    readBounded(await base.store.fetch(d, signal), MAX_MANIFEST_BYTES, d.digest);
  const multi = isIndex(base.descriptor.mediaType);
  const children = multi ? chooseChildren(base, opts.platforms) : [base.descriptor];

  const layer = filesLayer([{ path: RUNNER_TOOL_PATH, bytes: opts.tool }]);
  const labels = {
    "org.opencontainers.image.title": "cinc-airgap runner",
    "org.opencontainers.image.version": VERSION,
    "org.opencontainers.image.base.name": formatReference({ ...base.reference, digest: undefined }),
    "org.opencontainers.image.base.digest": base.descriptor.digest,
  };
  const built: Descriptor[] = [];
  let layerDigest = "";
  for (const child of children) {
    const manifest = parseManifest(
      child === base.descriptor ? base.bytes : await read(child),
      child,
    ) as ImageManifest;
    if (!("config" in manifest)) {
      throw new UsageError(
        `the runner base ${formatReference(base.reference)}: ${child.digest} is not an image manifest`,
      );
    }
    const config = await read(manifest.config);
    // the base's layers, config and manifest land in the destination first, verified
    await copyGraph(
      base.store,
      dst,
      { mediaType: child.mediaType, digest: child.digest, size: child.size },
      { ...opts.copy, signal },
    );
    const image = appendLayer(
      { manifest, config, ...(child.platform ? { platform: child.platform } : {}) },
      layer,
      {
        entrypoint: ["node", `/${RUNNER_TOOL_PATH}`],
        cmd: ["--help"],
        user: "1000:1000",
        labels,
        createdBy: `airgap ${VERSION}: COPY airgap.mjs /${RUNNER_TOOL_PATH}`,
      },
    );
    layerDigest = image.layer.digest;
    if (!(await dst.exists(image.layer, signal))) await dst.push(image.layer, Readable.from([layer]), signal);
    await dst.push(image.configDescriptor, Readable.from([image.config]), signal);
    await dst.push(image.manifestDescriptor, Readable.from([image.manifest]), signal);
    built.push(image.manifestDescriptor);
  }

  let root: Descriptor;
  if (multi) {
    const bytes = imageIndex(built, labels);
    root = { mediaType: MediaType.ociIndex, digest: sha256Digest(bytes), size: bytes.length };
    await dst.push(root, Readable.from([bytes]), signal);
  } else {
    const only = built[0]!;
    root = { mediaType: only.mediaType, digest: only.digest, size: only.size };
  }
  return {
    root,
    platforms: built.map((d) => formatPlatform(d.platform)).filter(Boolean),
    layer: layerDigest,
    baseDigest: base.descriptor.digest,
  };
}

export interface RunnerImageOptions {
  /** TLS and plain-HTTP settings per registry host (base and target). */
  registries?: RegistryConfig[];
  caFiles?: string[];
  /** The Node base image, e.g. docker.io/library/node:20-bookworm-slim@sha256:… (pin it by digest). */
  base: string;
  /** Where to push, e.g. registry.internal:5000/scanner/cinc-airgap/airgap:0.1.0 (a tag is required). */
  target: string;
  /** Platforms to build when the base is multi-platform. */
  platforms: string[];
  /** The single-file airgap. */
  tool: Buffer;
  signal?: AbortSignal;
}

export interface RunnerImageResult {
  reference: string;
  digest: string;
  platforms: string[];
  layer: string;
}

/** `airgap runner-image`: build from a base in one registry and push (then tag) in another. */
export async function buildRunnerImage(opts: RunnerImageOptions): Promise<RunnerImageResult> {
  const client = new RegistryClient({ hosts: opts.registries, caFiles: opts.caFiles, signal: opts.signal });
  try {
    return await buildWith(client, opts);
  } finally {
    await client.close();
  }
}

async function buildWith(client: RegistryClient, opts: RunnerImageOptions): Promise<RunnerImageResult> {
  const { signal } = opts;
  const baseRef = parseReference(opts.base);
  const targetRef = parseReference(opts.target);
  // parseReference would read a missing tag as `latest`: the runner image is always named explicitly
  const written = opts.target.slice(opts.target.lastIndexOf("/") + 1);
  if (!targetRef.tag || targetRef.digest || !written.includes(":")) {
    throw new UsageError(
      `the runner image target ${opts.target} needs a tag (e.g. :${VERSION}) and no digest`,
    );
  }
  const src = registryRepository(client, baseRef.registry, baseRef.repository);
  const dst = registryRepository(client, targetRef.registry, targetRef.repository);
  const { descriptor, bytes } = await src.fetchManifest(baseRef.digest ?? baseRef.tag ?? "latest", signal);
  const built = await assembleRunnerImage({ store: src, reference: baseRef, descriptor, bytes }, dst, {
    platforms: opts.platforms,
    tool: opts.tool,
    ...(signal ? { signal } : {}),
  });
  await dst.tag(built.root, targetRef.tag, signal);
  return {
    reference: formatReference({ ...targetRef, digest: built.root.digest }),
    digest: built.root.digest,
    platforms: built.platforms,
    layer: built.layer,
  };
}
