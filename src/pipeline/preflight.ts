/**
 * Before an import pushes anything: can the target take every item? Per target repository an
 * upload session is started and cancelled at once (no content written), which finds repositories
 * that do not exist (ECR), may not be written (a missing Harbor project, missing rights) or lie
 * deeper than the registry allows (GitLab). Per kind of manifest (media type, config type,
 * artifactType) one probe manifest that names a blob which does not exist is PUT: a registry that
 * takes the kind answers "blob unknown" and stores nothing; one that refuses the kind (Quay's
 * allow-list, Zot without Docker support) says so. Every problem is collected and reported at once,
 * with what to do about it.
 */
import { randomBytes } from "node:crypto";
import type pLimit from "p-limit";
import { UsageError } from "../errors.js";
import type { Descriptor } from "../oci/descriptor.js";
import { sha256Digest } from "../oci/digest.js";
import { isIndex, MediaType } from "../oci/mediatypes.js";
import { pushScope } from "../oci/registry/auth.js";
import type { RegistryClient } from "../oci/registry/client.js";
import { NO_REGISTRY_API, RegistryError } from "../oci/registry/errors.js";
import type { RegistryHost } from "../oci/registry/host.js";
import { probeWritable } from "../store/registry-upload.js";

export interface PreflightTarget {
  registry: string;
  repository: string;
  /** What goes there (bundle item names), for the message. */
  items: string[];
}

/** One kind of manifest: what a registry's allow-list judges. */
export interface ManifestKind {
  mediaType: string;
  configType?: string | undefined;
  artifactType?: string | undefined;
  /** Items whose graphs hold such a manifest. */
  items: string[];
}

export interface PreflightProblem {
  repository: string;
  message: string;
}

/** The kind of a manifest from its bytes (descriptor media type first). */
export function manifestKind(desc: Descriptor, bytes: Buffer): Omit<ManifestKind, "items"> {
  let parsed: { config?: { mediaType?: unknown }; artifactType?: unknown } = {};
  try {
    parsed = JSON.parse(bytes.toString("utf8")) as typeof parsed;
  } catch {
    // the copy judges malformed manifests; here it has no kind beyond its media type
  }
  const kind: Omit<ManifestKind, "items"> = { mediaType: desc.mediaType };
  if (!isIndex(desc.mediaType) && typeof parsed.config?.mediaType === "string")
    kind.configType = parsed.config.mediaType;
  if (typeof parsed.artifactType === "string") kind.artifactType = parsed.artifactType;
  return kind;
}

export function kindKey(k: Omit<ManifestKind, "items">): string {
  return [k.mediaType, k.configType ?? "", k.artifactType ?? ""].join("|");
}

function describeKind(k: Omit<ManifestKind, "items">): string {
  const parts = [k.mediaType];
  if (k.artifactType) parts.push(`artifactType ${k.artifactType}`);
  else if (k.configType) parts.push(`config ${k.configType}`);
  return parts.join(", ");
}

/**
 * Check every target; throws a UsageError listing every problem with its fix, or resolves when
 * the import can go ahead.
 */
export async function preflight(
  client: RegistryClient,
  targets: PreflightTarget[],
  kinds: ManifestKind[],
  limit: ReturnType<typeof pLimit>,
  options: { createRepositories?: boolean; signal?: AbortSignal | undefined } = {},
): Promise<void> {
  const { signal } = options;
  const problems: string[] = [];
  const fixes = new Set<string>();
  const writable: PreflightTarget[] = [];
  // one creation per project, however many repositories wait for it
  const creating = new Map<string, Promise<string | undefined>>();
  await Promise.all(
    targets.map((t) =>
      limit(async () => {
        const host = client.host(t.registry);
        let refusal = await probeWritable({ host, registry: t.registry, repository: t.repository }, signal);
        if (refusal && options.createRepositories && (refusal.status === 401 || refusal.status === 403)) {
          const project = t.repository.split("/")[0]!;
          const key = `${t.registry}/${project}`;
          let created = creating.get(key);
          if (!created) {
            created = (async () =>
              (await harborProjectMissing(host, project, signal))
                ? await createHarborProject(host, project, signal)
                : undefined)();
            creating.set(key, created);
          }
          const failure = await created;
          if (failure) {
            problems.push(`${t.registry}/${t.repository} (${t.items.join(", ")}): ${failure}`);
            fixes.add(
              `create the Harbor project(s) named above with an account that may (Harbor UI or POST /api/v2.0/projects)`,
            );
            return;
          }
          refusal = await probeWritable({ host, registry: t.registry, repository: t.repository }, signal);
        }
        if (!refusal) {
          writable.push(t);
          return;
        }
        const found = await explain(host, t, refusal, signal);
        problems.push(`${t.registry}/${t.repository} (${t.items.join(", ")}): ${found.problem}`);
        fixes.add(found.fix);
      }),
    ),
  );

  // Media types: one probe per kind and registry, in a repository that may be written.
  const byRegistry = new Map<string, PreflightTarget>();
  for (const t of writable.sort((a, b) => a.repository.localeCompare(b.repository)))
    if (!byRegistry.has(t.registry)) byRegistry.set(t.registry, t);
  for (const [registry, t] of byRegistry) {
    const host = client.host(registry);
    const refused = (
      await Promise.all(
        kinds.map((k) => limit(async () => ((await typeRefused(host, t, k, signal)) ? k : undefined))),
      )
    ).filter((k): k is ManifestKind => k !== undefined);
    for (const k of refused) {
      problems.push(`${registry} refuses manifests of the kind ${describeKind(k)}: ${k.items.join(", ")}`);
    }
    if (refused.length > 0) {
      fixes.add(
        `allow these kinds in the registry (Quay: FEATURE_GENERAL_OCI_SUPPORT and ALLOWED_OCI_ARTIFACT_TYPES; Zot: http.compat ["docker2s2"] for Docker manifests), or make a bundle without the items it refuses`,
      );
    }
  }

  if (problems.length === 0) return;
  throw new UsageError(
    `the target cannot take this bundle; nothing was pushed (${problems.length} problem${problems.length === 1 ? "" : "s"}):`,
    { details: [...problems.sort().map((p) => `- ${p}`), ...[...fixes].map((f) => `to do: ${f}`)] },
  );
}

/** Why a repository may not be written, and what to do about it. */
async function explain(
  host: RegistryHost,
  t: PreflightTarget,
  refusal: RegistryError,
  signal?: AbortSignal,
): Promise<{ problem: string; fix: string }> {
  const status = refusal.status;
  if (refusal.code === NO_REGISTRY_API) {
    return {
      problem: `no registry API at ${host.api("")}, where the registry answers 404 as well`,
      fix: (await host.pathPrefixHint(signal)) ?? refusal.message,
    };
  }
  if (status === 404 || refusal.registryCode === "NAME_UNKNOWN") {
    return {
      problem:
        "the repository does not exist (the registry answers NAME_UNKNOWN; ECR does not create repositories on push)",
      fix: "create the missing repositories first (ECR: aws ecr create-repository --repository-name NAME for each; --create-repositories does not reach ECR's API), then import again",
    };
  }
  if (status === 401 || status === 403) {
    // Credentials the registry refuses altogether are an authentication failure, not a property
    // of this repository: that error stands as it is.
    const authFailure = await baseAuthFailure(host, signal);
    if (authFailure) throw authFailure;
    const parts = t.repository.split("/");
    const project = parts[0]!;
    if (await harborProjectMissing(host, project, signal)) {
      return {
        problem: `Harbor project "${project}" does not exist`,
        fix: `create the Harbor project(s) named above (Harbor UI, POST /api/v2.0/projects, or import with --create-repositories), or map the images into an existing project with --registry HOST/PROJECT or mappings`,
      };
    }
    // A shallower name that may be written: the registry limits the depth (GitLab: two levels
    // below the project).
    for (let depth = parts.length - 1; depth >= 1; depth--) {
      const shallower = parts.slice(0, depth).join("/");
      if (!(await probeWritable({ host, registry: t.registry, repository: shallower }, signal))) {
        return {
          problem: `the path has ${parts.length} levels, the registry takes at most ${depth} here (${shallower} may be written)`,
          fix: "shorten the target paths: --flatten, a shorter --registry prefix, or mappings in the import config (GitLab: at most two levels below the project)",
        };
      }
    }
    return {
      problem: `the registry refuses writes (${status}): the credentials lack push rights, or the namespace does not exist`,
      fix: "log in with an account that may push there (docker login), and create the namespace/project if the registry requires one",
    };
  }
  return {
    problem: `the registry refused to start an upload: ${refusal.message}`,
    fix: "see the registry's answer above",
  };
}

const baseChecks = new WeakMap<RegistryHost, Promise<RegistryError | undefined>>();

/** The error of the registry's base endpoint (`<prefix>/v2/`) when it refuses our credentials (once per host). */
function baseAuthFailure(host: RegistryHost, signal?: AbortSignal): Promise<RegistryError | undefined> {
  let p = baseChecks.get(host);
  if (!p) {
    p = host
      .send({
        method: "GET",
        url: host.api(""),
        scopes: [],
        ctx: { registry: host.registry, subject: "base endpoint" },
        signal,
        ok: () => true,
      })
      .then(async (res) => {
        await res.body.dump().catch(() => undefined);
        return undefined;
      })
      .catch((err: unknown) => {
        if (err instanceof RegistryError && err.status === 401) return err;
        throw err;
      });
    baseChecks.set(host, p);
  }
  return p;
}

/** Whether the host is Harbor (its ping answers "Pong") and lacks this project. */
async function harborProjectMissing(
  host: RegistryHost,
  project: string,
  signal?: AbortSignal,
): Promise<boolean> {
  try {
    const ping = await host.send({
      method: "GET",
      url: "/api/v2.0/ping",
      scopes: [],
      ctx: { registry: host.registry, subject: "Harbor ping" },
      signal,
      ok: () => true,
    });
    const text = await ping.body.text();
    if (!/pong/i.test(text)) return false;
    const res = await host.send({
      method: "HEAD",
      url: `/api/v2.0/projects?project_name=${encodeURIComponent(project)}`,
      scopes: [],
      ctx: { registry: host.registry, subject: `Harbor project ${project}` },
      signal,
      ok: () => true,
    });
    await res.body.dump().catch(() => undefined);
    return res.status === 404;
  } catch {
    return false;
  }
}

/**
 * Create a Harbor project (private) through Harbor's API, with the registry's Basic credentials
 * (Harbor's API takes them; registry tokens are for /v2/ only). Undefined when created (or already
 * there), else why not.
 */
async function createHarborProject(
  host: RegistryHost,
  project: string,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const { credential } = await host.auth.credentials();
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (credential?.username) {
    headers.authorization = `Basic ${Buffer.from(`${credential.username}:${credential.password ?? ""}`).toString("base64")}`;
  }
  const res = await host.send({
    method: "POST",
    url: "/api/v2.0/projects",
    headers,
    body: JSON.stringify({ project_name: project, metadata: { public: "false" } }),
    scopes: [],
    ctx: { registry: host.registry, subject: `Harbor project ${project}` },
    signal,
    noAuth: true,
    ok: () => true,
  });
  const text = (await res.body.text()).slice(0, 300);
  if (res.status === 201 || res.status === 409) return undefined;
  return `Harbor project "${project}" does not exist and creating it was refused (${res.status}${text ? `: ${text}` : ""})`;
}

/**
 * PUT a manifest of this kind that names a blob the registry cannot hold (a fresh random digest):
 * a registry that takes the kind answers "blob unknown" and stores nothing. True when it refuses
 * the kind itself.
 */
async function typeRefused(
  host: RegistryHost,
  t: PreflightTarget,
  k: ManifestKind,
  signal?: AbortSignal,
): Promise<boolean> {
  const absent = { digest: sha256Digest(randomBytes(32)), size: 32 };
  const body = isIndex(k.mediaType)
    ? {
        schemaVersion: 2,
        mediaType: k.mediaType,
        manifests: [{ mediaType: MediaType.ociManifest, ...absent }],
      }
    : {
        schemaVersion: 2,
        mediaType: k.mediaType,
        ...(k.artifactType ? { artifactType: k.artifactType } : {}),
        config: { mediaType: k.configType ?? MediaType.ociEmpty, ...absent },
        layers: [],
      };
  const bytes = Buffer.from(JSON.stringify(body));
  const digest = sha256Digest(bytes);
  const url = `${host.api(t.repository)}/manifests/${digest}`;
  let res: Awaited<ReturnType<RegistryHost["send"]>>;
  try {
    res = await host.send({
      method: "PUT",
      url,
      headers: { "content-type": k.mediaType },
      body: bytes,
      scopes: [pushScope(t.repository)],
      ctx: { registry: host.registry, repository: t.repository, subject: "manifest kind probe (pre-flight)" },
      signal,
    });
  } catch (err) {
    if (!(err instanceof RegistryError)) throw err;
    const unknownBlob = err.errors.some((e) =>
      /^(MANIFEST_BLOB_UNKNOWN|BLOB_UNKNOWN|MANIFEST_UNKNOWN)$/.test(e.code),
    );
    return !unknownBlob && (err.status === 400 || err.status === 415 || err.status === 413);
  }
  // A registry that stores a manifest whose blob it lacks: take the probe away again.
  await res.body.dump().catch(() => undefined);
  await host
    .send({
      method: "DELETE",
      url,
      scopes: [pushScope(t.repository)],
      ctx: { registry: host.registry },
      signal,
      ok: () => true,
    })
    .then((r) => r.body.dump())
    .catch(() => undefined);
  return false;
}

/** Target repositories of the planned copies, each with the items that go there. */
export function preflightTargets(
  copies: { item: string; to: { registry: string; repository: string } }[],
): PreflightTarget[] {
  const byRepo = new Map<string, PreflightTarget>();
  for (const { item, to } of copies) {
    const key = `${to.registry}/${to.repository}`;
    const t = byRepo.get(key) ?? { registry: to.registry, repository: to.repository, items: [] };
    if (!t.items.includes(item)) t.items.push(item);
    byRepo.set(key, t);
  }
  return [...byRepo.values()];
}

/**
 * The kinds of manifest among these roots and the manifests their indexes name (read with
 * `read`, which verifies what it returns).
 */
export async function manifestKinds(
  roots: { item: string; desc: Descriptor }[],
  read: (desc: Descriptor) => Promise<Buffer | undefined>,
): Promise<ManifestKind[]> {
  const kinds = new Map<string, ManifestKind>();
  const seen = new Set<string>();
  const visit = async (item: string, desc: Descriptor, depth: number): Promise<void> => {
    // a manifest the bundle leaves out (another platform of an index) is not pushed
    const bytes = await read(desc);
    if (!bytes) return;
    const k = manifestKind(desc, bytes);
    const key = kindKey(k);
    const entry = kinds.get(key) ?? { ...k, items: [] };
    if (!entry.items.includes(item)) entry.items.push(item);
    kinds.set(key, entry);
    if (!isIndex(desc.mediaType) || depth > 4) return;
    let children: Descriptor[] = [];
    try {
      children = (
        (JSON.parse(bytes.toString("utf8")) as { manifests?: Descriptor[] }).manifests ?? []
      ).filter((d) => d && typeof d.digest === "string" && typeof d.mediaType === "string");
    } catch {
      return;
    }
    for (const c of children) {
      if (seen.has(`${item}@${c.digest}`)) continue;
      seen.add(`${item}@${c.digest}`);
      await visit(item, c, depth + 1);
    }
  };
  for (const r of roots) await visit(r.item, r.desc, 0);
  return [...kinds.values()];
}
