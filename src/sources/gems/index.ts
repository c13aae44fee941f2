/** Gems: resolution through a RubyGems compact index, download, and publishing as a static gem source. */
export { isGemName, isGemPlatform } from "./compact-index.js";
export {
  compareGemVersions,
  gemVersionMatches,
  parseGemRequirement,
  parseGemVersion,
} from "./gem-version.js";
export { type GemSourceFile, type GemSourceOptions, gemSourceFiles, type PublishableGem } from "./publish.js";
export {
  GemError,
  MAX_INFO_BYTES,
  type ResolvedGem,
  type ResolveGemsContext,
  resolveGems,
} from "./resolve.js";
