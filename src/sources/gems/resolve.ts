/**
 * Resolves `gems:` config entries through the RubyGems compact index (`SOURCE/info/NAME`) into the
 * exact gems to carry: every runtime dependency, transitively, except the `provided:` gems (which the
 * target already has) and whatever only they need. Each gem gets the highest version that satisfies
 * every requirement on it, the way `gem install` picks; there is no backtracking, so when two
 * requirements cannot both hold the error names both and who asked, and the user settles it by adding
 * a `gems:` entry that pins one of the gems.
 */
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { inflateSync } from "node:zlib";
import pLimit from "p-limit";
import type { GemSpec } from "../../config/types.js";
import { AirgapError, ConfigError, IntegrityError, RemoteError } from "../../errors.js";
import type { RetryPolicy } from "../../oci/registry/retry.js";
import { redactSecrets } from "../../redact.js";
import type { HttpOptions } from "../profiles/http.js";
import {
  CompactIndexFormatError,
  type InfoEntry,
  isGemName,
  isGemPlatform,
  parseInfo,
  versionAndPlatform,
} from "./compact-index.js";
import { downloadTo, type Fetched, getText } from "./fetch.js";
import {
  compareGemVersions,
  formatGemConstraint,
  type GemConstraint,
  gemVersionMatches,
  parseGemRequirement,
  parseGemVersion,
  requirementAllowsPrerelease,
} from "./gem-version.js";

/** Gem resolution failures (missing gem, conflicting requirements, bad index). */
export class GemError extends AirgapError {
  constructor(
    message: string,
    readonly item?: string,
    code = "GEM",
    options?: { cause?: unknown },
  ) {
    super(message, code, options);
  }
}

export interface ResolvedGem {
  name: string;
  version: string;
  /** "ruby" for pure-Ruby gems, else the platform (x86_64-linux, java, ...). */
  platform: string;
  /** The gem server it came from (no trailing slash). */
  source: string;
  /** sha256 of the .gem, as the compact index lists it and as downloaded. */
  sha256: string;
  size: number;
  /** The .gem on disk. */
  file: string;
  /** `quick/Marshal.4.8/NAME-VERSION.gemspec.rz`: the index vouches for nothing here, so sha256 is as seen. */
  gemspec: { file: string; sha256: string; size: number };
  /** Runtime dependencies, as the index lists them; requirement as RubyGems writes it (">= 1.0, < 2"). */
  dependencies: { name: string; requirement: string }[];
  /** Names of the carried gems that depend on this one; empty for a gem the config names. */
  requiredBy: string[];
  /**
   * Gems this one needs that the target provides: its `provided:` dependencies and, as the index
   * knows them, their own dependencies. The published source answers for these names with an empty
   * info file, so RubyGems takes the installed ones instead of failing on a 404.
   */
  providedTree?: string[];
  /** Required Ruby / RubyGems versions, when the index names them. */
  ruby?: string[];
  rubygems?: string[];
}

export interface ResolveGemsContext {
  /** Folder the .gem and .gemspec.rz files are written to. */
  workDir: string;
  signal?: AbortSignal;
  /** TLS and headers for the gem servers, as profile HTTP sources take them. */
  http?: HttpOptions;
  /** Parallel index reads and downloads; default 4. */
  concurrency?: number;
  /** How often and how patiently to try again after a dropped connection, 5xx or 429. */
  retry?: RetryPolicy;
}

/** How gem servers are reached. */
interface Net {
  http: HttpOptions;
  retry?: RetryPolicy;
}

/** An info file larger than this is refused (rubygems.org's largest are a few hundred KiB). */
export const MAX_INFO_BYTES = 16 * 1024 * 1024;
/** A .gemspec.rz larger than this is refused (the index vouches for nothing there; real ones are KiBs). */
export const MAX_GEMSPEC_BYTES = 16 * 1024 * 1024;
/** A .gem larger than this is refused while it streams, before its checksum could be compared. */
export const MAX_GEM_BYTES = 2 * 1024 * 1024 * 1024;
/** Re-decisions before resolution gives up; only requirement cycles between versions get near it. */
const MAX_STEPS = 10_000;

interface Requirement {
  constraints: GemConstraint[];
  /** The full name of the gem that asked ("train-k8s-container-1.3.0"), or null for the config. */
  by: string | null;
  /** For messages: "the config" or "NAME VERSION". */
  label: string;
}

interface Origin {
  source: string;
  platform?: string;
}

function normalizeSource(url: string): string {
  return url.replace(/\/+$/, "");
}

/** A URL fit for messages and the inventory: no credentials, no trailing slash. */
function shown(url: string): string {
  return normalizeSource(redactSecrets(url));
}

function fullName(name: string, e: InfoEntry): string {
  return `${name}-${versionAndPlatform(e.version, e.platform)}`;
}

function describe(reqs: readonly Requirement[]): string {
  return reqs.map((r) => `"${r.constraints.map(formatGemConstraint).join(", ")}" (${r.label})`).join(" and ");
}

export async function resolveGems(
  specs: readonly GemSpec[],
  ctx: ResolveGemsContext,
): Promise<ResolvedGem[]> {
  if (specs.length === 0) return [];
  const http: HttpOptions = { ...ctx.http };
  if (ctx.signal) http.signal = ctx.signal;
  const net: Net = { http };
  if (ctx.retry) net.retry = ctx.retry;
  const limit = pLimit(ctx.concurrency ?? 4);

  const requested = new Set(specs.map((s) => s.name));
  // What the target already has, unless the config asks for that gem itself.
  const provided = new Set(specs.flatMap((s) => s.provided).filter((p) => !requested.has(p)));

  const origins = new Map<string, Origin>();
  const reqs = new Map<string, Requirement[]>();
  for (const spec of specs) {
    if (!isGemName(spec.name)) throw new ConfigError(`gems: "${spec.name}" is not a gem name`);
    if (spec.platform !== undefined && !isGemPlatform(spec.platform)) {
      throw new ConfigError(`gems: ${spec.name}: "${spec.platform}" is not a gem platform`);
    }
    let constraints: GemConstraint[];
    try {
      constraints = parseGemRequirement(spec.version ?? "");
    } catch (err) {
      throw new ConfigError(`gems: ${spec.name}: ${(err as Error).message}`, undefined, { cause: err });
    }
    if (!origins.has(spec.name)) {
      const origin: Origin = { source: normalizeSource(spec.source) };
      if (spec.platform !== undefined) origin.platform = spec.platform;
      origins.set(spec.name, origin);
    }
    const list = reqs.get(spec.name) ?? [];
    list.push({ constraints, by: null, label: `the config, gems: ${spec.name}` });
    reqs.set(spec.name, list);
  }

  const infos = new Map<string, InfoEntry[]>();
  const loadInfo = async (name: string): Promise<void> => {
    if (infos.has(name)) return;
    const origin = origins.get(name) as Origin;
    const neededBy = describeNeeders(reqs.get(name) ?? []);
    const entries = await fetchInfo(name, origin.source, net);
    if (entries === null) {
      throw new GemError(
        `gem ${name} (${neededBy}) is not in the gem source ${shown(origin.source)}: ${shown(origin.source)}/info/${name} answered HTTP 404`,
        name,
        "GEM_NOT_FOUND",
      );
    }
    if (entries.length === 0) {
      throw new GemError(
        `gem ${name} (${neededBy}) has no versions in the gem source ${shown(origin.source)}`,
        name,
        "GEM_NOT_FOUND",
      );
    }
    infos.set(name, entries);
  };

  const candidatesOf = (name: string): InfoEntry[] => {
    const entries = infos.get(name) as InfoEntry[];
    const platform = origins.get(name)?.platform;
    const byVersion = new Map<string, InfoEntry>();
    for (const e of entries) {
      if (e.platform !== "ruby" && e.platform !== platform) continue;
      const held = byVersion.get(e.version);
      // the asked-for platform's build beats the pure-Ruby one of the same version
      if (!held || (held.platform === "ruby" && e.platform !== "ruby")) byVersion.set(e.version, e);
    }
    return [...byVersion.values()].sort((a, b) => compareGemVersions(b.version, a.version));
  };

  const chosen = new Map<string, InfoEntry>();
  const queue: string[] = [...requested];
  const enqueue = (name: string) => {
    if (!queue.includes(name)) queue.push(name);
  };

  const retract = (name: string, entry: InfoEntry) => {
    const by = fullName(name, entry);
    for (const dep of entry.dependencies) {
      const list = reqs.get(dep.name);
      if (!list) continue;
      const kept = list.filter((r) => r.by !== by);
      if (kept.length !== list.length) {
        reqs.set(dep.name, kept);
        enqueue(dep.name);
      }
    }
  };

  let steps = 0;
  // Conflicts put off in a row: a conflict may only come from a requirement of a version that a
  // gem still waiting in the queue is about to leave, so it is decided last; it is only an error
  // once nothing else in the queue changes anything.
  let putOff = 0;
  while (queue.length > 0) {
    if (++steps > MAX_STEPS) {
      throw new GemError(
        `gem resolution did not settle after ${MAX_STEPS} steps; pin the gems involved with gems: entries`,
      );
    }
    // read every index the queue needs at once, then decide one gem at a time
    await Promise.all(
      queue
        .filter((n) => !infos.has(n) && (reqs.get(n)?.length ?? 0) > 0)
        .map((n) => limit(() => loadInfo(n))),
    );
    const name = queue.shift() as string;
    const onName = reqs.get(name) ?? [];
    const previous = chosen.get(name);
    if (onName.length === 0) {
      // nobody needs it any more (the gem that asked for it now has another version)
      if (previous) {
        chosen.delete(name);
        retract(name, previous);
        putOff = 0;
      }
      continue;
    }
    const candidates = candidatesOf(name);
    const allConstraints = onName.flatMap((r) => r.constraints);
    const allowPre = requirementAllowsPrerelease(allConstraints);
    const pick = candidates.find((c) => gemVersionMatches(c.version, allConstraints, allowPre));
    if (!pick && putOff < queue.length) {
      putOff++;
      queue.push(name);
      continue;
    }
    if (!pick)
      throw conflictError(
        name,
        onName,
        candidates,
        infos.get(name) as InfoEntry[],
        origins.get(name) as Origin,
      );
    if (previous && previous.version === pick.version && previous.platform === pick.platform) continue;
    if (previous) retract(name, previous);
    chosen.set(name, pick);
    putOff = 0;
    const by = fullName(name, pick);
    const origin = origins.get(name) as Origin;
    for (const dep of pick.dependencies) {
      if (provided.has(dep.name)) continue;
      let constraints: GemConstraint[];
      try {
        constraints = parseGemRequirement(dep.requirement);
      } catch (err) {
        throw new IntegrityError(
          "MALFORMED",
          `the compact index of gem ${name} ${pick.version} lists dependency ${dep.name} with a bad requirement: ${(err as Error).message}`,
          name,
          { cause: err },
        );
      }
      if (!origins.has(dep.name)) origins.set(dep.name, origin);
      const list = reqs.get(dep.name) ?? [];
      list.push({
        constraints,
        by,
        label: `required by ${name} ${versionAndPlatform(pick.version, pick.platform)}`,
      });
      reqs.set(dep.name, list);
      enqueue(dep.name);
    }
  }

  // what the config reaches through the chosen versions, with who depends on whom
  const requiredBy = new Map<string, Set<string>>();
  const walk = [...requested];
  for (const name of requested) requiredBy.set(name, new Set());
  while (walk.length > 0) {
    const name = walk.shift() as string;
    const entry = chosen.get(name) as InfoEntry;
    for (const dep of entry.dependencies) {
      if (provided.has(dep.name)) continue;
      if (!requiredBy.has(dep.name)) {
        requiredBy.set(dep.name, new Set());
        walk.push(dep.name);
      }
      if (!requested.has(dep.name)) requiredBy.get(dep.name)?.add(name);
    }
  }

  const providedTrees = await walkProvided(
    [...requiredBy.keys()].map((name) => ({
      entry: chosen.get(name) as InfoEntry,
      origin: origins.get(name) as Origin,
    })),
    provided,
    (name, source) => limit(() => fetchInfo(name, source, net)),
  );

  await mkdir(ctx.workDir, { recursive: true });
  const names = [...requiredBy.keys()].sort();
  const settled = await Promise.allSettled(
    names.map((name) =>
      limit(async () => {
        const entry = chosen.get(name) as InfoEntry;
        const origin = origins.get(name) as Origin;
        const needers = [...(requiredBy.get(name) ?? [])].sort();
        const gem = await fetchGem(name, entry, origin.source, needers, ctx.workDir, net);
        const tree = new Set(entry.dependencies.flatMap((d) => providedTrees.get(d.name) ?? []));
        if (tree.size > 0) gem.providedTree = [...tree].sort();
        return gem;
      }),
    ),
  );
  const failed = settled.find((r) => r.status === "rejected");
  if (failed) {
    // no half-downloaded set: a caller that retries starts clean
    await Promise.all(
      settled.flatMap((r) =>
        r.status === "fulfilled"
          ? [rm(r.value.file, { force: true }), rm(r.value.gemspec.file, { force: true })]
          : [],
      ),
    );
    throw failed.reason;
  }
  return settled.map((r) => (r as PromiseFulfilledResult<ResolvedGem>).value);
}

/** The entries of `SOURCE/info/NAME`, or null when the source does not have the gem (HTTP 404/410). */
async function fetchInfo(name: string, source: string, net: Net): Promise<InfoEntry[] | null> {
  const url = `${source}/info/${name}`;
  let text: string;
  try {
    text = await getText(url, { ...net, maxBytes: MAX_INFO_BYTES, what: `compact index of gem ${name}` });
  } catch (err) {
    if (err instanceof RemoteError && (err.status === 404 || err.status === 410)) return null;
    throw err;
  }
  try {
    return parseInfo(text);
  } catch (err) {
    if (err instanceof CompactIndexFormatError) {
      throw new IntegrityError(
        "MALFORMED",
        `${shown(url)} is not a compact index info file: ${err.message}`,
        name,
        {
          cause: err,
        },
      );
    }
    throw err;
  }
}

/**
 * Names of the gems under each `provided:` gem the carried gems depend on: the provided gem and,
 * through its newest version in the index, everything it needs. RubyGems asks the gem source about
 * every one of them even when they are installed, and fails on a 404, so the published source
 * answers for them with an empty info file. The target's versions may differ from the newest;
 * the names are what counts, and they rarely change.
 */
async function walkProvided(
  carried: readonly { entry: InfoEntry; origin: Origin }[],
  provided: ReadonlySet<string>,
  fetch: (name: string, source: string) => Promise<InfoEntry[] | null>,
): Promise<Map<string, string[]>> {
  const depsOf = new Map<string, string[]>();
  const roots = new Map<string, Origin>();
  for (const { entry, origin } of carried) {
    for (const d of entry.dependencies)
      if (provided.has(d.name) && !roots.has(d.name)) roots.set(d.name, origin);
  }
  let wave = [...roots.entries()];
  const seen = new Set(roots.keys());
  while (wave.length > 0) {
    const next: [string, Origin][] = [];
    await Promise.all(
      wave.map(async ([name, origin]) => {
        const entries = (await fetch(name, origin.source)) ?? [];
        const newest = entries
          .filter((e) => e.platform === "ruby" || e.platform === origin.platform)
          .filter((e) => !parseGemVersion(e.version).prerelease)
          .sort((a, b) => compareGemVersions(b.version, a.version))[0];
        const deps = newest ? newest.dependencies.map((d) => d.name) : [];
        depsOf.set(name, deps);
        for (const d of deps) {
          if (!seen.has(d)) {
            seen.add(d);
            next.push([d, origin]);
          }
        }
      }),
    );
    wave = next;
  }
  const trees = new Map<string, string[]>();
  for (const root of roots.keys()) {
    const tree = new Set<string>([root]);
    const todo = [root];
    while (todo.length > 0) {
      for (const d of depsOf.get(todo.pop() as string) ?? []) {
        if (!tree.has(d)) {
          tree.add(d);
          todo.push(d);
        }
      }
    }
    trees.set(root, [...tree]);
  }
  return trees;
}

function describeNeeders(reqs: readonly Requirement[]): string {
  if (reqs.length === 0) return "nothing";
  return [...new Set(reqs.map((r) => r.label))].join(", ");
}

function conflictError(
  name: string,
  reqs: readonly Requirement[],
  candidates: readonly InfoEntry[],
  all: readonly InfoEntry[],
  origin: Origin,
): GemError {
  const source = shown(origin.source);
  if (candidates.length === 0) {
    const platforms = [...new Set(all.map((e) => e.platform))].join(", ");
    return new GemError(
      `gem ${name} (${describeNeeders(reqs)}) has no ${origin.platform ? `${origin.platform} or ` : ""}ruby-platform release in ${source} (platforms there: ${platforms}); set platform: on the gems: entry`,
      name,
      "GEM_CONFLICT",
    );
  }
  const available = candidates
    .slice(0, 12)
    .map((c) => c.version)
    .join(", ");
  const listing = `versions in ${source}: ${available}${candidates.length > 12 ? ", ..." : ""}`;
  const fits = (list: readonly Requirement[]) => {
    const constraints = list.flatMap((r) => r.constraints);
    const pre = requirementAllowsPrerelease(constraints);
    return candidates.some((c) => gemVersionMatches(c.version, constraints, pre));
  };
  for (const r of reqs) {
    if (!fits([r])) {
      return new GemError(
        `no version of gem ${name} satisfies ${describe([r])}; ${listing}`,
        name,
        "GEM_CONFLICT",
      );
    }
  }
  for (let i = 0; i < reqs.length; i++) {
    for (let j = i + 1; j < reqs.length; j++) {
      const pair = [reqs[i] as Requirement, reqs[j] as Requirement];
      if (!fits(pair)) {
        return new GemError(
          `gem ${name}: no version satisfies both ${describe(pair)}; ${listing}. Pin one of the gems that ask with a gems: entry`,
          name,
          "GEM_CONFLICT",
        );
      }
    }
  }
  return new GemError(
    `gem ${name}: no version satisfies all of ${describe(reqs)}; ${listing}`,
    name,
    "GEM_CONFLICT",
  );
}

/**
 * The index vouches for nothing in a .gemspec.rz, so at least make sure it is what RubyGems will
 * take it for: a deflated Marshal dump of a Gem::Specification that names this gem and version.
 */
async function checkGemspec(file: string, name: string, version: string, url: string): Promise<void> {
  let marshal: Buffer;
  try {
    marshal = inflateSync(await readFile(file), { maxOutputLength: MAX_GEMSPEC_BYTES * 4 });
  } catch (err) {
    throw new IntegrityError(
      "MALFORMED",
      `${shown(url)} is not a deflated gemspec: ${(err as Error).message}`,
      name,
      {
        cause: err,
      },
    );
  }
  const isSpec =
    marshal[0] === 4 &&
    marshal[1] === 8 &&
    marshal.includes("Gem::Specification") &&
    marshal.includes(name) &&
    marshal.includes(version);
  if (!isSpec) {
    throw new IntegrityError(
      "MALFORMED",
      `${shown(url)} is not the gemspec of gem ${name} ${version} (a Marshal-dumped Gem::Specification naming both)`,
      name,
    );
  }
}

async function fetchGem(
  name: string,
  entry: InfoEntry,
  source: string,
  requiredBy: string[],
  workDir: string,
  net: Net,
): Promise<ResolvedGem> {
  const full = fullName(name, entry);
  const gemUrl = `${source}/gems/${full}.gem`;
  const gemFile = join(workDir, `${full}.gem`);
  const gem = await downloadTo(gemUrl, gemFile, {
    ...net,
    what: `gem ${full}`,
    maxBytes: MAX_GEM_BYTES,
    expect: { sha256: entry.checksum, vouchedBy: `the compact index ${shown(source)}/info/${name}` },
  });
  // RubyGems' installer reads the spec from here before it downloads the .gem
  const specUrl = `${source}/quick/Marshal.4.8/${full}.gemspec.rz`;
  let spec: Fetched;
  try {
    spec = await downloadTo(specUrl, join(workDir, `${full}.gemspec.rz`), {
      ...net,
      what: `gemspec of gem ${full}`,
      maxBytes: MAX_GEMSPEC_BYTES,
    });
    await checkGemspec(spec.path, name, entry.version, specUrl);
  } catch (err) {
    await rm(gem.path, { force: true });
    await rm(join(workDir, `${full}.gemspec.rz`), { force: true });
    throw err;
  }
  const resolved: ResolvedGem = {
    name,
    version: entry.version,
    platform: entry.platform,
    source: shown(source),
    sha256: gem.sha256,
    size: gem.size,
    file: gem.path,
    gemspec: { file: spec.path, sha256: spec.sha256, size: spec.size },
    dependencies: entry.dependencies.map((d) => ({
      name: d.name,
      requirement: (d.requirement.length === 0 ? [">= 0"] : d.requirement).join(", "),
    })),
    requiredBy,
  };
  if (entry.ruby) resolved.ruby = entry.ruby;
  if (entry.rubygems) resolved.rubygems = entry.rubygems;
  return resolved;
}
