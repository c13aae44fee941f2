/**
 * The runner image of the in-cluster import Job, built with no container engine: a pinned Node base
 * image and one deterministic layer holding the single-file airgap at /opt/cinc-airgap/airgap.mjs.
 * Base layers are copied (verified) into the target repository, the new layer, configs and
 * manifests are pushed, and the tag is set last.
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
import { formatReference, parseReference } from "../oci/reference.js";
import { RegistryClient } from "../oci/registry/client.js";
import { copyGraph } from "../store/copy.js";
import { registryRepository } from "../store/registry.js";
import { readBounded } from "../store/streams.js";
import { VERSION } from "../version.js";

export const RUNNER_TOOL_PATH = "opt/cinc-airgap/airgap.mjs";

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
  const read = async (d: Descriptor) => readBounded(await src.fetch(d, signal), MAX_MANIFEST_BYTES, d.digest);
  const { descriptor: baseDesc, bytes: baseBytes } = await src.fetchManifest(
    baseRef.digest ?? baseRef.tag ?? "latest",
    signal,
  );
  const baseManifest = parseManifest(baseBytes, baseDesc);

  let children: Descriptor[];
  if (isIndex(baseDesc.mediaType)) {
    const wanted = opts.platforms.map(parsePlatform);
    children = ("manifests" in baseManifest ? baseManifest.manifests : []).filter((m) =>
      wanted.some((w) => platformMatches(m.platform, w)),
    );
    if (children.length === 0) {
      throw new UsageError(`${opts.base} offers none of the platforms ${opts.platforms.join(", ")}`);
    }
  } else {
    children = [baseDesc];
  }

  const layer = filesLayer([{ path: RUNNER_TOOL_PATH, bytes: opts.tool }]);
  const labels = {
    "org.opencontainers.image.title": "cinc-airgap runner",
    "org.opencontainers.image.version": VERSION,
    "org.opencontainers.image.base.name": formatReference({ ...baseRef, digest: undefined }),
    "org.opencontainers.image.base.digest": baseDesc.digest,
  };
  const built: Descriptor[] = [];
  let layerDigest = "";
  for (const child of children) {
    const manifest = parseManifest(await read(child), child) as ImageManifest;
    if (!("config" in manifest))
      throw new UsageError(`${opts.base}: ${child.digest} is not an image manifest`);
    const config = await read(manifest.config);
    // the base's layers, config and manifest land in the target repository first, verified
    await copyGraph(
      src,
      dst,
      { mediaType: child.mediaType, digest: child.digest, size: child.size },
      { signal },
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
  if (isIndex(baseDesc.mediaType)) {
    const bytes = imageIndex(built, labels);
    root = {
      mediaType: MediaType.ociIndex,
      digest: sha256Digest(bytes),
      size: bytes.length,
    };
    await dst.push(root, Readable.from([bytes]), signal);
  } else {
    root = built[0]!;
  }
  await dst.tag(root, targetRef.tag, signal);
  return {
    reference: formatReference({ ...targetRef, digest: root.digest }),
    digest: root.digest,
    platforms: built.map((d) => formatPlatform(d.platform)).filter(Boolean),
    layer: layerDigest,
  };
}
