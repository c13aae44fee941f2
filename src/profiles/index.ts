/**
 * CINC Auditor profiles: the public surface for `bundle create` and `bundle import`.
 *
 * create:  resolveProfiles(config.profiles, {workDir, configDir, ...}) → ResolvedProfile[]
 *          storeProfileArtifact(layout.repository(...), profile, {tag}) → {descriptor, inventory}
 * import:  publishProfiles(profiles, await openArtifactRepository(url, opts)) → {uploaded, skipped, urls}
 *
 * Formats follow InSpec v6.8.24, the base of CINC Auditor 6 (see lockfile.ts, resolve.ts, archive.ts).
 */

export type { OciOpener, PinnedSource } from "../sources/profiles/index.js";
export type { ArtifactRepository, ArtifactRepositoryOptions } from "../store/artifacts.js";
export { openArtifactRepository } from "../store/open-artifacts.js";
export { extractArchive, packProfile, sha256File } from "./archive.js";
export {
  ANNOTATION_PROFILE_NAME,
  ANNOTATION_PROFILE_SOURCE,
  ANNOTATION_PROFILE_VERSION,
  describePinned,
  EMPTY_CONFIG_DESCRIPTOR,
  type InventoryDependency,
  type ProfileArtifactInput,
  type ProfileInventoryRecord,
  profileManifest,
  storeProfileArtifact,
} from "./artifact.js";
export { type LockEntry, parseLockfile, type ResolvedSource, renderLockfile } from "./lockfile.js";
export {
  archiveSlug,
  ProfileError,
  type ProfileMetadata,
  type ProfileSource,
  parseMetadata,
} from "./metadata.js";
export {
  PROFILE_INDEX_KEY,
  type ProfileIndexEntry,
  type PublishableProfile,
  type PublishResult,
  profileKey,
  publishProfiles,
} from "./publish.js";
export {
  type DependencyNode,
  type ProfileEntry,
  type ResolvedProfile,
  type ResolveOptions,
  resolveProfiles,
  sourceFromEntry,
} from "./resolve.js";
export { satisfiesAll } from "./version.js";
