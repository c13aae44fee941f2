export { bundleConfigJsonSchema, bundleConfigJsonSchemaText } from "./json-schema.js";
export {
  DEFAULT_GEM_SOURCE,
  DEFAULT_SUPERMARKET,
  loadBundleConfig,
  loadImportConfig,
  parseBundleConfig,
  parseImportConfig,
} from "./load.js";
export { type ConfigProblem, ConfigValidationError, type LocatedProblem } from "./problems.js";
export {
  API_VERSION,
  bundleConfigSchema,
  CARRY_KINDS,
  importConfigSchema,
  type RawBundleConfig,
  type RawImportConfig,
} from "./schema.js";
export type {
  BundleConfig,
  CarryKind,
  ChartSource,
  FileSpec,
  GemSpec,
  ImageSpec,
  ImportConfig,
  ProfileSource,
  RegistryConfig,
  VerifyRule,
} from "./types.js";
