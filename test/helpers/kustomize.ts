/**
 * A small kustomize for tests, enough for the manifests this project ships and the overlay import
 * writes: resources (files and folders), components, namespace, labels, images, patches (strategic
 * merge on kinds whose lists have no merge key, and `$patch: delete`), and configMap/secret
 * generators from files without a name hash. Anything else in a kustomization is refused, so a
 * feature the tests do not model cannot slip through unchecked. (`kubectl kustomize` renders the
 * same trees; tests must not depend on kubectl being installed.)
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseAllDocuments, parse as parseYaml } from "yaml";

export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [k: string]: unknown;
};

const KNOWN_KEYS = new Set([
  "apiVersion",
  "kind",
  "namespace",
  "labels",
  "resources",
  "components",
  "images",
  "patches",
  "secretGenerator",
  "configMapGenerator",
]);
const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding"]);

export function readObjects(file: string): K8sObject[] {
  return parseAllDocuments(readFileSync(file, "utf8"))
    .map((d) => {
      if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Merge patch: maps merge, lists and scalars replace, null deletes. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function podSpecs(o: K8sObject): Record<string, unknown>[] {
  const spec = o.spec as Record<string, unknown> | undefined;
  const template = spec?.template as { spec?: Record<string, unknown> } | undefined;
  return template?.spec ? [template.spec] : [];
}

function imageName(image: string): string {
  return image.replace(/@.*$/, "").replace(/:[^/]*$/, "");
}

export function kustomize(dir: string, kind: "Kustomization" | "Component" = "Kustomization"): K8sObject[] {
  const k = parseYaml(readFileSync(join(dir, "kustomization.yaml"), "utf8")) as Record<string, unknown>;
  for (const key of Object.keys(k)) {
    if (!KNOWN_KEYS.has(key))
      throw new Error(`${dir}/kustomization.yaml: ${key} is not modelled by the test kustomize`);
  }
  if (k.kind !== kind) throw new Error(`${dir}: expected kind ${kind}, found ${String(k.kind)}`);
  let objects: K8sObject[] = [];
  for (const r of (k.resources as string[] | undefined) ?? []) {
    const path = join(dir, r);
    objects.push(...(statSync(path).isDirectory() ? kustomize(path) : readObjects(path)));
  }
  for (const c of (k.components as string[] | undefined) ?? [])
    objects.push(...kustomize(join(dir, c), "Component"));
  for (const gen of ["configMapGenerator", "secretGenerator"] as const) {
    for (const g of (k[gen] as Record<string, unknown>[] | undefined) ?? []) {
      const opts = g.options as { disableNameSuffixHash?: boolean } | undefined;
      if (!opts?.disableNameSuffixHash)
        throw new Error(`${dir}: ${gen} ${String(g.name)} without disableNameSuffixHash`);
      const data: Record<string, string> = {};
      for (const f of g.files as string[]) {
        const text = readFileSync(join(dir, f));
        data[f.split("/").pop()!] =
          gen === "secretGenerator" ? text.toString("base64") : text.toString("utf8");
      }
      objects.push({
        apiVersion: "v1",
        kind: gen === "secretGenerator" ? "Secret" : "ConfigMap",
        metadata: { name: String(g.name) },
        ...(gen === "secretGenerator" ? { type: "Opaque" } : {}),
        data,
      });
    }
  }
  for (const p of (k.patches as { path: string }[] | undefined) ?? []) {
    for (const patch of readObjects(join(dir, p.path)) as (K8sObject & { $patch?: string })[]) {
      const match = (o: K8sObject) => o.kind === patch.kind && o.metadata.name === patch.metadata.name;
      const found = objects.filter(match);
      if (found.length !== 1) throw new Error(`${dir}/${p.path}: patch matches ${found.length} objects`);
      if (patch.$patch === "delete") objects = objects.filter((o) => !match(o));
      else objects = objects.map((o) => (match(o) ? (mergePatch(o, patch) as K8sObject) : o));
    }
  }
  for (const l of (k.labels as { pairs: Record<string, string>; includeSelectors?: boolean }[] | undefined) ??
    []) {
    if (l.includeSelectors) throw new Error(`${dir}: labels with includeSelectors are not modelled`);
    for (const o of objects) o.metadata.labels = { ...o.metadata.labels, ...l.pairs };
  }
  for (const img of (k.images as Record<string, string>[] | undefined) ?? []) {
    for (const o of objects) {
      for (const spec of podSpecs(o)) {
        for (const c of [
          ...((spec.containers as { image: string }[]) ?? []),
          ...((spec.initContainers as { image: string }[]) ?? []),
        ]) {
          if (imageName(c.image) !== img.name) continue;
          const name = img.newName ?? img.name;
          c.image = img.digest
            ? `${name}@${img.digest}`
            : `${name}:${img.newTag ?? c.image.split(":").pop()}`;
        }
      }
    }
  }
  if (typeof k.namespace === "string") {
    for (const o of objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  }
  return objects;
}

/** Every kustomization.yaml under `root`, as folders. */
export function kustomizationDirs(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name === "kustomization.yaml") out.push(dirname(join(d, e.name)));
    }
  };
  walk(root);
  return out.sort();
}
