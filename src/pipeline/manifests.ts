/**
 * Gathers what the manifests overlay needs from the world (the shipped manifests, the addresses of
 * the registry and artifact repository, the CA and key files import used) and renders it with the
 * pure renderer in src/targets/manifests.ts.
 */
import { lookup } from "node:dns/promises";
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { isIP } from "node:net";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { type Endpoint, RUNNER_IMAGE, renderManifestsOverlay } from "../targets/manifests.js";
import type { ImportedImage } from "../targets/render.js";
import { VERSION } from "../version.js";

/** The single-file build (scripts/build-single.mjs) embeds the manifests, since it travels without them. */
declare const __AIRGAP_MANIFESTS__: Record<string, string> | undefined;

const LOOKUP_TIMEOUT_MS = 5000;

/** The manifests/ folder of the installed package: found by walking up from this module. */
export function findShippedManifests(from = dirname(fileURLToPath(import.meta.url))): string | undefined {
  let dir = from;
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, "manifests");
    if (existsSync(join(candidate, "base", "kustomization.yaml"))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return undefined;
}

async function readTree(root: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const full = join(dir, e.name);
      if (e.isDirectory()) await walk(full);
      else if (e.isFile()) files.set(relative(root, full).split(sep).join("/"), await readFile(full, "utf8"));
    }
  };
  await walk(root);
  return files;
}

export async function loadShippedManifests(): Promise<Map<string, string>> {
  if (typeof __AIRGAP_MANIFESTS__ !== "undefined") return new Map(Object.entries(__AIRGAP_MANIFESTS__));
  const dir = findShippedManifests();
  if (!dir)
    throw new Error("the manifests/ folder of the cinc-airgap package is missing: reinstall the package");
  return readTree(dir);
}

/** Every address a host name resolves to (an address stays itself); empty when it does not resolve. */
export async function resolveAddresses(host: string): Promise<string[]> {
  const bare = host.replace(/^\[(.*)\]$/, "$1");
  if (isIP(bare)) return [bare];
  let timer: NodeJS.Timeout | undefined;
  try {
    const found = await Promise.race([
      lookup(bare, { all: true, verbatim: true }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("timeout")), LOOKUP_TIMEOUT_MS);
      }),
    ]);
    return [...new Set(found.map((a) => a.address))].sort();
  } catch {
    return [];
  } finally {
    clearTimeout(timer);
  }
}

function splitHostPort(hostPort: string, defaultPort: number): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(hostPort);
  if (!m) return { host: hostPort, port: defaultPort };
  return { host: m[1]!.replace(/^\[(.*)\]$/, "$1"), port: m[2] ? Number(m[2]) : defaultPort };
}

async function endpointOf(hostPort: string, defaultPort: number): Promise<Endpoint> {
  const { host, port } = splitHostPort(hostPort, defaultPort);
  return { host, port, addresses: await resolveAddresses(host) };
}

async function endpointOfUrl(url: string): Promise<Endpoint | undefined> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") return undefined;
  const port = u.port ? Number(u.port) : u.protocol === "https:" ? 443 : 80;
  const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
  return { host, port, addresses: await resolveAddresses(host) };
}

export interface ClusterManifestsOptions {
  /** Target registry host[:port]. */
  registry: string;
  prefix: string;
  plainHTTP: boolean;
  artifacts?: string;
  s3Endpoint?: string;
  caFile?: string;
  keyFile?: string;
  /** Enable the sharded import Job with this many workers. */
  importJobShards?: number;
}

/** DIR/manifests/: the overlay of the shipped manifests with what this import used. */
export async function clusterManifests(
  images: ImportedImage[],
  opts: ClusterManifestsOptions,
): Promise<Map<string, string>> {
  const registryTarget = [opts.registry, opts.prefix].filter(Boolean).join("/");
  const carried = images.find((i) => {
    const repo = i.target.replace(/[@:][^/]*$/, "");
    return repo.endsWith(`/${RUNNER_IMAGE}`) && i.source.includes(`:${VERSION}`);
  });
  let artifacts: { url: string; s3Endpoint?: string; endpoint?: Endpoint } | undefined;
  if (opts.artifacts) {
    const s3 = opts.artifacts.startsWith("s3://");
    const s3Endpoint = s3 ? (opts.s3Endpoint ?? process.env.AWS_ENDPOINT_URL_S3) : undefined;
    const endpoint = await endpointOfUrl(s3 ? (s3Endpoint ?? "") : opts.artifacts);
    artifacts = {
      url: opts.artifacts,
      ...(s3Endpoint ? { s3Endpoint } : {}),
      ...(endpoint ? { endpoint } : {}),
    };
  }
  return renderManifestsOverlay({
    shipped: await loadShippedManifests(),
    registryTarget,
    registry: await endpointOf(opts.registry, opts.plainHTTP ? 80 : 443),
    ...(artifacts ? { artifacts } : {}),
    runnerImage: carried
      ? { repository: carried.target.replace(/[@:][^/]*$/, ""), tag: VERSION, digest: carried.digest }
      : { repository: `${registryTarget}/${RUNNER_IMAGE}`, tag: VERSION },
    ...(opts.caFile ? { caPem: await readFile(opts.caFile, "utf8") } : {}),
    ...(opts.keyFile ? { publicKeyPem: await readFile(opts.keyFile, "utf8") } : {}),
    ...(opts.importJobShards ? { importJobShards: opts.importJobShards } : {}),
  });
}
