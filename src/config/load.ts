/**
 * Read, validate and normalize bundle and import configs. Every problem is collected and reported at once,
 * each with file:line:column, the field path and what was expected.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { type Document, isAlias, LineCounter, parseDocument, visit } from "yaml";
import type { z } from "zod";
import { ConfigError } from "../errors.js";
import { formatReference, parseReference } from "../oci/reference.js";
import { normalizeRepositoryPrefix } from "../targets/mapping.js";
import {
  type ConfigProblem,
  ConfigValidationError,
  type LocatedProblem,
  Locator,
  problemsFromIssues,
  throwProblems,
} from "./problems.js";
import {
  bundleConfigSchema,
  CARRY_KINDS,
  importConfigSchema,
  type RawBundleConfig,
  type RawImportConfig,
  type RawRegistry,
} from "./schema.js";
import type {
  BundleConfig,
  ChartSource,
  FileSpec,
  ImageSpec,
  ImportConfig,
  ProfileSource,
  RegistryConfig,
} from "./types.js";

export const DEFAULT_GEM_SOURCE = "https://rubygems.org";
export const DEFAULT_SUPERMARKET = "https://supermarket.chef.io";
const PLACEHOLDER = /\{(os|arch|variant)\}/;
/** The yaml package's alias budget (aliases × the nodes they repeat); a config needs few aliases. */
const MAX_ALIAS_EXPANSION = 1000;

interface ParsedYaml {
  data: unknown;
  locator: Locator;
}

function parseYaml(text: string, file: string): ParsedYaml {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const located: LocatedProblem[] = doc.errors.map((e) => {
      const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0]);
      return {
        file,
        line: pos.line,
        column: pos.col,
        field: "",
        message: `YAML: ${e.message.split("\n")[0]}`,
      };
    });
    throw new ConfigValidationError(located);
  }
  if (text.trim() === "" || doc.contents === null) {
    throw new ConfigValidationError([
      {
        file,
        line: 1,
        column: 1,
        field: "",
        message: "the file is empty; expected a mapping with apiVersion and kind",
      },
    ]);
  }
  return { data: toData(doc, lines, file), locator: new Locator(doc as Document.Parsed, lines, file) };
}

/**
 * The document as plain data. Aliases are expanded with a budget: a "billion laughs" file (aliases
 * of aliases, each level multiplying the size) is refused as a config error instead of exhausting
 * memory, at the line of its first alias.
 */
function toData(doc: Document, lines: LineCounter, file: string): unknown {
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_EXPANSION });
  } catch (err) {
    if (!(err instanceof ReferenceError)) throw err;
    let at = 0;
    visit(doc, (_key, node) => {
      if (!isAlias(node)) return undefined;
      at = node.range?.[0] ?? 0;
      return visit.BREAK;
    });
    const pos = lines.linePos(at);
    throw new ConfigValidationError([
      {
        file,
        line: pos.line,
        column: pos.col,
        field: "",
        message: `YAML: aliases expand to more than ${MAX_ALIAS_EXPANSION} nodes (${err.message.toLowerCase()}); write the values out instead`,
      },
    ]);
  }
}

function validate<T>(schema: z.ZodType<T>, parsed: ParsedYaml, file: string): T {
  const result = schema.safeParse(parsed.data, { reportInput: true });
  if (result.success) return result.data;
  throwProblems(problemsFromIssues(result.error.issues, schema, parsed.data), parsed.locator, file);
}

function normalizeRegistries(
  raw: RawRegistry[] | undefined,
  dir: string,
  problems: ConfigProblem[],
): RegistryConfig[] {
  const seen = new Map<string, number>();
  return (raw ?? []).map((r, i) => {
    const host = r.host.toLowerCase();
    const first = seen.get(host);
    if (first !== undefined) {
      problems.push({
        path: ["registries", i, "host"],
        message: `duplicate host "${r.host}", already at registries[${first}]`,
      });
    } else {
      seen.set(host, i);
    }
    if (r.cert !== undefined && r.key === undefined) {
      problems.push({
        path: ["registries", i],
        message: "cert needs key (the client certificate's private key)",
      });
    }
    if (r.key !== undefined && r.cert === undefined) {
      problems.push({ path: ["registries", i], message: "key needs cert (the client certificate)" });
    }
    const out: RegistryConfig = {
      host: r.host,
      insecure: r.insecure ?? false,
      plainHTTP: r.plainHTTP ?? false,
    };
    if (r.ca !== undefined) out.ca = path.resolve(dir, r.ca);
    if (r.cert !== undefined) out.cert = path.resolve(dir, r.cert);
    if (r.key !== undefined) out.key = path.resolve(dir, r.key);
    if (r.pathPrefix !== undefined) out.pathPrefix = r.pathPrefix.replace(/\/$/, "");
    return out;
  });
}

function normalizeImages(raw: RawBundleConfig, problems: ConfigProblem[]): ImageSpec[] {
  const seen = new Map<string, number>();
  return (raw.images ?? []).map((img, i) => {
    const reference = parseReference(img.ref);
    const key = formatReference(reference);
    const first = seen.get(key);
    if (first !== undefined) {
      problems.push({
        path: ["images", i, "ref"],
        message: `duplicate image ${key}, already at images[${first}]`,
      });
    } else {
      seen.set(key, i);
    }
    return {
      ref: img.ref,
      reference,
      platforms: [...(img.platforms ?? raw.platforms ?? [])],
      carry: img.carry ? [...new Set(img.carry)] : [...CARRY_KINDS],
    };
  });
}

function normalizeProfiles(raw: RawBundleConfig, dir: string, problems: ConfigProblem[]): ProfileSource[] {
  return (raw.profiles ?? []).map((p, i): ProfileSource => {
    const name = p.name === undefined ? {} : { name: p.name };
    if ("git" in p) {
      const given = (["branch", "tag", "ref"] as const).filter((k) => p[k] !== undefined);
      if (given.length !== 1) {
        problems.push({
          path: ["profiles", i],
          message:
            given.length === 0
              ? "a git profile needs one of branch, tag or ref"
              : `give only one of branch, tag or ref (found ${given.join(", ")})`,
        });
      }
      const refKind = given[0] ?? "ref";
      const out: ProfileSource = { type: "git", git: p.git, refKind, ref: p[refKind] ?? "", ...name };
      if (p.relative_path !== undefined) out.relativePath = p.relative_path;
      return out;
    }
    if ("supermarket" in p) {
      const out: ProfileSource = {
        type: "supermarket",
        supermarket: p.supermarket.replace(/^supermarket:\/\//, ""),
        url: p.url ?? DEFAULT_SUPERMARKET,
        ...name,
      };
      if (p.version !== undefined) out.version = p.version;
      return out;
    }
    if ("url" in p) {
      const out: ProfileSource = { type: "url", url: p.url, ...name };
      if (p.sha256 !== undefined) out.sha256 = p.sha256;
      return out;
    }
    if ("path" in p) {
      const out: ProfileSource = { type: "path", path: path.resolve(dir, p.path), ...name };
      if (p.allow_dependencies_from) {
        out.allowDependenciesFrom = p.allow_dependencies_from.map((d) => path.resolve(dir, d));
      }
      return out;
    }
    return { type: "oci", reference: parseReference(p.oci.replace(/^oci:\/\//, "")), ...name };
  });
}

function normalizeCharts(raw: RawBundleConfig, dir: string): ChartSource[] {
  return (raw.charts ?? []).map((c): ChartSource => {
    if ("repo" in c) return { type: "repo", repo: c.repo, name: c.name, version: c.version };
    if ("oci" in c) {
      const reference = parseReference(c.oci.slice("oci://".length));
      const { tag: _tag, digest: _digest, ...repository } = reference;
      return { type: "oci", oci: c.oci, reference: repository, version: c.version };
    }
    // charts built from source carry the images their values name unless told otherwise
    if ("git" in c) return { type: "git", git: c.git, ref: c.ref, path: c.path, images: c.images ?? "auto" };
    return { type: "path", path: path.resolve(dir, c.path), images: c.images ?? "auto" };
  });
}

function normalizeFiles(raw: RawBundleConfig, problems: ConfigProblem[]): FileSpec[] {
  const seen = new Map<string, number>();
  return (raw.files ?? []).map((f, i) => {
    const first = seen.get(f.name);
    if (first !== undefined) {
      problems.push({
        path: ["files", i, "name"],
        message: `duplicate file name "${f.name}", already at files[${first}]`,
      });
    } else {
      seen.set(f.name, i);
    }
    const perPlatform = PLACEHOLDER.test(f.url);
    const platforms = [...(f.platforms ?? (perPlatform ? (raw.platforms ?? []) : []))];
    if (perPlatform && platforms.length === 0) {
      problems.push({
        path: ["files", i, "url"],
        message: "the url uses {os}/{arch}/{variant} but no platforms are given (here or at the top level)",
      });
    }
    if (typeof f.sha256 === "string" && perPlatform && platforms.length > 1) {
      problems.push({
        path: ["files", i, "sha256"],
        message:
          "one checksum cannot match the download of several platforms; give a map of platform to checksum",
      });
    }
    if (typeof f.sha256 === "object") {
      for (const platform of Object.keys(f.sha256)) {
        if (!platforms.includes(platform)) {
          problems.push({
            path: ["files", i, "sha256", platform],
            atKey: true,
            message: `platform "${platform}" is not among this file's platforms (${platforms.join(", ") || "none"})`,
          });
        }
      }
    }
    const out: FileSpec = { name: f.name, url: f.url, platforms };
    if (f.sha256 !== undefined) out.sha256 = typeof f.sha256 === "string" ? f.sha256 : { ...f.sha256 };
    return out;
  });
}

/** Validate and normalize the text of a bundle.config.yaml; `file` names it in errors and anchors relative paths. */
export function parseBundleConfig(text: string, file: string): BundleConfig {
  const absolute = path.resolve(file);
  const dir = path.dirname(absolute);
  const parsed = parseYaml(text, file);
  const raw = validate(bundleConfigSchema, parsed, file);
  const problems: ConfigProblem[] = [];
  const config: BundleConfig = {
    file: absolute,
    dir,
    apiVersion: raw.apiVersion,
    kind: raw.kind,
    metadata: { ...raw.metadata },
    platforms: [...(raw.platforms ?? [])],
    registries: normalizeRegistries(raw.registries, dir, problems),
    verify: (raw.verify ?? []).map((v) => ({ match: v.match, key: path.resolve(dir, v.key) })),
    images: normalizeImages(raw, problems),
    ...(raw.runner
      ? {
          runner: {
            base: raw.runner.base,
            reference: parseReference(raw.runner.base),
            platforms: [...(raw.runner.platforms ?? raw.platforms ?? [])],
          },
        }
      : {}),
    profiles: normalizeProfiles(raw, dir, problems),
    charts: normalizeCharts(raw, dir),
    gems: (raw.gems ?? []).map((g) => {
      const gem: BundleConfig["gems"][number] = {
        name: g.name,
        source: g.source ?? DEFAULT_GEM_SOURCE,
        provided: [...(g.provided ?? [])],
      };
      if (g.version !== undefined) gem.version = g.version;
      if (g.platform !== undefined) gem.platform = g.platform;
      return gem;
    }),
    files: normalizeFiles(raw, problems),
  };
  if (problems.length > 0) throwProblems(problems, parsed.locator, file);
  return config;
}

async function readConfig(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT" ? "no such file" : code === "EISDIR" ? "it is a directory" : (err as Error).message;
    throw new ConfigError(`cannot read config ${file}: ${why}`, undefined, { cause: err });
  }
}

/** Load bundle.config.yaml; `raw` is the file's text, recorded in the bundle's inventory. */
export async function loadBundleConfig(file: string): Promise<{ config: BundleConfig; raw: string }> {
  const raw = await readConfig(file);
  return { config: parseBundleConfig(raw, file), raw };
}

/** Validate an import config's text; a bundle config is accepted too, and only its registries are used. */
export function parseImportConfig(text: string, file: string): ImportConfig {
  const absolute = path.resolve(file);
  const dir = path.dirname(absolute);
  const parsed = parseYaml(text, file);
  const data = parsed.data;
  if (typeof data === "object" && data !== null && (data as Record<string, unknown>).kind === "Bundle") {
    const bundle = parseBundleConfig(text, file);
    return { file: absolute, registries: bundle.registries, mappings: [] };
  }
  const raw: RawImportConfig = validate(importConfigSchema, parsed, file);
  const problems: ConfigProblem[] = [];
  const registries = normalizeRegistries(raw.registries, dir, problems);
  const seen = new Map<string, number>();
  const mappings = (raw.mappings ?? []).map((m, i) => {
    const from = normalizeRepositoryPrefix(m.from);
    const first = seen.get(from);
    if (first !== undefined) {
      problems.push({
        path: ["mappings", i, "from"],
        message: `duplicate mapping for ${from}, already at mappings[${first}]`,
      });
    } else {
      seen.set(from, i);
    }
    return { from, to: m.to };
  });
  if (problems.length > 0) throwProblems(problems, parsed.locator, file);
  return { file: absolute, registries, mappings };
}

export async function loadImportConfig(file: string): Promise<ImportConfig> {
  return parseImportConfig(await readConfig(file), file);
}
