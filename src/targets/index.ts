export {
  findCollisions,
  findMapping,
  type MappedPair,
  type Mapping,
  type MappingOptions,
  mapReference,
  normalizeRepositoryPrefix,
  parseRegistryTarget,
  REPOSITORY_PATH,
} from "./mapping.js";
export {
  type ContainerdMirror,
  containerdMirrorPlan,
  type HelmValuesOptions,
  type ImportedImage,
  type MirrorOptions,
  renderContainerdHosts,
  renderHelmValues,
  renderImagesJson,
  renderRegistriesConf,
} from "./render.js";
