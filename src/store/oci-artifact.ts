/**
 * Non-image content as OCI artifacts: one image manifest whose layers are the files, as ORAS and
 * Helm write them. ORAS-style artifacts (profiles, gems, files) carry `artifactType` and the empty
 * config `{}`; Helm charts bring their own config (`application/vnd.cncf.helm.config.v1+json`).
 * Each layer is titled with `org.opencontainers.image.title`, so `oras pull` writes it under that name.
 * The manifest has no timestamps: the same content always gives the same digest.
 */
import type { Readable } from "node:stream";
import { Readable as ReadableStream } from "node:stream";
import { ANNOTATION_TITLE, type Descriptor, type ImageManifest } from "../oci/descriptor.js";
import { sha256Digest } from "../oci/digest.js";
import { MediaType } from "../oci/mediatypes.js";
import type { Store } from "./store.js";

const EMPTY_CONFIG = Buffer.from("{}");
export const EMPTY_CONFIG_DESCRIPTOR: Descriptor = {
  mediaType: MediaType.ociEmpty,
  digest: sha256Digest(EMPTY_CONFIG),
  size: EMPTY_CONFIG.length,
};

export interface ArtifactLayer {
  mediaType: string;
  /** `sha256:<hex>`; the content is verified against it (and `size`) as it is stored. */
  digest: string;
  size: number;
  /** File name for `org.opencontainers.image.title`. */
  title?: string;
  /** The content, opened only when the store does not hold it yet. */
  open: () => Readable | Promise<Readable>;
}

export interface ArtifactSpec {
  /** Absent for Helm charts, which identify themselves by their config media type. */
  artifactType?: string;
  /** Config bytes and media type; default the empty config. */
  config?: { mediaType: string; bytes: Buffer };
  layers: ArtifactLayer[];
  annotations?: Record<string, string>;
}

/** The manifest of an artifact, its bytes, and the descriptors of its config and layers. */
export function artifactManifest(spec: ArtifactSpec): {
  bytes: Buffer;
  manifest: ImageManifest;
  descriptor: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
} {
  const config: Descriptor = spec.config
    ? {
        mediaType: spec.config.mediaType,
        digest: sha256Digest(spec.config.bytes),
        size: spec.config.bytes.length,
      }
    : EMPTY_CONFIG_DESCRIPTOR;
  const layers = spec.layers.map(
    (l): Descriptor => ({
      mediaType: l.mediaType,
      digest: l.digest,
      size: l.size,
      ...(l.title ? { annotations: { [ANNOTATION_TITLE]: l.title } } : {}),
    }),
  );
  // Key order is part of the digest: schemaVersion, mediaType, artifactType, config, layers, annotations.
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    ...(spec.artifactType ? { artifactType: spec.artifactType } : {}),
    config,
    layers,
    ...(spec.annotations && Object.keys(spec.annotations).length > 0
      ? { annotations: spec.annotations }
      : {}),
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const descriptor: Descriptor = {
    mediaType: MediaType.ociManifest,
    digest: sha256Digest(bytes),
    size: bytes.length,
    ...(spec.artifactType ? { artifactType: spec.artifactType } : {}),
  };
  return { bytes, manifest, descriptor, config, layers };
}

/**
 * Store an artifact in `store` (a layout or registry repository): config, layers, then the manifest,
 * children before the parent, each skipped when present. Every push verifies size and digest while
 * writing, so a layer whose bytes differ from its descriptor is refused and nothing names it.
 * Tags the manifest with `tag` when given. Returns the manifest's descriptor.
 */
export async function storeArtifact(
  store: Store,
  spec: ArtifactSpec,
  opts: { tag?: string; signal?: AbortSignal } = {},
): Promise<Descriptor> {
  const { signal } = opts;
  const { bytes, descriptor, config } = artifactManifest(spec);
  const configBytes = spec.config?.bytes ?? EMPTY_CONFIG;
  if (!(await store.exists(config, signal))) {
    await store.push(config, ReadableStream.from([configBytes]), signal);
  }
  for (const layer of spec.layers) {
    const desc: Descriptor = { mediaType: layer.mediaType, digest: layer.digest, size: layer.size };
    if (await store.exists(desc, signal)) continue;
    await store.push(desc, await layer.open(), signal);
  }
  if (!(await store.exists(descriptor, signal))) {
    await store.push(descriptor, ReadableStream.from([bytes]), signal);
  }
  if (opts.tag) await store.tag(descriptor, opts.tag, signal);
  return descriptor;
}
