/**
 * Where each source image lands in the target registry. Pure functions: no network, no disk.
 *
 * Default mapping: `<registry>/<prefix>/<source repository>`, e.g.
 *   docker.io/cincproject/auditor:6.8.24 → registry.internal:5000/team/cincproject/auditor:6.8.24
 * With keepSourceRegistry the source host becomes the first path component (…/team/docker.io/cincproject/auditor),
 * which keeps same-named repositories from different registries apart.
 * With flatten the whole source path becomes one component (…/team/cincproject-auditor) for registries that
 * limit repository depth.
 * Explicit mappings win over all of that: the mapping with the longest `from` that is a whole-component
 * prefix of `<source registry>/<source repository>` applies, and its `to` is the repository path under the
 * target registry, taken as written: the prefix is NOT added, so a mapping says exactly where an image goes.
 * The rest of the source path below `from` is appended to `to`. Tag and digest are always kept.
 */
import { UsageError } from "../errors.js";
import { formatReference, type Reference } from "../oci/reference.js";

const COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
/** A repository path: lowercase components joined by `/`. */
export const REPOSITORY_PATH = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const COMPONENT_RE = new RegExp(`^${COMPONENT}$`);

export interface Mapping {
  /** Source `registry/repository` or a prefix of it at a `/` boundary, e.g. `docker.io/cincproject`. */
  from: string;
  /** Repository path under the target registry, e.g. `scanner/auditor`. */
  to: string;
}

export interface MappingOptions {
  /** Target registry host[:port]. */
  registry: string;
  /** Repository path prefix under the target registry ("" or undefined for none). */
  prefix?: string;
  keepSourceRegistry?: boolean;
  flatten?: boolean;
  mappings?: Mapping[];
}

function looksLikeHost(component: string): boolean {
  return /[.:]/.test(component) || component === "localhost" || component.startsWith("[");
}

/**
 * Normalize a mapping's `from`: `cincproject/auditor` → `docker.io/cincproject/auditor`,
 * `index.docker.io/x` → `docker.io/x`. Unlike image references, `library/` is not added to one-component
 * Docker Hub names (a prefix such as `docker.io/cincproject` must stay a prefix); write official images
 * as `docker.io/library/busybox`.
 */
export function normalizeRepositoryPrefix(s: string): string {
  const fail = (why: string): never => {
    throw new UsageError(`invalid mapping source "${s}": ${why}`);
  };
  let value = s.trim();
  if (value === "") fail("it is empty");
  if (value.includes("://")) fail("write host/repository without a URL scheme");
  if (value.includes("@")) fail("a mapping names a repository, without a digest");
  value = value.replace(/\/+$/, "");
  const slash = value.indexOf("/");
  const head = slash < 0 ? value : value.slice(0, slash);
  let registry: string;
  let path: string;
  if (looksLikeHost(head)) {
    registry = head === "index.docker.io" ? "docker.io" : head;
    path = slash < 0 ? "" : value.slice(slash + 1);
  } else {
    registry = "docker.io";
    path = value;
  }
  if (path.includes(":")) fail("a mapping names a repository, without a tag");
  if (registry.lastIndexOf(":") > registry.lastIndexOf("]") && !/:[0-9]{1,5}$/.test(registry)) {
    fail(`registry port in "${registry}" is not a number`);
  }
  if (path !== "") {
    for (const part of path.split("/")) {
      if (!COMPONENT_RE.test(part)) {
        fail(
          `path component "${part}" may contain only a-z, 0-9 and single separators ".", "_", "__" or "-"`,
        );
      }
    }
  }
  return path === "" ? registry : `${registry}/${path}`;
}

/**
 * Split `--registry HOST[:PORT][/PREFIX]`: `registry.internal:5000/team/x` → registry
 * `registry.internal:5000`, prefix `team/x`.
 */
export function parseRegistryTarget(s: string): { registry: string; prefix: string } {
  const fail = (why: string): never => {
    throw new UsageError(`invalid target registry "${s}": ${why}`);
  };
  let value = s.trim();
  if (value === "") fail("it is empty");
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(value);
  if (scheme)
    fail(
      `write HOST[:PORT][/PREFIX] without "${scheme[1]}://" (for a plain-HTTP registry pass --plain-http)`,
    );
  value = value.replace(/\/+$/, "");
  const slash = value.indexOf("/");
  const registry = slash < 0 ? value : value.slice(0, slash);
  const prefix = slash < 0 ? "" : value.slice(slash + 1);
  if (!/^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$/.test(registry)) {
    fail(`"${registry}" is not host[:port]`);
  }
  if (prefix !== "" && !REPOSITORY_PATH.test(prefix)) {
    fail(`prefix "${prefix}" must be lowercase path components of a-z, 0-9, ".", "_" or "-"`);
  }
  return { registry, prefix };
}

function joinPath(...parts: (string | undefined)[]): string {
  return parts.filter((p): p is string => p !== undefined && p !== "").join("/");
}

/** The explicit mapping that applies to `registry/repository`, if any: longest matching `from` wins. */
export function findMapping(
  source: Reference,
  mappings: Mapping[] | undefined,
): { mapping: Mapping; rest: string } | undefined {
  const full = `${source.registry}/${source.repository}`;
  let best: { mapping: Mapping; rest: string; length: number } | undefined;
  for (const mapping of mappings ?? []) {
    const from = normalizeRepositoryPrefix(mapping.from);
    let rest: string | undefined;
    if (full === from) rest = "";
    else if (full.startsWith(`${from}/`)) rest = full.slice(from.length + 1);
    if (rest === undefined) continue;
    if (!best || from.length > best.length) best = { mapping, rest, length: from.length };
  }
  return best && { mapping: best.mapping, rest: best.rest };
}

/** The target reference for a source reference; tag and digest are kept as they are. */
export function mapReference(source: Reference, opts: MappingOptions): Reference {
  const prefix = (opts.prefix ?? "").replace(/^\/+|\/+$/g, "");
  let repository: string;
  const explicit = findMapping(source, opts.mappings);
  if (explicit) {
    repository = joinPath(explicit.mapping.to.replace(/^\/+|\/+$/g, ""), explicit.rest);
  } else {
    // A port's colon is not allowed in a repository path component; it becomes "-".
    const host = opts.keepSourceRegistry ? sourceHostComponent(source.registry) : undefined;
    const path = joinPath(host, source.repository);
    repository = joinPath(prefix, opts.flatten ? path.replaceAll("/", "-") : path);
  }
  if (!REPOSITORY_PATH.test(repository)) {
    throw new UsageError(
      `cannot map ${formatReference(source)}: target repository "${repository}" is not a valid repository path`,
    );
  }
  const target: Reference = { registry: opts.registry, repository };
  if (source.tag !== undefined) target.tag = source.tag;
  if (source.digest !== undefined) target.digest = source.digest;
  return target;
}

/** The source host as one repository path component: `127.0.0.1:5000` → `127.0.0.1-5000`. */
function sourceHostComponent(registry: string): string {
  return registry
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, "");
}

export interface MappedPair {
  source: string;
  target: string;
  digest: string;
}

/**
 * Two different sources that land on the same target tag with different content would overwrite each
 * other; report each such target tag once, naming every source. Same content from two sources is fine,
 * and a target named only by digest cannot collide.
 */
export function findCollisions(pairs: MappedPair[]): string[] {
  const byTag = new Map<string, MappedPair[]>();
  for (const pair of pairs) {
    const tagged = taggedName(pair.target);
    if (tagged === undefined) continue;
    const list = byTag.get(tagged) ?? [];
    list.push(pair);
    byTag.set(tagged, list);
  }
  const messages: string[] = [];
  for (const [target, list] of byTag) {
    if (new Set(list.map((p) => p.digest)).size < 2) continue;
    const sources = [...new Set(list.map((p) => `${p.source} (${p.digest})`))].sort();
    messages.push(`${target} would receive different content from ${sources.join(", ")}`);
  }
  return messages.sort();
}

/** `host/repo:tag` for a target with a tag (a pinned digest dropped), undefined for digest-only targets. */
function taggedName(target: string): string | undefined {
  const name = target.split("@")[0]!;
  return name.lastIndexOf(":") > name.lastIndexOf("/") ? name : undefined;
}
