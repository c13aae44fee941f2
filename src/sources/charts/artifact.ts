/**
 * A packaged chart as an OCI artifact, as `helm push` writes it (Helm 3.8+, pkg/registry/client.go
 * Push + generateOCIAnnotations):
 * - config `application/vnd.cncf.helm.config.v1+json`: `json.Marshal(chart.Metadata)`, i.e. the
 *   Chart.yaml fields Helm knows, in its struct's order, empty ones left out, Go's HTML escaping;
 * - one layer `application/vnd.cncf.helm.chart.content.v1.tar+gzip`: the .tgz itself;
 * - an OCI image manifest with annotations: description, title (= name), version, url (= home),
 *   created, source (first of sources), authors ("Name (email), …"), then the chart's own
 *   annotations except ones that would replace title or version. Go marshals a map in key order.
 * `created` is the one field Helm fills with the push time; airgap writes it only when given, so the
 * same chart always gives the same manifest digest.
 *
 * Also the Helm repository index (`index.yaml`) for a set of packaged charts, as `helm repo index`
 * writes it: entries per name, newest version first, each with the chart metadata, `digest`
 * (sha256 hex of the .tgz), `urls` and `created`.
 */

import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import semver from "semver";
import { stringify } from "yaml";
import type { Descriptor, ImageManifest } from "../../oci/descriptor.js";
import { sha256Digest } from "../../oci/digest.js";
import { MediaType } from "../../oci/mediatypes.js";
import type { Store } from "../../store/store.js";

type Json = Record<string, unknown>;

/** JSON as Go's encoding/json writes it: no spaces, and <, >, &, U+2028, U+2029 escaped. */
export function goJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

function str(v: unknown): string | undefined {
  if (typeof v === "string") return v === "" ? undefined : v;
  if (typeof v === "number") return String(v);
  return undefined;
}

function strList(v: unknown): string[] | undefined {
  if (!Array.isArray(v)) return undefined;
  const out = v
    .map((x) => (typeof x === "string" || typeof x === "number" ? String(x) : ""))
    .filter((x) => x !== "");
  return out.length ? out : undefined;
}

function bool(v: unknown): boolean | undefined {
  if (v === true || v === "true") return true;
  return undefined;
}

function put(o: Json, k: string, v: unknown): void {
  if (v !== undefined) o[k] = v;
}

function sortedMap(v: unknown): Record<string, string> | undefined {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
  const keys = Object.keys(v).sort();
  if (keys.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const k of keys) out[k] = String((v as Json)[k] ?? "");
  return out;
}

/** Chart.yaml content as Helm's chart.Metadata marshals to JSON (field order of the Go struct). */
export function helmMetadataJson(chartYaml: Json): Json {
  const o: Json = {};
  put(o, "name", str(chartYaml.name));
  put(o, "home", str(chartYaml.home));
  put(o, "sources", strList(chartYaml.sources));
  put(o, "version", str(chartYaml.version));
  put(o, "description", str(chartYaml.description));
  put(o, "keywords", strList(chartYaml.keywords));
  if (Array.isArray(chartYaml.maintainers) && chartYaml.maintainers.length) {
    o.maintainers = chartYaml.maintainers.map((m) => {
      const mo: Json = {};
      const src = (m ?? {}) as Json;
      put(mo, "name", str(src.name));
      put(mo, "email", str(src.email));
      put(mo, "url", str(src.url));
      return mo;
    });
  }
  put(o, "icon", str(chartYaml.icon));
  put(o, "apiVersion", str(chartYaml.apiVersion));
  put(o, "condition", str(chartYaml.condition));
  put(o, "tags", str(chartYaml.tags));
  put(o, "appVersion", str(chartYaml.appVersion));
  put(o, "deprecated", bool(chartYaml.deprecated));
  put(o, "annotations", sortedMap(chartYaml.annotations));
  put(o, "kubeVersion", str(chartYaml.kubeVersion));
  if (Array.isArray(chartYaml.dependencies) && chartYaml.dependencies.length) {
    o.dependencies = chartYaml.dependencies.map((d) => {
      const src = (d ?? {}) as Json;
      const dep: Json = {};
      put(dep, "name", str(src.name));
      put(dep, "version", str(src.version));
      put(dep, "repository", str(src.repository) ?? "");
      put(dep, "condition", str(src.condition));
      put(dep, "tags", strList(src.tags));
      put(dep, "enabled", bool(src.enabled));
      put(dep, "import-values", Array.isArray(src["import-values"]) ? src["import-values"] : undefined);
      put(dep, "alias", str(src.alias));
      return dep;
    });
  }
  put(o, "type", str(chartYaml.type));
  return o;
}

const ANNOTATION = {
  description: "org.opencontainers.image.description",
  title: "org.opencontainers.image.title",
  version: "org.opencontainers.image.version",
  url: "org.opencontainers.image.url",
  created: "org.opencontainers.image.created",
  source: "org.opencontainers.image.source",
  authors: "org.opencontainers.image.authors",
} as const;

/** The manifest annotations `helm push` sets (generateOCIAnnotations), keys sorted as Go writes a map. */
export function helmOciAnnotations(meta: Json, created?: string): Record<string, string> {
  const a: Record<string, string> = {};
  const add = (k: string, v: unknown) => {
    if (typeof v === "string" && v.trim() !== "") a[k] = v;
  };
  add(ANNOTATION.description, meta.description);
  add(ANNOTATION.title, meta.name);
  add(ANNOTATION.version, meta.version);
  add(ANNOTATION.url, meta.home);
  add(ANNOTATION.created, created);
  add(ANNOTATION.source, (meta.sources as string[] | undefined)?.[0]);
  const maintainers = meta.maintainers as { name?: string; email?: string }[] | undefined;
  if (maintainers?.length) {
    add(
      ANNOTATION.authors,
      maintainers.map((m) => `${m.name ?? ""}${m.email ? ` (${m.email})` : ""}`).join(", "),
    );
  }
  for (const [k, v] of Object.entries((meta.annotations as Record<string, string> | undefined) ?? {})) {
    if (k === ANNOTATION.title || k === ANNOTATION.version) continue;
    a[k] = v;
  }
  const sorted: Record<string, string> = {};
  for (const k of Object.keys(a).sort()) sorted[k] = a[k]!;
  return sorted;
}

export interface HelmChartArtifact {
  /** Manifest bytes and their descriptor (push under the chart's version as tag). */
  manifest: Buffer;
  manifestDescriptor: Descriptor;
  /** Config bytes (chart metadata JSON) and descriptor. */
  config: Buffer;
  configDescriptor: Descriptor;
  /** The .tgz layer: the packaged chart file, unchanged. */
  layer: Descriptor;
  annotations: Record<string, string>;
}

/**
 * Build the manifest and config of a packaged chart as `helm push` would. `chartYamlJson` is the
 * chart's Chart.yaml as parsed (ResolvedChart.metadata). The layer is the .tgz as it is on disk: its
 * bytes go into the store under `layer.digest`, verified against `chart.sha256` as they are copied.
 */
export function helmChartArtifact(
  chart: { file: string; sha256: string; size: number; name: string; version: string },
  chartYamlJson: object,
  opts: { created?: string } = {},
): HelmChartArtifact {
  const meta = helmMetadataJson(chartYamlJson as Json);
  if (meta.name !== chart.name || meta.version !== chart.version) {
    throw new Error(
      `chart metadata names ${String(meta.name)} ${String(meta.version)}, but the package is ${chart.name} ${chart.version}`,
    );
  }
  const config = Buffer.from(goJson(meta));
  const configDescriptor: Descriptor = {
    mediaType: MediaType.helmConfig,
    digest: sha256Digest(config),
    size: config.length,
  };
  const layer: Descriptor = {
    mediaType: MediaType.helmChart,
    digest: `sha256:${chart.sha256}`,
    size: chart.size,
  };
  const annotations = helmOciAnnotations(meta, opts.created);
  const m: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: configDescriptor,
    layers: [layer],
    annotations,
  };
  const manifest = Buffer.from(goJson(m));
  return {
    manifest,
    manifestDescriptor: {
      mediaType: MediaType.ociManifest,
      digest: sha256Digest(manifest),
      size: manifest.length,
    },
    config,
    configDescriptor,
    layer,
    annotations,
  };
}

/**
 * Put a packaged chart into `store` (a layout repository or a registry repository) as `helm push`
 * would: config, the .tgz (verified against its sha256 while it is written), then the manifest, each
 * skipped when present; tagged with `tag` (Helm tags a chart with its version, `+` as `_`).
 */
export async function storeHelmChartArtifact(
  store: Store,
  chart: { file: string; sha256: string; size: number; name: string; version: string },
  chartYamlJson: object,
  opts: { tag?: string; created?: string; signal?: AbortSignal } = {},
): Promise<HelmChartArtifact> {
  const a = helmChartArtifact(chart, chartYamlJson, opts.created ? { created: opts.created } : {});
  const signal = opts.signal;
  if (!(await store.exists(a.configDescriptor, signal))) {
    await store.push(a.configDescriptor, Readable.from([a.config]), signal);
  }
  if (!(await store.exists(a.layer, signal))) await store.push(a.layer, createReadStream(chart.file), signal);
  if (!(await store.exists(a.manifestDescriptor, signal))) {
    await store.push(a.manifestDescriptor, Readable.from([a.manifest]), signal);
  }
  if (opts.tag) await store.tag(a.manifestDescriptor, opts.tag, signal);
  return a;
}

export interface IndexedChart {
  name: string;
  version: string;
  /** sha256 hex of the .tgz. */
  sha256: string;
  /** URL of the .tgz, absolute or relative to the index (e.g. "NAME-VERSION.tgz"). */
  url: string;
  /** Chart.yaml as parsed. */
  chartYamlJson: object;
}

/** index.yaml for a Helm repository holding `charts`; `generated` is also each entry's `created`. */
export function helmRepositoryIndex(charts: IndexedChart[], generated: Date): string {
  const when = generated.toISOString();
  const byName = new Map<string, Json[]>();
  for (const c of charts) {
    const meta = helmMetadataJson(c.chartYamlJson as Json);
    const entry: Json = { ...meta, created: when, digest: c.sha256, urls: [c.url] };
    // helm repo index writes each entry as sorted keys (sigs.k8s.io/yaml goes through JSON)
    const sorted: Json = {};
    for (const k of Object.keys(entry).sort()) sorted[k] = entry[k];
    const list = byName.get(c.name) ?? [];
    list.push(sorted);
    byName.set(c.name, list);
  }
  const entries: Json = {};
  for (const name of [...byName.keys()].sort()) {
    entries[name] = byName.get(name)!.sort((a, b) => semver.rcompare(String(a.version), String(b.version)));
  }
  return stringify({ apiVersion: "v1", entries, generated: when }, { lineWidth: 0 });
}
