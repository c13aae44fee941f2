/**
 * Chart.yaml as Helm 3 reads it (pkg/chart/metadata.go, pkg/chart/dependency.go): the fields airgap
 * needs typed, every other field kept as written so it reaches the OCI config and index.yaml unchanged.
 * Validation follows Metadata.Validate: apiVersion, name and a semantic version are required, a name
 * may not contain a path separator or "..". apiVersion v1 charts list dependencies in requirements.yaml.
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import semver from "semver";
import { parse } from "yaml";
import { ChartError } from "./errors.js";

/** Helm refuses files over 5 MiB in a chart (loader.MaxDecompressedFileSize); Chart.yaml is far smaller. */
export const MAX_CHART_FILE_BYTES = 5 * 1024 * 1024;

export interface ChartDependency {
  name: string;
  version?: string;
  repository?: string;
  alias?: string;
}

export interface ChartMetadata {
  apiVersion: string;
  name: string;
  version: string;
  appVersion?: string;
  dependencies: ChartDependency[];
  /** Chart.yaml as parsed (every key), for the OCI config and index.yaml. */
  raw: Record<string, unknown>;
}

/** Parse YAML text that must be a mapping (or empty); `what` names the file in errors. */
export function parseYamlMapping(
  text: string,
  what: string,
  schema: "core" | "failsafe" = "core",
): Record<string, unknown> {
  let data: unknown;
  try {
    data = parse(text, { uniqueKeys: false, maxAliasCount: 100, schema });
  } catch (err) {
    throw new ChartError(
      `${what} is not valid YAML: ${(err as Error).message.split("\n")[0]}`,
      what,
      "CHART_INVALID",
      {
        cause: err,
      },
    );
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== "object" || Array.isArray(data)) {
    throw new ChartError(`${what} must be a YAML mapping`, what, "CHART_INVALID");
  }
  const loop = cyclicPath(data, []);
  if (loop) {
    throw new ChartError(
      `${what} is not valid YAML for Helm: ${loop.join(".") || "the document"} contains an alias of itself`,
      what,
      "CHART_INVALID",
    );
  }
  return data as Record<string, unknown>;
}

/**
 * The path of a node that contains itself (`a: &x { b: *x }`), or undefined. The yaml package
 * builds such a structure as a cycle of objects; every walk over values (image discovery, Helm
 * coalescing, serializing) would recurse forever on it, and Helm itself refuses it.
 */
function cyclicPath(v: unknown, path: string[], open = new Set<object>()): string[] | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  if (open.has(v)) return path;
  open.add(v);
  for (const [k, child] of Object.entries(v)) {
    const found = cyclicPath(child, [...path, k], open);
    if (found) return found;
  }
  open.delete(v);
  return undefined;
}

function str(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return undefined;
}

function dependenciesOf(list: unknown, what: string): ChartDependency[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list))
    throw new ChartError(`${what}: dependencies must be a list`, what, "CHART_INVALID");
  return list.map((d, i) => {
    const name = str((d as Record<string, unknown>)?.name);
    if (!d || typeof d !== "object" || !name) {
      throw new ChartError(`${what}: dependencies[${i}] has no name`, what, "CHART_INVALID");
    }
    const o = d as Record<string, unknown>;
    const dep: ChartDependency = { name };
    const version = str(o.version);
    const repository = str(o.repository);
    const alias = str(o.alias);
    if (version) dep.version = version;
    if (repository) dep.repository = repository;
    if (alias) {
      if (!/^[a-zA-Z0-9_-]+$/.test(alias)) {
        throw new ChartError(
          `${what}: dependency ${name} has an invalid alias "${alias}"`,
          what,
          "CHART_INVALID",
        );
      }
      dep.alias = alias;
    }
    return dep;
  });
}

/**
 * Chart.yaml is parsed with YAML's failsafe schema (every scalar a string), because Helm reads it into
 * typed string fields: `appVersion: 1.10` is the string "1.10", not the number 1.1.
 */
export function parseChartYaml(text: string, what: string): Record<string, unknown> {
  return parseYamlMapping(text, what, "failsafe");
}

/** Validate parsed Chart.yaml content (and requirements.yaml for apiVersion v1). */
export function chartMetadata(
  raw: Record<string, unknown>,
  what: string,
  requirements?: Record<string, unknown>,
): ChartMetadata {
  const apiVersion = str(raw.apiVersion);
  const name = str(raw.name);
  const version = str(raw.version);
  if (!apiVersion)
    throw new ChartError(`${what}: chart.metadata.apiVersion is required`, what, "CHART_INVALID");
  if (!name) throw new ChartError(`${what}: chart.metadata.name is required`, what, "CHART_INVALID");
  if (name.includes("/") || name.includes("\\") || name.includes("..") || name.startsWith(".")) {
    throw new ChartError(`${what}: chart name "${name}" is not a valid file name`, what, "CHART_INVALID");
  }
  if (!version || !semver.valid(version)) {
    throw new ChartError(
      `${what}: chart.metadata.version "${version ?? ""}" is not a semantic version (e.g. 1.2.3)`,
      what,
      "CHART_INVALID",
    );
  }
  const deps = apiVersion === "v1" ? requirements?.dependencies : raw.dependencies;
  const meta: ChartMetadata = { apiVersion, name, version, dependencies: dependenciesOf(deps, what), raw };
  const appVersion = str(raw.appVersion);
  if (appVersion) meta.appVersion = appVersion;
  return meta;
}

async function readCapped(file: string, what: string): Promise<string | undefined> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch {
    return undefined;
  }
  if (size > MAX_CHART_FILE_BYTES) {
    throw new ChartError(
      `${what} is ${size} bytes, over Helm's 5 MiB limit for a chart file`,
      what,
      "CHART_INVALID",
    );
  }
  return await readFile(file, "utf8");
}

/** Read `<dir>/Chart.yaml` (and requirements.yaml for v1 charts); a folder without one is refused. */
export async function readChartDir(dir: string, label: string): Promise<ChartMetadata> {
  const text = await readCapped(join(dir, "Chart.yaml"), `${label}/Chart.yaml`);
  if (text === undefined) {
    throw new ChartError(
      `${label} is not a Helm chart: it has no Chart.yaml (point the chart's path at the folder that holds Chart.yaml)`,
      label,
      "CHART_NOT_FOUND",
    );
  }
  const raw = parseChartYaml(text, `${label}/Chart.yaml`);
  let requirements: Record<string, unknown> | undefined;
  if (raw.apiVersion === "v1") {
    const req = await readCapped(join(dir, "requirements.yaml"), `${label}/requirements.yaml`);
    if (req !== undefined) requirements = parseChartYaml(req, `${label}/requirements.yaml`);
  }
  return chartMetadata(raw, `${label}/Chart.yaml`, requirements);
}

/** The values key of a dependency: its alias when it has one (Helm renames the subchart), else its name. */
export function valuesKey(dep: ChartDependency): string {
  return dep.alias ?? dep.name;
}
