import { randomBytes } from "node:crypto";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { removeLeftovers } from "../bundle/archive/writer.js";
import { ARTIFACT_REPOSITORY_HOST } from "../bundle/inventory.js";
import { formatReference, parseReference } from "../oci/reference.js";
import { assertSafeSegment } from "../store/publish.js";
import {
  type ImportedImage,
  renderContainerdHosts,
  renderHelmValues,
  renderImagesJson,
  renderRegistriesConf,
} from "../targets/render.js";
import { trackTemp } from "../temp-files.js";
import type { ImportResult } from "./import.js";
import { type ClusterManifestsOptions, clusterManifests } from "./manifests.js";

const COSIGN_TAG = /:sha256-[a-f0-9]{64}(\.(sig|att|sbom))?$/;

export interface ClusterConfigOptions extends ClusterManifestsOptions {
  registry: string;
  prefix: string;
  plainHTTP: boolean;
  insecure: boolean;
  caFile?: string;
  /** URL path the target registry's API lives under, before `/v2/` (its registries: entry). */
  pathPrefix?: string | undefined;
}

/**
 * The images a cluster pulls: every imported root except cosign signature/attestation tags and the
 * non-image artifacts (profiles, files, gems, charts), which have their own lists.
 */
export function importedImages(result: ImportResult): ImportedImage[] {
  const artifacts = new Set(
    (result.inventory?.items ?? []).filter((i) => i.kind !== "image").map((i) => i.name),
  );
  return result.images
    .filter((i) => !COSIGN_TAG.test(i.source) && !artifacts.has(i.source))
    .map((i) => ({
      source: i.source,
      target: i.target,
      digest: i.digest,
      targetPinned: formatReference({
        registry: i.targetRef.registry,
        repository: i.targetRef.repository,
        digest: i.digest,
      }),
    }));
}

/**
 * Write images.json, containerd certs.d/<host>/hosts.toml, a registries.conf fragment and Helm values
 * into `outDir`. Each file is written to a temp name and renamed, so no file is ever half written;
 * other files in `outDir` are left alone.
 */
export async function writeClusterConfig(
  outDir: string,
  result: ImportResult,
  opts: ClusterConfigOptions,
): Promise<string[]> {
  const images = importedImages(result);
  const mirror = {
    plainHTTP: opts.plainHTTP,
    skipVerify: opts.insecure,
    prefix: opts.prefix,
    ...(opts.caFile ? { caFile: opts.caFile } : {}),
    ...(opts.pathPrefix ? { pathPrefix: opts.pathPrefix } : {}),
  };
  const files = new Map<string, string>();
  files.set("images.json", renderImagesJson(images));
  // Images create built (the runner image) have no upstream host to mirror: they are referenced
  // by their internal name (the manifests overlay does so), never through a mirror of `localhost`.
  const mirrored = images.filter((i) => parseReference(i.source).registry !== ARTIFACT_REPOSITORY_HOST);
  for (const [path, text] of renderContainerdHosts(mirrored, opts.registry, mirror)) files.set(path, text);
  files.set("registries.conf", renderRegistriesConf(mirrored, opts.registry, mirror));
  if (result.charts && result.charts.length > 0) {
    // One values file per chart, in the chart's own keys, replaces the generic values-airgap.yaml.
    for (const c of result.charts) {
      // a chart's name becomes a file name: one that could leave values/ is refused
      assertSafeSegment(c.name, "chart name");
      files.set(`values/${c.name}.yaml`, c.values);
    }
    const list = result.charts.map(({ name, version, sha256, artifact, oci, url, repository, images }) => ({
      name,
      version,
      sha256,
      artifact,
      oci,
      url,
      repository,
      values: `values/${name}.yaml`,
      images,
    }));
    files.set("charts.json", `${JSON.stringify(list, null, 2)}\n`);
  } else {
    for (const [path, text] of renderHelmValues(images, { registry: opts.registry })) files.set(path, text);
  }
  if (result.profiles && result.profiles.length > 0) {
    // Where the scanner finds each profile: the artifact repository URL and the OCI artifact.
    const profiles = result.profiles.map(({ name, version, sha256, url, artifact }) => ({
      name,
      version,
      sha256,
      url,
      artifact,
    }));
    files.set("profiles.json", `${JSON.stringify(profiles, null, 2)}\n`);
  }
  if (result.files && result.files.length > 0) {
    // Where each file is: its URL in the artifact repository (when published), sha256 and OCI artifact.
    const list = result.files.map(({ name, platform, sha256, size, url, artifact }) => ({
      name,
      platform,
      sha256,
      size,
      url,
      artifact,
    }));
    files.set("files.json", `${JSON.stringify(list, null, 2)}\n`);
  }
  if (result.gems && result.gems.length > 0) {
    // The gem source to install from, and each gem with its sha256 and OCI artifact.
    const list = result.gems.map(({ name, version, platform, sha256, url, source, artifact }) => ({
      name,
      version,
      platform,
      sha256,
      url,
      source,
      artifact,
    }));
    files.set("gems.json", `${JSON.stringify(list, null, 2)}\n`);
  }
  // manifests/: the kustomize overlay of the shipped manifests with this import's endpoints
  for (const [path, text] of await clusterManifests(images, opts)) files.set(path, text);
  // Some forty small files: written side by side, not one after another.
  const dirs = new Set([...files.keys()].map((path) => dirname(join(outDir, path))));
  await Promise.all([...dirs].map((dir) => mkdir(dir, { recursive: true })));
  await Promise.all(
    [...files].map(async ([path, text]) => {
      const final = join(outDir, path);
      const temp = `${final}.partial-${randomBytes(4).toString("hex")}`;
      const untrack = trackTemp(temp);
      try {
        // temp files of an import killed while writing here
        await removeLeftovers(final);
        await writeFile(temp, text);
        await rename(temp, final);
      } finally {
        untrack();
      }
    }),
  );
  return [...files.keys()].map((p) => join(outDir, p));
}
