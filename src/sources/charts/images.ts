/**
 * The container images a chart's values name, found the way its templates most often use them:
 * - `image: "registry/repo:tag"` (a string under a key named `image`);
 * - `{repository, tag | digest}` maps (`repository: org/app`, `tag: "1.2"`);
 * - `{registry, repository, tag}` maps (Bitnami's form; `digest` when set wins over `tag`).
 * A map without a tag or digest takes the chart's appVersion, as `{{ .Values.image.tag | default
 * .Chart.AppVersion }}` templates do.
 *
 * Subcharts see their own values.yaml overridden by the parent's values under the subchart's key
 * (alias or name), recursively (Helm's coalescing: maps merge, anything else replaces, null deletes).
 * Discovery runs on those effective values, so an image the parent overrides is the one found.
 * `global:` values and images computed inside templates are not seen; list those under `images:`.
 */
import { formatReference, parseReference, type Reference } from "../../oci/reference.js";
import type { ChartTree } from "./archive.js";

export interface DiscoveredImage {
  /** The normalized reference, e.g. docker.io/library/busybox:1.37. */
  ref: string;
  /** Values keys from the top chart down: [topChartName, subchartKey, …]. */
  chartPath: string[];
  /** Where the image is in that chart's values (the string itself, or the map holding repository). */
  valuesPath: (string | number)[];
  form: "string" | "map";
  latest: boolean;
  /** For the map form: the keys the map has, as written, so an override writes the same shape. */
  fields?: { registry?: string; repository: string; tag?: string; digest?: string };
  /**
   * When `valuesPath` runs through a list: the path of the outermost list and its effective content.
   * Helm replaces lists as a whole, so an override must write the whole list.
   */
  list?: { path: (string | number)[]; value: unknown[] };
}

type Values = Record<string, unknown>;

function isMap(v: unknown): v is Values {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Helm's coalescing of a parent's values over a subchart's defaults. */
export function coalesce(defaults: unknown, override: unknown): unknown {
  if (override === undefined) return structuredClone(defaults);
  if (isMap(defaults) && isMap(override)) {
    const out: Values = {};
    for (const [k, v] of Object.entries(defaults)) out[k] = structuredClone(v);
    for (const [k, v] of Object.entries(override)) {
      if (v === null) delete out[k];
      else out[k] = coalesce(defaults[k], v);
    }
    return out;
  }
  return structuredClone(override);
}

function scalar(v: unknown): string | undefined {
  if (typeof v === "string") return v.trim() === "" ? undefined : v.trim();
  if (typeof v === "number") return String(v);
  return undefined;
}

function tryReference(s: string): Reference | undefined {
  try {
    return parseReference(s);
  } catch {
    return undefined;
  }
}

interface Found {
  ref: Reference;
  form: "string" | "map";
  path: (string | number)[];
  fields?: DiscoveredImage["fields"];
}

function walkValues(
  v: unknown,
  path: (string | number)[],
  appVersion: string | undefined,
  out: Found[],
): void {
  if (Array.isArray(v)) {
    for (const [i, item] of v.entries()) walkValues(item, [...path, i], appVersion, out);
    return;
  }
  if (!isMap(v)) return;
  const repository = scalar(v.repository);
  const key = path[path.length - 1];
  const looksLikeImage =
    repository !== undefined &&
    ("tag" in v || "digest" in v || "registry" in v || (typeof key === "string" && /image/i.test(key)));
  if (looksLikeImage) {
    const registry = scalar(v.registry);
    const digest = scalar(v.digest);
    const tag = scalar(v.tag) ?? (digest ? undefined : appVersion);
    let text = registry ? `${registry}/${repository}` : repository;
    if (tag) text += `:${tag}`;
    if (digest) text += `@${digest}`;
    const ref = tryReference(text);
    if (ref) {
      const fields: NonNullable<DiscoveredImage["fields"]> = { repository };
      if ("registry" in v) fields.registry = registry ?? "";
      if ("tag" in v || tag) fields.tag = scalar(v.tag) ?? "";
      if ("digest" in v) fields.digest = digest ?? "";
      out.push({ ref, form: "map", path, fields });
      return;
    }
  }
  for (const [k, child] of Object.entries(v)) {
    if (k === "image" && typeof child === "string") {
      const ref = child.trim() ? tryReference(child.trim()) : undefined;
      if (ref) out.push({ ref, form: "string", path: [...path, k] });
      continue;
    }
    walkValues(child, [...path, k], appVersion, out);
  }
}

function listOn(values: unknown, path: (string | number)[]): DiscoveredImage["list"] {
  let cur: unknown = values;
  for (let i = 0; i < path.length; i++) {
    if (Array.isArray(cur)) return { path: path.slice(0, i), value: structuredClone(cur) };
    cur = (cur as Values)?.[path[i] as string];
  }
  return undefined;
}

/**
 * The images a chart tree's values name, in the chart and every subchart, with the values each
 * effectively gets. `warnings` receives one line per `:latest` (and per untagged) image.
 */
export function discoverImages(tree: ChartTree, warnings: string[] = []): DiscoveredImage[] {
  const out: DiscoveredImage[] = [];
  const visit = (node: ChartTree, values: unknown, chartPath: string[]) => {
    const keysOf = (sub: ChartTree) => {
      const deps = node.metadata.dependencies.filter((d) => d.name === sub.metadata.name);
      return deps.length > 0 ? deps.map((d) => d.alias ?? d.name) : [sub.metadata.name];
    };
    // values under a subchart's key are that subchart's: found when it is visited, with its path
    const subKeys = new Set(node.subcharts.flatMap(keysOf));
    const own = isMap(values)
      ? Object.fromEntries(Object.entries(values).filter(([k]) => !subKeys.has(k)))
      : values;
    const found: Found[] = [];
    walkValues(own, [], node.metadata.appVersion, found);
    for (const f of found) {
      const latest = f.ref.tag === "latest" && !f.ref.digest;
      const img: DiscoveredImage = {
        ref: formatReference(f.ref),
        chartPath,
        valuesPath: f.path,
        form: f.form,
        latest,
      };
      if (f.fields) img.fields = f.fields;
      const list = listOn(values, f.path);
      if (list) img.list = list;
      if (latest) {
        warnings.push(
          `chart ${chartPath.join("/")}: ${f.path.join(".")} names ${img.ref}; ":latest" moves, so the bundle pins the digest it had when it was created`,
        );
      }
      out.push(img);
    }
    const parentValues = isMap(values) ? values : {};
    for (const sub of node.subcharts) {
      for (const key of keysOf(sub)) {
        visit(sub, coalesce(sub.values, parentValues[key]), [...chartPath, key]);
      }
    }
  };
  visit(tree, tree.values, [tree.metadata.name]);
  return out;
}
