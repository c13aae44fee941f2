/**
 * A Store over one repository of a remote OCI registry (distribution spec 1.1). Every byte read is
 * verified against its digest while streaming; blobs are never held in memory; manifests are read
 * with a 4 MiB limit and hashed over their exact bytes.
 */
import { Readable } from "node:stream";
import { IntegrityError, RemoteError, UsageError } from "../errors.js";
import { assertDigest, type Descriptor, digestHex, manifestMediaType } from "../oci/descriptor.js";
import { markVerified, sha256Digest, VerifyingStream } from "../oci/digest.js";
import {
  isIndex,
  isManifestLike,
  MANIFEST_ACCEPT,
  MAX_MANIFEST_BYTES,
  MediaType,
} from "../oci/mediatypes.js";
import { pullScope, pushScope } from "../oci/registry/auth.js";
import type { ManifestCache, RegistryClient, RegistryStats } from "../oci/registry/client.js";
import { NO_REGISTRY_API, RegistryError } from "../oci/registry/errors.js";
import { header, type RegistryHost, type SendResult } from "../oci/registry/host.js";
import { lessonsOf, type Refill, type UploadContext, uploadBlob } from "./registry-upload.js";
import type { Store } from "./store.js";

export interface RegistryStoreContext {
  host: RegistryHost;
  stats: RegistryStats;
  manifests: ManifestCache;
  chunkThreshold: number;
  chunkSize: number;
  /** Opens a blob again when the registry refused the form it was sent in, or lost it (see registry-upload.ts). */
  refill?: Refill | undefined;
}

const DIGEST_REF = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const TAG = /^[\w][\w.-]{0,127}$/;

function isDigestRef(ref: string): boolean {
  return DIGEST_REF.test(ref);
}

function mediaTypeOf(contentType: string | undefined): string | undefined {
  if (!contentType) return undefined;
  return contentType.split(";")[0]?.trim() || undefined;
}

const notFound = (s: number) => (s >= 200 && s < 300) || s === 404;

/** Read at most `limit` bytes; `onExceed` builds the error thrown as soon as more arrive. */
async function readLimited(body: Readable, limit: number, onExceed: () => Error): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    const b = c as Buffer;
    n += b.length;
    if (n > limit) {
      body.destroy();
      throw onExceed();
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks, n);
}

export class RegistryStore implements Store {
  readonly registry: string;
  readonly repository: string;
  readonly label: string;
  private readonly host: RegistryHost;

  constructor(
    private readonly c: RegistryStoreContext,
    repository: string,
  ) {
    this.host = c.host;
    this.registry = c.host.registry;
    this.repository = repository;
    this.label = `registry ${this.registry}/${repository}`;
  }

  private path(kind: "manifests" | "blobs" | "tags" | "referrers" | "uploads", ref = ""): string {
    const base = this.host.api(this.repository);
    switch (kind) {
      case "manifests":
        return `${base}/manifests/${encodeURIComponent(ref)}`.replace(/%3A/g, ":");
      case "blobs":
        return `${base}/blobs/${ref}`;
      case "tags":
        return `${base}/tags/list`;
      case "referrers":
        return `${base}/referrers/${ref}`;
      case "uploads":
        return `${base}/blobs/uploads/`;
    }
  }

  private ctx(subject?: string) {
    return subject !== undefined
      ? { registry: this.registry, repository: this.repository, subject }
      : { registry: this.registry, repository: this.repository };
  }

  private checkRef(ref: string): void {
    if (isDigestRef(ref)) assertDigest(ref, `reference in ${this.label}`);
    else if (!TAG.test(ref)) throw new UsageError(`"${ref}" is neither a tag nor a digest (${this.label})`);
  }

  private async notFoundError(what: string, res: SendResult, signal?: AbortSignal): Promise<RegistryError> {
    const hint = await this.host.pathPrefixHint(signal);
    return new RegistryError(
      `${what} not found in ${this.registry}/${this.repository} (HEAD/GET answered 404)${hint ? `: ${hint}` : ""}`,
      { ...this.ctx(what), method: "GET", url: res.url },
      404,
      [],
      hint ? NO_REGISTRY_API : "NOT_FOUND",
    );
  }

  /** A manifest request by tag or digest, accepting every manifest kind; `ok` says which answers return. */
  private askManifest(
    method: "HEAD" | "GET",
    ref: string,
    ok: (status: number) => boolean,
    signal?: AbortSignal,
  ): Promise<SendResult> {
    return this.host.send({
      method,
      url: this.path("manifests", ref),
      headers: { accept: MANIFEST_ACCEPT },
      scopes: [pullScope(this.repository)],
      ctx: this.ctx(`manifest ${ref}`),
      signal,
      ok,
    });
  }

  async resolve(ref: string, signal?: AbortSignal): Promise<Descriptor> {
    this.checkRef(ref);
    const res = await this.askManifest("HEAD", ref, (s) => s < 500 && s !== 429 && s !== 408, signal);
    await res.body.dump().catch(() => undefined);
    if (res.status === 404) throw await this.notFoundError(`manifest ${ref}`, res, signal);
    if (res.status === 200) {
      const mediaType = mediaTypeOf(header(res.headers, "content-type"));
      const digest = header(res.headers, "docker-content-digest") ?? (isDigestRef(ref) ? ref : undefined);
      const len = header(res.headers, "content-length");
      if (mediaType && isManifestLike(mediaType) && digest && len !== undefined && /^\d+$/.test(len)) {
        if (isDigestRef(ref) && digest !== ref) {
          throw new IntegrityError(
            "DIGEST_MISMATCH",
            `${this.label}: asked for manifest ${ref}, the registry named ${digest}`,
            ref,
          );
        }
        assertDigest(digest, `Docker-Content-Digest from ${this.label}`);
        return { mediaType, digest, size: Number(len) };
      }
    }
    // HEAD refused or incomplete: GET and hash the bytes ourselves.
    return (await this.fetchManifest(ref, signal)).descriptor;
  }

  async fetchManifest(ref: string, signal?: AbortSignal): Promise<{ descriptor: Descriptor; bytes: Buffer }> {
    this.checkRef(ref);
    const res = await this.askManifest("GET", ref, notFound, signal);
    if (res.status === 404) {
      await res.body.dump().catch(() => undefined);
      throw await this.notFoundError(`manifest ${ref}`, res, signal);
    }
    const tooBig = () =>
      new IntegrityError(
        "MALFORMED",
        `${this.label}: manifest ${ref} is larger than the ${MAX_MANIFEST_BYTES / 1024 / 1024} MiB limit`,
        ref,
      );
    const declared = header(res.headers, "content-length");
    if (declared && Number(declared) > MAX_MANIFEST_BYTES) {
      res.body.destroy();
      throw tooBig();
    }
    const bytes = await readLimited(res.body, MAX_MANIFEST_BYTES, tooBig);
    const digest = sha256Digest(bytes);
    if (isDigestRef(ref) && digest !== ref) {
      throw new IntegrityError(
        "DIGEST_MISMATCH",
        `${this.label}: manifest ${ref} arrived with digest ${digest}`,
        ref,
      );
    }
    const claimed = header(res.headers, "docker-content-digest");
    if (claimed?.startsWith("sha256:") && claimed !== digest) {
      throw new IntegrityError(
        "DIGEST_MISMATCH",
        `${this.label}: manifest ${ref} has digest ${digest} but the registry claims ${claimed}`,
        claimed,
      );
    }
    const ct = mediaTypeOf(header(res.headers, "content-type"));
    const mediaType =
      ct && isManifestLike(ct) ? ct : (manifestMediaType(bytes) ?? ct ?? MediaType.ociManifest);
    this.c.manifests.set(digest, bytes);
    return { descriptor: { mediaType, digest, size: bytes.length }, bytes };
  }

  async exists(desc: Descriptor, signal?: AbortSignal): Promise<boolean> {
    assertDigest(desc.digest);
    const manifest = isManifestLike(desc.mediaType);
    if (manifest && this.host.hasManifest(this.repository, desc.digest)) return true;
    // A host whose blob HEAD was caught answering 200 for a blob it lacks is asked with GET (only
    // the status is read).
    const byGet = !manifest && lessonsOf(this.host).headUnreliable;
    const res = await this.host.send({
      method: byGet ? "GET" : "HEAD",
      url: manifest ? this.path("manifests", desc.digest) : this.path("blobs", desc.digest),
      ...(manifest ? { headers: { accept: MANIFEST_ACCEPT } } : {}),
      scopes: [pullScope(this.repository)],
      ctx: this.ctx(`${manifest ? "manifest" : "blob"} ${desc.digest}`),
      signal,
      ok: notFound,
    });
    if (byGet) {
      // only the status matters: stop the download (the abort it reports is expected)
      res.body.on("error", () => undefined);
      res.body.destroy();
    } else await res.body.dump().catch(() => undefined);
    if (res.status === 404) {
      if (!manifest) this.host.noteAbsent(this.repository, desc.digest);
      return false;
    }
    if (manifest) this.host.noteManifest(this.repository, desc.digest);
    else this.host.noteBlob(desc.digest, this.repository);
    return true;
  }

  async fetch(desc: Descriptor, signal?: AbortSignal): Promise<Readable> {
    assertDigest(desc.digest);
    const manifest = isManifestLike(desc.mediaType);
    if (manifest) {
      // Manifests are small and read several times in one run (resolve, plan, copy): the client's
      // cache holds bytes whose digest was computed on arrival, so a second read costs no request.
      let bytes: Buffer;
      try {
        bytes = this.c.manifests.get(desc.digest) ?? (await this.fetchManifest(desc.digest, signal)).bytes;
        if (bytes.length !== desc.size) {
          throw new IntegrityError(
            "SIZE_MISMATCH",
            `${this.label}: manifest ${desc.digest} is ${bytes.length} bytes, expected ${desc.size}`,
            desc.digest,
          );
        }
      } catch (err) {
        // As for blobs, content that does not match fails the stream; absence fails the call.
        if (!(err instanceof IntegrityError)) throw err;
        const failed = new Readable({ read() {} });
        // the error stays on the stream for its reader; no reader yet must not make it uncaught
        failed.on("error", () => {});
        failed.destroy(err);
        return failed;
      }
      const stream = Readable.from([bytes]);
      markVerified(stream, desc.digest, desc.size);
      return stream;
    }
    const what = `blob ${desc.digest}`;
    const request = {
      method: "GET" as const,
      url: this.path("blobs", desc.digest),
      scopes: [pullScope(this.repository)],
      ctx: this.ctx(what),
      signal,
    };
    const res = await this.host.send({ ...request, ok: notFound });
    if (res.status === 404) {
      await res.body.dump().catch(() => undefined);
      throw await this.notFoundError(what, res, signal);
    }
    this.host.noteBlob(desc.digest, this.repository);
    const label = `${what} from ${this.registry}/${this.repository}`;
    // One verifier for the whole blob: a broken connection resumes into it, the hash runs on.
    const verifier = new VerifyingStream(desc.digest, desc.size, label);
    this.host.resumeBodyInto(
      verifier,
      request,
      res,
      desc.size,
      label,
      "rerun resumes: the cache keeps what verified",
    );
    return verifier;
  }

  async referrers(desc: Descriptor, signal?: AbortSignal): Promise<Descriptor[]> {
    assertDigest(desc.digest);
    if (this.host.referrersApi !== false) {
      const found = await this.referrersFromApi(desc.digest, signal);
      if (found) return found;
    }
    const tag = `sha256-${digestHex(desc.digest)}`;
    let index: { descriptor: Descriptor; bytes: Buffer };
    try {
      index = await this.fetchManifest(tag, signal);
    } catch (err) {
      if (err instanceof RemoteError && err.status === 404) return [];
      throw err;
    }
    if (!isIndex(index.descriptor.mediaType)) return [];
    return this.manifestsOf(index.bytes, tag);
  }

  private manifestsOf(bytes: Buffer, what: string): Descriptor[] {
    let json: { manifests?: unknown };
    try {
      json = JSON.parse(bytes.toString("utf8")) as { manifests?: unknown };
    } catch (err) {
      throw new IntegrityError("MALFORMED", `${this.label}: ${what} is not valid JSON`, what, { cause: err });
    }
    if (!Array.isArray(json.manifests)) return [];
    return (json.manifests as Descriptor[]).filter(
      (d) =>
        d && typeof d.digest === "string" && typeof d.size === "number" && typeof d.mediaType === "string",
    );
  }

  /** Referrers through the OCI 1.1 API, following Link pagination; undefined when the registry has no such API. */
  private async referrersFromApi(digest: string, signal?: AbortSignal): Promise<Descriptor[] | undefined> {
    const out: Descriptor[] = [];
    let url: string | undefined = this.path("referrers", digest);
    for (let page = 0; url && page < 1000; page++) {
      const res: SendResult = await this.host.send({
        method: "GET",
        url,
        headers: { accept: MediaType.ociIndex },
        scopes: [pullScope(this.repository)],
        ctx: this.ctx(`referrers of ${digest}`),
        signal,
        ok: (s) => s < 500 && s !== 429 && s !== 408,
      });
      const ct = mediaTypeOf(header(res.headers, "content-type"));
      if (res.status !== 200 || ct !== MediaType.ociIndex) {
        await res.body.dump().catch(() => undefined);
        if (page === 0) return undefined;
        break;
      }
      const bytes = await readLimited(
        res.body,
        MAX_MANIFEST_BYTES,
        () =>
          new IntegrityError("MALFORMED", `${this.label}: referrers list of ${digest} is over 4 MiB`, digest),
      );
      this.host.referrersApi = true;
      out.push(...this.manifestsOf(bytes, `referrers list of ${digest}`));
      url = nextLink(header(res.headers, "link"), res.url);
    }
    return out;
  }

  async push(desc: Descriptor, content: Readable, signal?: AbortSignal): Promise<void> {
    assertDigest(desc.digest);
    if (isManifestLike(desc.mediaType)) {
      await this.pushManifest(desc, content, signal);
      return;
    }
    await this.pushBlob(desc, content, signal);
  }

  private async pushManifest(desc: Descriptor, content: Readable, signal?: AbortSignal): Promise<void> {
    if (desc.size > MAX_MANIFEST_BYTES) {
      content.destroy();
      throw new IntegrityError(
        "MALFORMED",
        `manifest ${desc.digest} is ${desc.size} bytes, over the 4 MiB limit`,
        desc.digest,
      );
    }
    const label = `manifest ${desc.digest} for ${this.registry}/${this.repository}`;
    const bytes = await readLimited(
      content,
      desc.size,
      () =>
        new IntegrityError(
          "SIZE_MISMATCH",
          `${label}: more than the expected ${desc.size} bytes arrived`,
          desc.digest,
        ),
    );
    if (bytes.length !== desc.size) {
      throw new IntegrityError(
        "SIZE_MISMATCH",
        `${label}: got ${bytes.length} bytes, expected ${desc.size}`,
        desc.digest,
      );
    }
    const got = sha256Digest(bytes);
    if (got !== desc.digest)
      throw new IntegrityError("DIGEST_MISMATCH", `${label}: content has digest ${got}`, desc.digest);

    const put = () =>
      this.host.send({
        method: "PUT",
        url: this.path("manifests", desc.digest),
        headers: { "content-type": desc.mediaType },
        body: bytes,
        scopes: [pushScope(this.repository)],
        ctx: this.ctx(`manifest ${desc.digest}`),
        signal,
      });
    let res: SendResult;
    try {
      res = await put();
    } catch (err) {
      // A blob HEAD that said "present" for a blob this repository lacks (Artifactory) shows here:
      // upload the blobs the registry names, then try once more.
      const missing = this.c.refill ? blobsUnknownTo(err, bytes) : [];
      if (missing.length === 0) throw err;
      lessonsOf(this.host).headUnreliable = true;
      for (const d of missing) {
        await uploadBlob(this.uploadContext(), d, await this.c.refill!(d, signal), signal);
      }
      res = await put();
    }
    await res.body.dump().catch(() => undefined);
    this.c.manifests.set(desc.digest, bytes);
    this.host.noteManifest(this.repository, desc.digest);

    let subject: Descriptor | undefined;
    let parsed: {
      subject?: Descriptor;
      artifactType?: string;
      config?: Descriptor;
      annotations?: Record<string, string>;
    };
    try {
      parsed = JSON.parse(bytes.toString("utf8")) as typeof parsed;
      subject = parsed.subject;
    } catch {
      return;
    }
    if (!subject || typeof subject.digest !== "string") return;
    // A registry with the referrers API says so with OCI-Subject; otherwise keep the tag-schema index.
    if (header(res.headers, "oci-subject")) {
      this.host.referrersApi = true;
      return;
    }
    const entry: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
    const artifactType = parsed.artifactType ?? parsed.config?.mediaType;
    if (artifactType) entry.artifactType = artifactType;
    if (parsed.annotations && Object.keys(parsed.annotations).length > 0)
      entry.annotations = parsed.annotations;
    await this.addToReferrersTag(assertDigest(subject.digest, `subject of ${label}`), entry, signal);
  }

  private async addToReferrersTag(
    subjectDigest: string,
    entry: Descriptor,
    signal?: AbortSignal,
  ): Promise<void> {
    const tag = `sha256-${digestHex(subjectDigest)}`;
    await this.host.withLock(`${this.repository}:${tag}`, async () => {
      let manifests: Descriptor[] = [];
      let existing: { descriptor: Descriptor; bytes: Buffer } | undefined;
      try {
        existing = await this.fetchManifest(tag, signal);
      } catch (err) {
        if (!(err instanceof RemoteError && err.status === 404)) throw err;
      }
      if (existing && isIndex(existing.descriptor.mediaType)) {
        manifests = this.manifestsOf(existing.bytes, tag);
        if (manifests.some((d) => d.digest === entry.digest)) return;
      }
      const index = {
        schemaVersion: 2,
        mediaType: MediaType.ociIndex,
        manifests: [...manifests.filter((d) => d.digest !== entry.digest), entry],
      };
      const bytes = Buffer.from(JSON.stringify(index));
      const res = await this.host.send({
        method: "PUT",
        url: this.path("manifests", tag),
        headers: { "content-type": MediaType.ociIndex },
        body: bytes,
        scopes: [pushScope(this.repository)],
        ctx: this.ctx(`referrers tag ${tag}`),
        signal,
      });
      await res.body.dump().catch(() => undefined);
      this.c.manifests.set(sha256Digest(bytes), bytes);
    });
  }

  private async pushBlob(desc: Descriptor, content: Readable, signal?: AbortSignal): Promise<void> {
    // A caller that just found the blob missing (copyGraph, import) is not asked again.
    if (!this.host.takeAbsent(this.repository, desc.digest) && (await this.exists(desc, signal))) {
      content.destroy();
      return;
    }
    await uploadBlob(this.uploadContext(), desc, content, signal);
  }

  private uploadContext(): UploadContext {
    return {
      host: this.host,
      registry: this.registry,
      repository: this.repository,
      label: this.label,
      stats: this.c.stats,
      chunkThreshold: this.c.chunkThreshold,
      chunkSize: this.c.chunkSize,
      refill: this.c.refill,
    };
  }

  /**
   * Does `tag` name `digest` in this repository now? A HEAD (or what this run already learned); a
   * tag the repository lacks is a no.
   */
  async tagNames(tag: string, digest: string, signal?: AbortSignal): Promise<boolean> {
    if (!TAG.test(tag)) throw new UsageError(`"${tag}" is not a valid tag (${this.label})`);
    const known = this.host.tagTarget(this.repository, tag);
    if (known !== undefined) return known === digest;
    const res = await this.askManifest("HEAD", tag, notFound, signal);
    await res.body.dump().catch(() => undefined);
    if (res.status === 404) return false;
    // Without Docker-Content-Digest the manifest is read and hashed (resolve does both).
    const current = header(res.headers, "docker-content-digest") ?? (await this.resolve(tag, signal)).digest;
    this.host.noteTag(this.repository, tag, current);
    return current === digest;
  }

  async tag(desc: Descriptor, tag: string, signal?: AbortSignal): Promise<void> {
    assertDigest(desc.digest);
    if (!TAG.test(tag)) throw new UsageError(`"${tag}" is not a valid tag (${this.label})`);
    let bytes = this.c.manifests.get(desc.digest);
    if (!bytes) {
      // Not pushed in this run: the tag may already name it (a re-run), which needs no write.
      if (await this.tagNames(tag, desc.digest, signal)) return;
      bytes = (await this.fetchManifest(desc.digest, signal)).bytes;
    }
    const res = await this.host.send({
      method: "PUT",
      url: this.path("manifests", tag),
      headers: { "content-type": desc.mediaType },
      body: bytes,
      scopes: [pushScope(this.repository)],
      ctx: this.ctx(`tag ${tag} → ${desc.digest}`),
      signal,
    });
    await res.body.dump().catch(() => undefined);
    this.host.noteTag(this.repository, tag, desc.digest);
  }

  async listTags(signal?: AbortSignal): Promise<string[]> {
    const tags: string[] = [];
    const seen = new Set<string>();
    let url: string | undefined = `${this.path("tags")}?n=1000`;
    for (let page = 0; url && page < 10_000; page++) {
      const res: SendResult = await this.host.send({
        method: "GET",
        url,
        scopes: [pullScope(this.repository)],
        ctx: this.ctx("tag list"),
        signal,
        ok: notFound,
      });
      if (res.status === 404) {
        await res.body.dump().catch(() => undefined);
        return tags;
      }
      const bytes = await readLimited(
        res.body,
        64 * 1024 * 1024,
        () => new RemoteError(`${this.label}: tag list page is over 64 MiB`, res.status),
      );
      let json: { tags?: unknown };
      try {
        json = JSON.parse(bytes.toString("utf8")) as { tags?: unknown };
      } catch (err) {
        throw new RemoteError(`${this.label}: the tag list is not JSON`, res.status, "MALFORMED", {
          cause: err,
        });
      }
      let added = 0;
      for (const t of Array.isArray(json.tags) ? json.tags : []) {
        if (typeof t === "string" && !seen.has(t)) {
          seen.add(t);
          tags.push(t);
          added++;
        }
      }
      const next = nextLink(header(res.headers, "link"), res.url);
      if (!next || added === 0) break;
      url = next;
    }
    return tags;
  }
}

/** The `rel="next"` target of a Link header, resolved against the URL that answered. */
export function nextLink(link: string | undefined, base: string): string | undefined {
  if (!link) return undefined;
  for (const part of link.split(",")) {
    const m = /<([^>]*)>\s*;(.*)$/.exec(part.trim());
    if (m?.[1] !== undefined && /rel="?next"?/i.test(m[2] ?? "")) return new URL(m[1], base).toString();
  }
  return undefined;
}

/**
 * The blobs of a manifest that a MANIFEST_BLOB_UNKNOWN refusal of it names (all its blobs when the
 * registry names none it holds); [] for any other error.
 */
function blobsUnknownTo(err: unknown, manifestBytes: Buffer): Descriptor[] {
  if (!(err instanceof RegistryError)) return [];
  const unknown = err.errors.filter((e) => e.code === "MANIFEST_BLOB_UNKNOWN" || e.code === "BLOB_UNKNOWN");
  if (unknown.length === 0) return [];
  let parsed: { config?: Descriptor; layers?: Descriptor[] };
  try {
    parsed = JSON.parse(manifestBytes.toString("utf8")) as typeof parsed;
  } catch {
    return [];
  }
  const blobs = [parsed.config, ...(Array.isArray(parsed.layers) ? parsed.layers : [])].filter(
    (d): d is Descriptor =>
      !!d && typeof d.digest === "string" && typeof d.size === "number" && typeof d.mediaType === "string",
  );
  const named = new Set(
    unknown.flatMap((e) => {
      const d = e.detail as unknown;
      if (typeof d === "string") return [d];
      if (d && typeof d === "object" && typeof (d as { digest?: unknown }).digest === "string")
        return [(d as { digest: string }).digest];
      return [];
    }),
  );
  const picked = blobs.filter((d) => named.has(d.digest));
  const chosen = picked.length > 0 ? picked : blobs;
  return [...new Map(chosen.map((d) => [d.digest, d])).values()];
}

/** A store for one repository of one registry, e.g. `registryRepository(client, "127.0.0.1:5000", "test/app")`. */
export function registryRepository(
  client: RegistryClient,
  registry: string,
  repository: string,
  options: { refill?: Refill } = {},
): RegistryStore {
  return new RegistryStore(
    {
      host: client.host(registry),
      stats: client.stats,
      manifests: client.manifests,
      chunkThreshold: client.chunkThreshold,
      chunkSize: client.chunkSize,
      refill: options.refill,
    },
    repository,
  );
}
