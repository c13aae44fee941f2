/**
 * Cluster configuration written after an import: what was imported (images.json), how containerd and
 * CRI-O/podman find the imported images under their original names, and Helm values that point charts at
 * the target registry. Pure functions over the list of imported images; output is deterministic (sorted)
 * so the files can be compared and committed.
 */
import { stringify } from "yaml";
import { parseReference } from "../oci/reference.js";

export interface ImportedImage {
  /** Full source reference, e.g. `docker.io/cincproject/auditor:6.8.24` (or `…@sha256:…` when only a digest). */
  source: string;
  /** Target `host/repository:tag` (or `…@sha256:…` when the source had no tag). */
  target: string;
  /** Manifest digest the target now holds. */
  digest: string;
  /** Target `host/repository@digest`. */
  targetPinned: string;
}

export interface MirrorOptions {
  /** The target registry is reached over http:// (containerd host URL scheme; registries.conf `insecure`). */
  plainHTTP?: boolean;
  /** CA certificate path as it will be on the nodes. */
  caFile?: string;
  /** Skip TLS verification of the target registry (only when a site asks for it explicitly). */
  skipVerify?: boolean;
  /** Preferred path under the target registry when images of one source host disagree (see containerdMirrorPlan). */
  prefix?: string;
  /** URL path the target registry's API lives under, before `/v2/` (Artifactory repository path). */
  pathPrefix?: string;
}

const bySource = (a: ImportedImage, b: ImportedImage) => compare(a.source, b.source);

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function repositoryOfName(name: string): string {
  const ref = parseReference(name);
  return `${ref.registry}/${ref.repository}`;
}

/** images.json: one entry per imported image, sorted by source; `jq -r '.[].targetPinned'` lists pins. */
export function renderImagesJson(images: ImportedImage[]): string {
  const rows = [...images].sort(bySource).map((i) => ({
    source: i.source,
    target: i.target,
    digest: i.digest,
    targetPinned: i.targetPinned,
  }));
  return `${JSON.stringify(rows, null, 2)}\n`;
}

/** Where containerd should look for the images of one source host. */
export interface ContainerdMirror {
  /** Source registry host[:port], e.g. `docker.io`; also the certs.d folder name. */
  sourceHost: string;
  /**
   * Repository path under the target that stands in for the source host's root ("" for the root);
   * undefined when no image of this host can be reached through a mirror.
   */
  path: string | undefined;
  /** Images of this host whose target is not `<path>/<source repository>` (explicit mappings, flatten). */
  uncovered: ImportedImage[];
}

/**
 * containerd mirrors a whole host: a request for `<source host>/<repo>` goes to `<mirror>/<repo>`, so a
 * mirror can only express targets of the form `<path>/<source repository>`. The path is derived from the
 * imported images (the most common one per source host); images that do not fit are listed as uncovered
 * and must be referenced by their target name.
 */
export function containerdMirrorPlan(
  images: ImportedImage[],
  opts: { prefix?: string } = {},
): ContainerdMirror[] {
  type HostEntry = {
    counts: Map<string, number>;
    images: { image: ImportedImage; path: string | undefined }[];
  };
  const hosts = new Map<string, HostEntry>();
  for (const image of [...images].sort(bySource)) {
    const source = parseReference(image.source);
    const target = parseReference(image.target);
    let path: string | undefined;
    if (target.repository === source.repository) path = "";
    else if (target.repository.endsWith(`/${source.repository}`)) {
      path = target.repository.slice(0, -source.repository.length - 1);
    }
    const entry: HostEntry = hosts.get(source.registry) ?? { counts: new Map(), images: [] };
    entry.images.push({ image, path });
    if (path !== undefined) entry.counts.set(path, (entry.counts.get(path) ?? 0) + 1);
    hosts.set(source.registry, entry);
  }
  const prefer = (opts.prefix ?? "").replace(/^\/+|\/+$/g, "");
  const plans: ContainerdMirror[] = [];
  for (const [sourceHost, entry] of hosts) {
    const ranked = [...entry.counts].sort(
      (a, b) =>
        b[1] - a[1] ||
        Number(b[0] === prefer) - Number(a[0] === prefer) ||
        a[0].length - b[0].length ||
        compare(a[0], b[0]),
    );
    const path = ranked[0]?.[0];
    plans.push({
      sourceHost,
      path,
      uncovered: entry.images.filter((i) => path === undefined || i.path !== path).map((i) => i.image),
    });
  }
  return plans.sort((a, b) => compare(a.sourceHost, b.sourceHost));
}

function toml(value: string): string {
  return JSON.stringify(value);
}

/** The upstream a hosts.toml falls back to; Docker Hub's API lives on registry-1.docker.io. */
function upstream(host: string): string {
  return host === "docker.io" ? "https://registry-1.docker.io" : `https://${host}`;
}

/**
 * containerd hosts.toml files, one per source host, keyed by `certs.d/<source host>/hosts.toml` (install
 * under containerd's `config_path`, usually /etc/containerd/certs.d). The target is tried first with pull
 * and resolve (it is a trusted private mirror); `server` stays the upstream so a node that can reach it
 * behaves as before. With a path under the target, `override_path = true` makes the `/v2/<path>` URL the
 * API root, so `<source host>/<repo>` resolves to `<target>/<path>/<repo>`.
 */
export function renderContainerdHosts(
  images: ImportedImage[],
  targetRegistry: string,
  opts: MirrorOptions = {},
): Map<string, string> {
  const files = new Map<string, string>();
  const scheme = opts.plainHTTP ? "http" : "https";
  for (const plan of containerdMirrorPlan(images, opts)) {
    // Nothing of this host fits a mirror: writing one would send its pulls to the wrong repositories.
    if (plan.path === undefined) continue;
    // Under a path prefix the host URL names the API root itself: override_path even at the root.
    const apiRoot = opts.pathPrefix ? `${opts.pathPrefix}/v2` : "/v2";
    const overridePath = Boolean(plan.path || opts.pathPrefix);
    const hostUrl = overridePath
      ? `${scheme}://${targetRegistry}${apiRoot}${plan.path ? `/${plan.path}` : ""}`
      : `${scheme}://${targetRegistry}`;
    const lines = [
      `# ${plan.sourceHost}: pull from ${targetRegistry}${plan.path ? `/${plan.path}` : ""} (written by airgap bundle import)`,
      `server = ${toml(upstream(plan.sourceHost))}`,
      "",
      `[host.${toml(hostUrl)}]`,
      `  capabilities = ["pull", "resolve"]`,
    ];
    if (overridePath) lines.push("  override_path = true");
    if (opts.caFile) lines.push(`  ca = ${toml(opts.caFile)}`);
    if (opts.skipVerify) lines.push("  skip_verify = true");
    if (plan.uncovered.length > 0) {
      lines.push(
        "",
        "# Not reachable through this mirror (mapped elsewhere); reference these by target name:",
      );
      for (const image of plan.uncovered) lines.push(`#   ${image.source} -> ${image.target}`);
    }
    files.set(`certs.d/${plan.sourceHost}/hosts.toml`, `${lines.join("\n")}\n`);
  }
  return files;
}

/**
 * A containers-registries.conf(5) v2 fragment (for /etc/containers/registries.conf.d/, read by CRI-O,
 * podman, skopeo and buildah): one `[[registry]]` per source repository, whose `location` rewrites the
 * repository to its target, so every mapping (explicit, flattened) is expressed exactly.
 */
export function renderRegistriesConf(
  images: ImportedImage[],
  targetRegistry: string,
  opts: MirrorOptions = {},
): string {
  const byRepository = new Map<string, string>();
  for (const image of [...images].sort(bySource)) {
    const sourceRepository = repositoryOfName(image.source);
    const target = parseReference(image.target);
    if (!byRepository.has(sourceRepository)) {
      byRepository.set(sourceRepository, `${targetRegistry}/${target.repository}`);
    }
  }
  const lines = [
    "# Imported images under their original names (written by airgap bundle import).",
    "# Install as /etc/containers/registries.conf.d/50-airgap.conf",
  ];
  if (opts.pathPrefix) {
    lines.push(
      `# ${targetRegistry} serves its API under ${opts.pathPrefix}/v2/, which registries.conf cannot express:`,
      "# these locations work only where the registry also answers at /v2/ (e.g. Artifactory's repository-path",
      "# method through its reverse proxy); otherwise use the containerd hosts.toml files.",
    );
  }
  for (const [prefix, location] of [...byRepository].sort((a, b) => compare(a[0], b[0]))) {
    lines.push("", "[[registry]]", `prefix = ${toml(prefix)}`, `location = ${toml(location)}`);
    if (opts.plainHTTP || opts.skipVerify) lines.push("insecure = true");
  }
  if (opts.caFile && !opts.plainHTTP) {
    lines.splice(
      2,
      0,
      `# Trust the registry's CA: copy ${opts.caFile} to /etc/containers/certs.d/${targetRegistry}/ca.crt`,
    );
  }
  return `${lines.join("\n")}\n`;
}

export interface HelmValuesOptions {
  /** Target registry host[:port] for `global.imageRegistry`; default: the registry of the first target. */
  registry?: string;
  /** File name of the values file; default `values-airgap.yaml`. */
  fileName?: string;
}

/**
 * Helm values overrides, one file (`values-airgap.yaml` by default):
 *
 *   global:
 *     imageRegistry: registry.internal:5000      # for charts that honour the common global key
 *   images:                                       # keyed by full source reference
 *     docker.io/cincproject/auditor:6.8.24:
 *       registry: registry.internal:5000
 *       repository: team/cincproject/auditor
 *       tag: 6.8.24                               # absent for digest-only sources
 *       digest: sha256:…
 *       image: registry.internal:5000/team/cincproject/auditor@sha256:…
 *   repositories:                                 # keyed by source repository, for tag-independent lookups
 *     docker.io/cincproject/auditor:
 *       registry: registry.internal:5000
 *       repository: team/cincproject/auditor
 *
 * Charts (or a values file per chart written by hand) pick what they need, e.g.
 * `{{ index .Values.images "docker.io/cincproject/auditor:6.8.24" "image" }}`.
 */
export function renderHelmValues(images: ImportedImage[], opts: HelmValuesOptions = {}): Map<string, string> {
  const sorted = [...images].sort(bySource);
  const entries: Record<string, Record<string, string>> = {};
  const repositories: Record<string, Record<string, string>> = {};
  for (const image of sorted) {
    const target = parseReference(image.target);
    const entry: Record<string, string> = { registry: target.registry, repository: target.repository };
    if (target.tag !== undefined) entry.tag = target.tag;
    entry.digest = image.digest;
    entry.image = image.targetPinned;
    entries[image.source] = entry;
    const sourceRepository = repositoryOfName(image.source);
    repositories[sourceRepository] ??= { registry: target.registry, repository: target.repository };
  }
  const registry = opts.registry ?? (sorted[0] ? parseReference(sorted[0].target).registry : "");
  const header = [
    "# Image overrides for the imported images (written by airgap bundle import).",
    "# images: keyed by source reference; repositories: keyed by source repository.",
    "",
  ].join("\n");
  const body = stringify(
    { global: { imageRegistry: registry }, images: entries, repositories },
    { lineWidth: 0, sortMapEntries: false },
  );
  return new Map([[opts.fileName ?? "values-airgap.yaml", header + body]]);
}
