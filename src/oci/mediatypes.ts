/** Media types of the OCI image spec and Docker's registry formats, and the artifacts airgap writes. */
export const MediaType = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  ociLayerNondistributable: "application/vnd.oci.image.layer.nondistributable.v1.tar",
  ociLayerNondistributableGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  ociEmpty: "application/vnd.oci.empty.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerForeignLayer: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  dockerSchema1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
  /** Withdrawn in OCI 1.1 final; recognised so it can be refused with a clear message. */
  ociArtifactManifest: "application/vnd.oci.artifact.manifest.v1+json",
  cosignSimpleSigning: "application/vnd.dev.cosign.simplesigning.v1+json",
  dsseEnvelope: "application/vnd.dsse.envelope.v1+json",
  sigstoreBundle: "application/vnd.dev.sigstore.bundle.v0.3+json",
  helmConfig: "application/vnd.cncf.helm.config.v1+json",
  helmChart: "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
  helmProvenance: "application/vnd.cncf.helm.chart.provenance.v1.prov",
} as const;

/** The artifact types airgap gives non-image content in a bundle. */
export const ArtifactType = {
  cincProfile: "application/vnd.cinc.profile.v1+tar+gzip",
  gem: "application/vnd.rubygems.gem.v1",
  file: "application/vnd.cinc-airgap.file.v1",
} as const;

export const INDEX_TYPES: ReadonlySet<string> = new Set([MediaType.ociIndex, MediaType.dockerManifestList]);
export const MANIFEST_TYPES: ReadonlySet<string> = new Set([MediaType.ociManifest, MediaType.dockerManifest]);

/** Every manifest type airgap asks a registry for; registries answer 404 or 400 for types left out. */
export const MANIFEST_ACCEPT = [
  MediaType.ociIndex,
  MediaType.ociManifest,
  MediaType.dockerManifestList,
  MediaType.dockerManifest,
].join(", ");

export function isIndex(mediaType: string | undefined): boolean {
  return mediaType !== undefined && INDEX_TYPES.has(mediaType);
}

export function isImageManifest(mediaType: string | undefined): boolean {
  return mediaType !== undefined && MANIFEST_TYPES.has(mediaType);
}

/** Manifests and indexes: content that is JSON and refers to other content. */
export function isManifestLike(mediaType: string | undefined): boolean {
  return isIndex(mediaType) || isImageManifest(mediaType);
}

/** Hard limit on a manifest's size, as registries enforce it (distribution: 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
