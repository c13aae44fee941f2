import { randomBytes } from "node:crypto";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { formatReference } from "../oci/reference.js";
import {
  type ImportedImage,
  renderContainerdHosts,
  renderHelmValues,
  renderImagesJson,
  renderRegistriesConf,
} from "../targets/render.js";
import type { ImportResult } from "./import.js";
import { type ClusterManifestsOptions, clusterManifests } from "./manifests.js";

const COSIGN_TAG = /:sha256-[a-f0-9]{64}(\.(sig|att|sbom))?$/;

export interface ClusterConfigOptions extends ClusterManifestsOptions {
  registry: string;
  prefix: string;
  plainHTTP: boolean;
  insecure: boolean;
  caFile?: string;
}

/** The images a cluster pulls: every imported root except cosign signature/attestation tags. */
export function importedImages(result: ImportResult): ImportedImage[] {
  return result.images
    .filter((i) => !COSIGN_TAG.test(i.source))
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
  };
  const files = new Map<string, string>();
  files.set("images.json", renderImagesJson(images));
  for (const [path, text] of renderContainerdHosts(images, opts.registry, mirror)) files.set(path, text);
  files.set("registries.conf", renderRegistriesConf(images, opts.registry, mirror));
  for (const [path, text] of renderHelmValues(images, { registry: opts.registry })) files.set(path, text);
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
  // manifests/: the kustomize overlay of the shipped manifests with this import's endpoints
  for (const [path, text] of await clusterManifests(images, opts)) files.set(path, text);
  for (const [path, text] of files) {
    const final = join(outDir, path);
    const temp = `${final}.partial-${randomBytes(4).toString("hex")}`;
    await mkdir(dirname(final), { recursive: true });
    await writeFile(temp, text);
    await rename(temp, final);
  }
  return [...files.keys()].map((p) => join(outDir, p));
}
