/**
 * Charts stored in an OCI registry, as `helm pull oci://…` reads them: the manifest tagged with the
 * chart version (`+` written as `_`, Helm's tag rule), whose layer of type
 * `application/vnd.cncf.helm.chart.content.v1.tar+gzip` is the packaged chart. A range is resolved
 * against the repository's tags (highest semver match), as Helm does for OCI dependencies. The layer
 * is verified against its digest while it streams to disk. Works on any store (the registry client's
 * repository, a layout), so this module knows nothing of HTTP.
 */

import { createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import semver from "semver";
import { IntegrityError } from "../../errors.js";
import { type Descriptor, type ImageManifest, parseManifest } from "../../oci/descriptor.js";
import { Sha256Meter } from "../../oci/digest.js";
import { MAX_MANIFEST_BYTES, MediaType } from "../../oci/mediatypes.js";
import { parseReference } from "../../oci/reference.js";
import type { ReadOnlyStore } from "../../store/store.js";
import { readChartArchive } from "./archive.js";
import type { ChartDependency } from "./chart-yaml.js";
import { ChartError } from "./errors.js";
import type { FetchedDependency } from "./package.js";
import { maxSatisfyingHelm } from "./versions.js";

/** A repository to read charts from; `listTags` is needed for version ranges. */
export type OciChartRepository = ReadOnlyStore & { listTags?: (signal?: AbortSignal) => Promise<string[]> };
export type OpenOciRepository = (
  registry: string,
  repository: string,
) => OciChartRepository | Promise<OciChartRepository>;

async function readAll(stream: NodeJS.ReadableStream, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    n += (c as Buffer).length;
    if (n > limit) throw new IntegrityError("MALFORMED", `${what} is over ${limit} bytes`, what);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * A `pullOci` for resolveChart/packageChartDir: `dep.repository` is `oci://registry/path` and the
 * chart lives at `registry/path/NAME` (Helm's rule for OCI dependencies).
 */
export function ociChartPuller(
  open: OpenOciRepository,
  signal?: AbortSignal,
): (dep: ChartDependency & { repository: string }, dir: string) => Promise<FetchedDependency> {
  return async (dep, dir) => {
    const base = dep.repository.replace(/^oci:\/\//, "").replace(/\/+$/, "");
    const ref = parseReference(`${base}/${dep.name}`);
    const label = `oci://${ref.registry}/${ref.repository}`;
    const store = await open(ref.registry, ref.repository);
    const constraint = dep.version ?? "*";
    let version: string;
    if (semver.valid(constraint)) {
      version = constraint;
    } else {
      if (!store.listTags) {
        throw new ChartError(
          `chart ${label}: a version range (${constraint}) needs the repository's tag list`,
          label,
        );
      }
      const versions = (await store.listTags(signal))
        .map((t) => t.replace(/_/g, "+"))
        .filter((t) => semver.valid(t));
      const best = maxSatisfyingHelm(versions, constraint);
      if (!best) {
        throw new ChartError(
          `chart ${label}: no version satisfies "${constraint}"; the repository has ${versions.sort(semver.rcompare).join(", ") || "no versions"}`,
          label,
          "CHART_VERSION_NOT_FOUND",
        );
      }
      version = best;
    }
    const tag = version.replace(/\+/g, "_");
    const desc = await store.resolve(tag, signal);
    const bytes = await readAll(
      await store.fetch(desc, signal),
      MAX_MANIFEST_BYTES,
      `${label}:${tag} manifest`,
    );
    const manifest = parseManifest(bytes, desc) as ImageManifest;
    const layer: Descriptor | undefined = manifest.layers?.find((l) => l.mediaType === MediaType.helmChart);
    if (manifest.config?.mediaType !== MediaType.helmConfig || !layer) {
      throw new IntegrityError(
        "MALFORMED",
        `${label}:${tag} is not a Helm chart (no ${MediaType.helmChart} layer with a Helm config)`,
        `${label}:${tag}`,
      );
    }
    const file = join(dir, `${dep.name}-${version}.tgz`);
    const part = `${file}.download`;
    const hash = new Sha256Meter();
    try {
      // the store's stream fails at its end unless the bytes match layer.digest and size
      await pipeline(await store.fetch(layer, signal), hash, createWriteStream(part), { signal });
    } catch (err) {
      await rm(part, { force: true });
      throw err;
    }
    await rename(part, file);
    const tree = await readChartArchive(file, `${label}:${tag}`);
    if (tree.metadata.name !== dep.name || tree.metadata.version !== version) {
      throw new IntegrityError(
        "MALFORMED",
        `${label}:${tag} holds chart ${tree.metadata.name} ${tree.metadata.version}, not ${dep.name} ${version}`,
        `${label}:${tag}`,
      );
    }
    return { file, name: dep.name, version, sha256: hash.hex(), manifestDigest: desc.digest };
  };
}
