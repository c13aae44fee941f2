/**
 * A packed profile as an ORAS-style OCI artifact: an image manifest with
 * `artifactType: application/vnd.cinc.profile.v1+tar+gzip`, the empty config (`{}`,
 * `application/vnd.oci.empty.v1+json`), and one layer, the profile's NAME-VERSION.tar.gz, titled
 * with `org.opencontainers.image.title` so `oras pull` writes it under that name.
 */
import { createReadStream } from "node:fs";
import type { Readable } from "node:stream";
import type { Descriptor, ImageManifest } from "../oci/descriptor.js";
import { ArtifactType } from "../oci/mediatypes.js";
import type { PinnedSource } from "../sources/profiles/index.js";
import {
  type ArtifactSpec,
  artifactManifest,
  EMPTY_CONFIG_DESCRIPTOR,
  storeArtifact,
} from "../store/oci-artifact.js";
import type { Store } from "../store/store.js";
import type { DependencyNode, ResolvedProfile } from "./resolve.js";

export const ANNOTATION_PROFILE_NAME = "io.cinc.profile.name";
export const ANNOTATION_PROFILE_VERSION = "io.cinc.profile.version";
export const ANNOTATION_PROFILE_SOURCE = "io.cinc.profile.source";
export const ANNOTATION_VERSION = "org.opencontainers.image.version";
export const ANNOTATION_OCI_SOURCE = "org.opencontainers.image.source";

export { EMPTY_CONFIG_DESCRIPTOR };

/** The inventory record of a profile for bundle.json. */
export interface ProfileInventoryRecord {
  kind: "profile";
  name: string;
  profileName: string;
  version: string;
  fileName: string;
  /** sha256 (hex) and size of NAME-VERSION.tar.gz. */
  sha256: string;
  size: number;
  /** The config entry, and how it was pinned. */
  origin?: ResolvedProfile["origin"];
  source: PinnedSource;
  /** The manifest of the artifact in the layout. */
  digest: string;
  dependencies: InventoryDependency[];
}

export interface InventoryDependency {
  name: string;
  profileName: string;
  version: string;
  versionConstraints: string[];
  source: DependencyNode["source"];
  cacheKey: string;
  dependencies: InventoryDependency[];
}

function toInventory(n: DependencyNode): InventoryDependency {
  return {
    name: n.name,
    profileName: n.profileName,
    version: n.version,
    versionConstraints: n.versionConstraints,
    source: n.source,
    cacheKey: n.cacheKey,
    dependencies: n.dependencies.map(toInventory),
  };
}

/** One line naming where a profile came from, for the `source` annotation. */
export function describePinned(s: PinnedSource): string {
  if ("git" in s) return `git+${s.git}@${s.ref}${s.relative_path ? `#${s.relative_path}` : ""}`;
  if ("url" in s) return `${s.url}#sha256=${s.sha256}`;
  if ("oci" in s) return `oci://${s.oci}@${s.digest}`;
  return `path:${s.path}#sha256=${s.sha256}`;
}

export interface ProfileArtifactInput {
  name: string;
  profileName?: string;
  version: string;
  fileName?: string;
  sha256: string;
  size: number;
  source: PinnedSource;
  /** The packed archive: a file path or a stream factory (called once). */
  tarPath?: string;
  stream?: () => Readable;
  origin?: ResolvedProfile["origin"];
  dependencies?: DependencyNode[];
}

/** The artifact spec of a profile: one layer, the packed archive; stable for the same profile. */
function profileArtifactSpec(p: ProfileArtifactInput): ArtifactSpec {
  return {
    artifactType: ArtifactType.cincProfile,
    layers: [
      {
        mediaType: ArtifactType.cincProfile,
        digest: `sha256:${p.sha256}`,
        size: p.size,
        title: p.fileName ?? `${p.name}-${p.version}.tar.gz`,
        open: () => {
          const content = p.tarPath ? createReadStream(p.tarPath) : p.stream?.();
          if (!content) throw new Error(`profile ${p.name} ${p.version}: neither tarPath nor stream given`);
          return content;
        },
      },
    ],
    annotations: {
      [ANNOTATION_PROFILE_NAME]: p.profileName ?? p.name,
      [ANNOTATION_PROFILE_VERSION]: p.version,
      [ANNOTATION_PROFILE_SOURCE]: describePinned(p.source),
      [ANNOTATION_VERSION]: p.version,
    },
  };
}

/** The manifest bytes for a profile; stable for the same profile (no timestamps). */
export function profileManifest(p: ProfileArtifactInput): {
  bytes: Buffer;
  manifest: ImageManifest;
  layer: Descriptor;
} {
  const { bytes, manifest, layers } = artifactManifest(profileArtifactSpec(p));
  return { bytes, manifest, layer: layers[0]! };
}

/**
 * Store a packed profile in `store` (a layout repository or a registry repository): the empty
 * config, the archive, then the manifest, each skipped when present. Tags it with `tag` when given.
 * Returns the manifest's descriptor (with artifactType) and the inventory record for bundle.json.
 */
export async function storeProfileArtifact(
  store: Store,
  profile: ProfileArtifactInput | ResolvedProfile,
  opts: { tag?: string; signal?: AbortSignal } = {},
): Promise<{ descriptor: Descriptor; inventory: ProfileInventoryRecord }> {
  const p = profile as ProfileArtifactInput;
  // the archive is checked against its recorded sha256 while it is written
  const descriptor = await storeArtifact(store, profileArtifactSpec(p), opts);
  const inventory: ProfileInventoryRecord = {
    kind: "profile",
    name: p.name,
    profileName: p.profileName ?? p.name,
    version: p.version,
    fileName: p.fileName ?? `${p.name}-${p.version}.tar.gz`,
    sha256: p.sha256,
    size: p.size,
    source: p.source,
    digest: descriptor.digest,
    dependencies: (p.dependencies ?? []).map(toInventory),
  };
  if (p.origin) inventory.origin = p.origin;
  return { descriptor, inventory };
}
