import { AirgapError } from "../errors.js";
import {
  type Descriptor,
  formatPlatform,
  type ImageIndex,
  parseManifest,
  parsePlatform,
  platformMatches,
} from "../oci/descriptor.js";
import { sha256Digest } from "../oci/digest.js";
import { isIndex } from "../oci/mediatypes.js";
import { formatReference, parseReference, type Reference, repositoryOf } from "../oci/reference.js";
import type { RegistryStore } from "../store/registry.js";

export type CarryKind = "signatures" | "attestations" | "sboms" | "referrers";

export interface ImageEntry {
  ref: string;
  platforms?: string[];
  carry?: CarryKind[];
}

/** An image pinned to a digest, with the exact roots to copy. */
export interface ResolvedImage {
  entry: ImageEntry;
  reference: Reference;
  /** Full normalized name: repo:tag, or repo@digest when the config gave only a digest. */
  name: string;
  repository: string;
  /** What the registry serves for the reference. */
  sourceDescriptor: Descriptor;
  /** The root written to the bundle: the source descriptor, or a platform-filtered index. */
  root: Descriptor;
  /** Bytes of the filtered index, when platforms were filtered out. */
  filteredIndex?: Buffer;
  /** Graph roots to copy from the source (the root itself, or the chosen children of a filtered index). */
  copyRoots: Descriptor[];
  platforms: string[];
  sourcePlatforms?: string[];
  carry: CarryKind[];
}

/**
 * Pin an image reference to a digest and apply platform filtering. A reference with both tag and
 * digest is pulled by digest (the digest is the promise); the tag is kept as its name.
 */
export async function resolveImage(
  store: RegistryStore,
  entry: ImageEntry,
  defaultPlatforms: string[],
  signal?: AbortSignal,
): Promise<ResolvedImage> {
  const reference = parseReference(entry.ref);
  const repository = repositoryOf(reference);
  const name = reference.tag
    ? formatReference({ ...reference, digest: undefined })
    : formatReference(reference);
  const lookup = reference.digest ?? reference.tag ?? "latest";
  const { descriptor, bytes } = await store.fetchManifest(lookup, signal);
  const wanted = (entry.platforms ?? defaultPlatforms).map(parsePlatform);
  const carry = entry.carry ?? ["signatures", "attestations", "sboms", "referrers"];
  const base = { entry, reference, name, repository, sourceDescriptor: descriptor, carry };

  if (!isIndex(descriptor.mediaType)) {
    const platforms = wanted.length > 0 ? wanted.map(formatPlatform) : [];
    return { ...base, root: descriptor, copyRoots: [descriptor], platforms };
  }
  const index = parseManifest(bytes, descriptor) as ImageIndex;
  const sourcePlatforms = index.manifests.map((m) => formatPlatform(m.platform)).filter((p) => p !== "");
  if (wanted.length === 0) {
    return {
      ...base,
      root: descriptor,
      copyRoots: [descriptor],
      platforms: sourcePlatforms,
      sourcePlatforms,
    };
  }
  const kept = index.manifests.filter((m) => wanted.some((w) => platformMatches(m.platform, w)));
  if (kept.length === 0) {
    throw new AirgapError(
      `${entry.ref} offers ${sourcePlatforms.join(", ") || "no platforms"}; none matches ${wanted.map(formatPlatform).join(", ")}`,
      "NO_PLATFORM",
    );
  }
  const platforms = kept.map((m) => formatPlatform(m.platform));
  if (kept.length === index.manifests.length) {
    return { ...base, root: descriptor, copyRoots: [descriptor], platforms, sourcePlatforms };
  }
  // A new index with only the chosen platforms; everything else of the source index is kept as is.
  const filtered: ImageIndex = { ...index, manifests: kept };
  const filteredIndex = Buffer.from(JSON.stringify(filtered));
  const root: Descriptor = {
    mediaType: descriptor.mediaType,
    digest: sha256Digest(filteredIndex),
    size: filteredIndex.length,
  };
  return { ...base, root, filteredIndex, copyRoots: kept, platforms, sourcePlatforms };
}
