/**
 * Package a chart folder the way `helm dependency build` + `helm package` would, but reproducibly.
 *
 * Layout (Helm 3 pkg/chart/loader/directory.go + pkg/chartutil/save.go): every file of the folder
 * that `.helmignore` does not exclude, under `NAME/` (NAME from Chart.yaml, not the folder's name),
 * regular files only, no directory entries, mode 0644, a UTF-8 byte order mark removed, at most
 * 5 MiB a file. Symbolic links are followed as Helm does, but only while they stay inside the
 * boundary (the git checkout, or the config folder for `path:` charts): a link out is refused.
 *
 * Dependencies are built first, in the order Chart.yaml lists them, and placed as
 * `NAME/charts/DEP-VERSION.tgz` — what `helm dependency build` leaves in charts/. (`helm package`
 * would re-expand them into `NAME/charts/DEP/` folders; Helm loads both forms the same way, and a
 * packaged dependency keeps its own digest.) `file://` dependencies are packaged recursively by the
 * same rules; `https://` ones come from their Helm repository; `oci://` ones from `pullOci`.
 * A `file://` dependency outside the boundary, or one that leads back to a chart being built, is refused.
 *
 * Reproducible: sorted entries (Chart.yaml, Chart.lock, values.yaml, values.schema.json first, as
 * Helm writes them, then the rest in byte order), mtime 0, no owners, gzip without a timestamp or
 * file name. The same tree always gives the same bytes.
 */

import { createWriteStream } from "node:fs";
import {
  chmod,
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  realpath,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import * as tar from "tar";
import { IntegrityError } from "../../errors.js";
import { Sha256Meter } from "../../oci/digest.js";
import {
  type ChartDependency,
  type ChartMetadata,
  MAX_CHART_FILE_BYTES,
  readChartDir,
} from "./chart-yaml.js";
import { ChartError } from "./errors.js";
import { HelmIgnore } from "./helmignore.js";
import { satisfiesHelm } from "./versions.js";

/** Helm's limit on a whole chart (loader.MaxDecompressedChartSize). */
export const MAX_CHART_BYTES = 100 * 1024 * 1024;
const FIXED_MTIME = new Date(0);
const FIRST = ["Chart.yaml", "Chart.lock", "values.yaml", "values.schema.json"];
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

export interface PackagedDependency {
  name: string;
  version: string;
  /** The values key of the subchart (alias or name). */
  key: string;
  /** Where it came from: `file://…` as written, the repository URL, or the oci:// reference. */
  repository: string;
  /** How it was pinned: a folder's package sha256, or the repository's digest. */
  sha256: string;
  dependencies: PackagedDependency[];
}

export interface PackagedChart {
  name: string;
  version: string;
  metadata: ChartMetadata;
  file: string;
  sha256: string;
  size: number;
  dependencies: PackagedDependency[];
}

/** A dependency fetched from elsewhere (Helm repository, OCI registry): a packaged .tgz on disk. */
export interface FetchedDependency {
  file: string;
  name: string;
  version: string;
  sha256: string;
  /** For charts pulled from a registry: the manifest they were pulled by. */
  manifestDigest?: string;
}

export interface PackageContext {
  /** Real path every file and file:// dependency must stay inside. */
  boundary: string;
  /** How to name the boundary in errors: "the repository", "the config folder". */
  boundaryName: string;
  /** Packaged charts are written below this folder. */
  outDir: string;
  signal?: AbortSignal;
  /** Fetch an `https://` dependency from its Helm repository. */
  fetchRepo: (dep: ChartDependency & { repository: string }) => Promise<FetchedDependency>;
  /** Fetch an `oci://` dependency; without it such dependencies are refused. */
  pullOci?: (dep: ChartDependency & { repository: string }) => Promise<FetchedDependency>;
  /** Names charts in messages: paths relative to the boundary. */
  label?: (abs: string) => string;
  /** Filled as charts are packaged, dependencies before the charts that need them. */
  built?: string[];
}

export function inside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel === "" || (rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

function labelOf(ctx: PackageContext, abs: string): string {
  if (ctx.label) return ctx.label(abs);
  const rel = relative(ctx.boundary, abs).split(sep).join("/");
  return rel === "" ? "." : rel;
}

interface ChartFile {
  /** Path inside the chart, `/`-separated. */
  rel: string;
  abs: string;
}

/** The files Helm would load from `root`, after .helmignore; refuses links out of the boundary. */
async function listChartFiles(root: string, ctx: PackageContext, label: string): Promise<ChartFile[]> {
  let ignore = HelmIgnore.parse("", `${label}/.helmignore`);
  try {
    const text = await readFile(join(root, ".helmignore"), "utf8");
    ignore = HelmIgnore.parse(text, `${label}/.helmignore`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const out: ChartFile[] = [];
  let total = 0;
  const visiting = new Set<string>();
  const walk = async (dir: string, relDir: string): Promise<void> => {
    const realDir = await realpath(dir);
    if (visiting.has(realDir)) {
      throw new ChartError(`${label}: symbolic links loop at ${relDir}`, label, "CHART_INVALID");
    }
    visiting.add(realDir);
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      const abs = join(dir, name);
      const rel = relDir ? `${relDir}/${name}` : name;
      // the checkout's own .git folder is git's, not the repository's content
      if (abs === join(ctx.boundary, ".git")) continue;
      const real = await realpath(abs);
      if (!inside(ctx.boundary, real)) {
        throw new IntegrityError(
          "PATH_ESCAPE",
          `${label}/${rel} is a symbolic link to ${real}, outside ${ctx.boundaryName}; refusing to package it`,
          `${label}/${rel}`,
        );
      }
      const st = await stat(real);
      if (st.isDirectory()) {
        if (ignore.ignores(rel, true)) continue;
        await walk(abs, rel);
        continue;
      }
      if (ignore.ignores(rel, false)) continue;
      if (!st.isFile()) {
        throw new ChartError(
          `${label}/${rel} is not a regular file (device, socket or pipe); Helm cannot load it either`,
          label,
          "CHART_INVALID",
        );
      }
      if (st.size > MAX_CHART_FILE_BYTES) {
        throw new ChartError(
          `${label}/${rel} is ${st.size} bytes, over Helm's 5 MiB limit for a chart file`,
          label,
          "CHART_INVALID",
        );
      }
      total += st.size;
      if (total > MAX_CHART_BYTES) {
        throw new ChartError(`${label} is over Helm's 100 MiB limit for a chart`, label, "CHART_INVALID");
      }
      out.push({ rel, abs: real });
    }
    visiting.delete(realDir);
  };
  await walk(root, "");
  return out;
}

function isJson(data: Buffer): boolean {
  try {
    JSON.parse(data.toString("utf8"));
    return true;
  } catch {
    return false;
  }
}

function entryOrder(a: string, b: string): number {
  const ia = FIRST.indexOf(a);
  const ib = FIRST.indexOf(b);
  if (ia >= 0 || ib >= 0) return (ia < 0 ? FIRST.length : ia) - (ib < 0 ? FIRST.length : ib);
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Write `stage/<name>/…` (the listed relative paths, in order) as a reproducible .tgz at `dest`. */
export async function writeChartArchive(
  stage: string,
  entries: string[],
  dest: string,
  signal?: AbortSignal,
): Promise<{ sha256: string; size: number }> {
  const counter = new Sha256Meter();
  await mkdir(dirname(dest), { recursive: true });
  await pipeline(
    tar.c({ cwd: stage, portable: true, mtime: FIXED_MTIME, noDirRecurse: true, strict: true }, entries),
    createGzip(),
    counter,
    createWriteStream(dest),
    { signal },
  );
  return { sha256: counter.hex(), size: counter.size };
}

/**
 * Package the chart folder `dir` (and its dependencies) into `ctx.outDir`. `stack` holds the real
 * paths of the charts that depend on this one, for cycle detection.
 */
export async function packageChartDir(
  dir: string,
  ctx: PackageContext,
  stack: string[] = [],
): Promise<PackagedChart> {
  const lexical = resolve(dir);
  const label = labelOf(ctx, lexical);
  if (!inside(ctx.boundary, lexical)) {
    throw new IntegrityError("PATH_ESCAPE", `chart ${label} is outside ${ctx.boundaryName}`, label);
  }
  let real: string;
  try {
    real = await realpath(lexical);
  } catch {
    throw new ChartError(`chart folder ${label} does not exist`, label, "CHART_NOT_FOUND");
  }
  if (!inside(ctx.boundary, real)) {
    throw new IntegrityError(
      "PATH_ESCAPE",
      `chart ${label} leads to ${real}, outside ${ctx.boundaryName}`,
      label,
    );
  }
  if (stack.includes(real)) {
    const chain = [...stack.slice(stack.indexOf(real)), real].map((p) => labelOf(ctx, p)).join(" -> ");
    throw new ChartError(`chart dependencies form a cycle: ${chain}`, label, "CHART_CYCLE");
  }
  if (!(await stat(real)).isDirectory()) {
    throw new ChartError(`chart path ${label} is not a folder`, label, "CHART_NOT_FOUND");
  }
  const meta = await readChartDir(real, label);

  const built: { dep: ChartDependency; fileName: string; file: string; record: PackagedDependency }[] = [];
  for (const dep of meta.dependencies) {
    const repository = dep.repository ?? "";
    const key = dep.alias ?? dep.name;
    if (built.some((b) => b.dep.name === dep.name)) {
      // the same chart under two aliases is carried once; Helm instantiates it per alias
      const first = built.find((b) => b.dep.name === dep.name)!;
      built.push({ ...first, dep, record: { ...first.record, key } });
      continue;
    }
    let fetched: FetchedDependency;
    let children: PackagedDependency[] = [];
    if (repository.startsWith("file://")) {
      const target = resolve(real, repository.slice("file://".length));
      if (!inside(ctx.boundary, target)) {
        throw new IntegrityError(
          "PATH_ESCAPE",
          `${label}/Chart.yaml: dependency ${dep.name} (${repository}) is outside ${ctx.boundaryName}; refusing to package it`,
          label,
        );
      }
      const child = await packageChartDir(target, ctx, [...stack, real]);
      if (child.name !== dep.name) {
        throw new ChartError(
          `${label}/Chart.yaml: dependency ${dep.name} (${repository}) is the chart "${child.name}"; the names must match`,
          label,
          "CHART_INVALID",
        );
      }
      fetched = { file: child.file, name: child.name, version: child.version, sha256: child.sha256 };
      children = child.dependencies;
    } else if (/^https?:\/\//i.test(repository)) {
      fetched = await ctx.fetchRepo({ ...dep, repository });
    } else if (repository.startsWith("oci://")) {
      if (!ctx.pullOci) {
        throw new ChartError(
          `${label}/Chart.yaml: dependency ${dep.name} comes from ${repository}, and no OCI registry client was given to pull it`,
          label,
          "CHART_NEEDS_OCI",
        );
      }
      fetched = await ctx.pullOci({ ...dep, repository });
    } else {
      throw new ChartError(
        `${label}/Chart.yaml: dependency ${dep.name} has repository "${repository}"; airgap resolves file://, https:// and oci:// dependencies`,
        label,
        "CHART_INVALID",
      );
    }
    if (dep.version && !satisfiesHelm(fetched.version, dep.version)) {
      throw new ChartError(
        `${label}/Chart.yaml: dependency ${dep.name} wants version ${dep.version}, but ${repository} holds ${fetched.version}`,
        label,
        "CHART_VERSION_NOT_FOUND",
      );
    }
    built.push({
      dep,
      fileName: `${fetched.name}-${fetched.version}.tgz`,
      file: fetched.file,
      record: {
        name: fetched.name,
        version: fetched.version,
        key,
        repository,
        sha256: fetched.sha256,
        dependencies: children,
      },
    });
  }

  const builtNames = new Set(built.map((b) => b.dep.name));
  const files = (await listChartFiles(real, ctx, label)).filter((f) => {
    // a copy of a dependency vendored in charts/ is replaced by the one just built, as helm dependency build does
    const m = /^charts\/([^/]+)-v?\d[^/]*\.tgz$/.exec(f.rel);
    return !(m && builtNames.has(m[1]!));
  });

  const stage = await mkdtemp(join(ctx.outDir, ".stage-"));
  try {
    const top = join(stage, meta.name);
    const entries: string[] = [];
    for (const f of files) {
      const dest = join(top, ...f.rel.split("/"));
      await mkdir(dirname(dest), { recursive: true });
      const raw = await readFile(f.abs);
      const data = raw.subarray(0, 3).equals(BOM) ? raw.subarray(3) : raw;
      if (f.rel === "values.schema.json" && !isJson(data)) {
        // helm package refuses it too ("Invalid JSON in values.schema.json")
        throw new ChartError(`${label}/values.schema.json is not valid JSON`, label, "CHART_INVALID");
      }
      await writeFile(dest, data);
      await chmod(dest, 0o644);
      entries.push(f.rel);
    }
    for (const b of built) {
      const rel = `charts/${b.fileName}`;
      if (entries.includes(rel)) continue;
      const dest = join(top, "charts", b.fileName);
      await mkdir(dirname(dest), { recursive: true });
      await copyFile(b.file, dest);
      await chmod(dest, 0o644);
      entries.push(rel);
    }
    entries.sort(entryOrder);
    const outDir = await mkdtemp(join(ctx.outDir, `${meta.name}-`));
    const file = join(outDir, `${meta.name}-${meta.version}.tgz`);
    const { sha256, size } = await writeChartArchive(
      stage,
      entries.map((e) => `${meta.name}/${e}`),
      file,
      ctx.signal,
    );
    ctx.built?.push(`${meta.name}-${meta.version}`);
    return {
      name: meta.name,
      version: meta.version,
      metadata: meta,
      file,
      sha256,
      size,
      dependencies: built.map((b) => b.record),
    };
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}
