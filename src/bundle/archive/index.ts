/** The bundle's physical forms: directory, tar, tar.zst, split parts, and standard input/output. */

export { canonicalCompare, HEAD_FILES, normalizeBundlePath } from "./paths.js";
export {
  type BundleEntry,
  type BundleReader,
  type FileRange,
  isRangeReader,
  openBundle,
  type RangeReader,
} from "./reader.js";
export {
  type BundleFile,
  PARTS_FORMAT,
  type PartsManifest,
  parseSize,
  type WriteOptions,
  type WriteTarget,
  writeBundle,
} from "./writer.js";
