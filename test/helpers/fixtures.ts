/**
 * Test content for registries, pushed with plain HTTP (undici) and written independently of the
 * product's registry client, so the client is tested against code that shares none of its mistakes.
 *
 * Layers are streamed: random bytes are generated, hashed and uploaded chunk by chunk (a chunked
 * PATCH, then the closing PUT with the digest), so a 1 GiB layer costs no more memory than a small one.
 */
import { createHash, createSign, type KeyObject, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import { PassThrough, Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { Agent, type Dispatcher, request } from "undici";
import { needEnv } from "./env.js";

// Media types are spelled out here rather than imported, to keep this code independent of the product.
export const MT = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociEmpty: "application/vnd.oci.empty.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  cosignSimpleSigning: "application/vnd.dev.cosign.simplesigning.v1+json",
} as const;

const MANIFEST_ACCEPT = [MT.ociIndex, MT.ociManifest, MT.dockerList, MT.dockerManifest].join(", ");

/** The empty JSON object `{}`: OCI 1.1's config of artifacts. */
export const EMPTY_JSON = Buffer.from("{}");
export const EMPTY_DESCRIPTOR: Descriptor = {
  mediaType: MT.ociEmpty,
  digest: sha256(EMPTY_JSON),
  size: 2,
  data: "e30=",
};

export const COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature";
export const TITLE_ANNOTATION = "org.opencontainers.image.title";

export interface Target {
  /** host:port */
  host: string;
  scheme: "http" | "https";
  auth?: { user: string; password: string };
  /** PEM text or a path to a PEM file. */
  ca?: string;
  cert?: string;
  key?: string;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  artifactType?: string;
  annotations?: Record<string, string>;
  data?: string;
}

export interface PushedLayer extends Descriptor {
  /** Digest of the uncompressed tar (the config's rootfs.diff_ids entry). */
  diffId: string;
  /** Repository the blob was pushed to (a source for cross-repository mounts). */
  repo: string;
}

export interface PushedManifest {
  repo: string;
  /** Tag it was pushed under, if any. */
  tag?: string;
  digest: string;
  size: number;
  mediaType: string;
  manifestBytes: Buffer;
}

export interface PushedImage extends PushedManifest {
  config: Descriptor;
  layers: PushedLayer[];
  platform: Platform;
}

export interface PushedIndex extends PushedManifest {
  children: PushedImage[];
}

export type ImageFormat = "oci" | "docker";

export interface ImageOptions {
  /** Size in bytes of the random file in each new layer (the tar around it adds 1.5 KiB). */
  layerSizes: number[];
  format?: ImageFormat;
  /** Layers of an image pushed earlier, placed first (a shared base); mounted across repositories. */
  sharedLayers?: PushedLayer[];
  platform?: Platform;
  /** OCI only: "none" (default, application/vnd.oci.image.layer.v1.tar) or "gzip" (level 0). Docker is always gzip level 0. */
  compression?: "none" | "gzip";
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
}

export const DEFAULT_PLATFORMS: Platform[] = [
  { os: "linux", architecture: "amd64" },
  { os: "linux", architecture: "arm64", variant: "v8" },
];

// ---------------------------------------------------------------- targets from the test environment

function pemOrFile(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  return v.includes("-----BEGIN") ? v : readFileSync(v, "utf8");
}

/** The anonymous plain-HTTP registry. */
export function plainTarget(): Target {
  return { host: needEnv("AIRGAP_TEST_REGISTRY_PLAIN"), scheme: "http" };
}

/** The HTTPS registry with Basic auth (test CA). */
export function tlsTarget(): Target {
  return {
    host: needEnv("AIRGAP_TEST_REGISTRY_TLS"),
    scheme: "https",
    auth: { user: needEnv("AIRGAP_TEST_REGISTRY_USER"), password: needEnv("AIRGAP_TEST_REGISTRY_PASSWORD") },
    ca: needEnv("AIRGAP_TEST_CA"),
  };
}

/** The HTTPS registry that requires the test client certificate. */
export function mtlsTarget(): Target {
  return {
    host: needEnv("AIRGAP_TEST_REGISTRY_MTLS"),
    scheme: "https",
    ca: needEnv("AIRGAP_TEST_CA"),
    cert: needEnv("AIRGAP_TEST_CLIENT_CERT"),
    key: needEnv("AIRGAP_TEST_CLIENT_KEY"),
  };
}

/** A repository name no other test uses: `<prefix>-<random>`. */
export function uniqueRepo(prefix = "fixture"): string {
  return `${prefix}-${randomBytes(5).toString("hex")}`;
}

// ---------------------------------------------------------------- HTTP with minimal auth

const agents = new Map<string, Dispatcher>();
const authCache = new Map<string, string>();

function targetKey(t: Target): string {
  return `${t.scheme}://${t.host}|${t.auth?.user ?? ""}`;
}

function dispatcherFor(t: Target): Dispatcher {
  const key = `${targetKey(t)}|${t.ca ?? ""}|${t.cert ?? ""}`;
  let agent = agents.get(key);
  if (!agent) {
    agent = new Agent({
      connect: { ca: pemOrFile(t.ca), cert: pemOrFile(t.cert), key: pemOrFile(t.key) },
      // Slow test machines: large layers take a while between chunks.
      bodyTimeout: 300_000,
      headersTimeout: 300_000,
    });
    agents.set(key, agent);
  }
  return agent;
}

/** Close the HTTP connections the fixtures opened (call in afterAll to let the worker exit quickly). */
export async function closeFixtures(): Promise<void> {
  const all = [...agents.values()];
  agents.clear();
  await Promise.all(all.map((a) => a.close()));
}

function baseUrl(t: Target): string {
  return `${t.scheme}://${t.host}`;
}

function header(h: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

function parseChallenge(value: string): { scheme: string; params: Record<string, string> } {
  const m = /^(\w+)\s*(.*)$/s.exec(value.trim());
  const params: Record<string, string> = {};
  if (!m) return { scheme: "", params };
  for (const p of (m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)) params[p[1]!.toLowerCase()] = p[2]!;
  return { scheme: m[1]!.toLowerCase(), params };
}

async function authorize(t: Target, challenge: string, scope: string): Promise<string> {
  const { scheme, params } = parseChallenge(challenge);
  const basic = t.auth
    ? `Basic ${Buffer.from(`${t.auth.user}:${t.auth.password}`).toString("base64")}`
    : undefined;
  if (scheme === "basic") {
    if (!basic) throw new Error(`${t.host} wants Basic credentials and the target has none`);
    return basic;
  }
  if (scheme === "bearer") {
    if (!params.realm) throw new Error(`${t.host}: Bearer challenge without realm: ${challenge}`);
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set("service", params.service);
    url.searchParams.set("scope", params.scope ?? scope);
    const res = await request(url, {
      dispatcher: dispatcherFor(t),
      headers: basic ? { authorization: basic } : {},
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`token from ${url}: HTTP ${res.statusCode} ${text}`);
    const json = JSON.parse(text) as { token?: string; access_token?: string };
    const token = json.token ?? json.access_token;
    if (!token) throw new Error(`token from ${url}: no token in answer`);
    return `Bearer ${token}`;
  }
  throw new Error(`${t.host}: unsupported auth challenge ${challenge}`);
}

interface CallOptions {
  method?: Dispatcher.HttpMethod;
  headers?: Record<string, string>;
  body?: Buffer | string | Readable;
  /** Repository the call is about, for Bearer token scopes. */
  repo?: string;
}

interface CallResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/**
 * One registry request; on 401 it answers the challenge once and retries, which only works for
 * bodies it can replay, so streamed uploads go after an unstreamed request has primed the auth.
 */
async function call(t: Target, pathOrUrl: string, opts: CallOptions = {}): Promise<CallResult> {
  const url = pathOrUrl.startsWith("http") ? pathOrUrl : `${baseUrl(t)}${pathOrUrl}`;
  const scope = opts.repo ? `repository:${opts.repo}:pull,push` : "registry:catalog:*";
  const cacheKey = `${targetKey(t)}|${opts.repo ?? ""}`;
  for (let attempt = 0; ; attempt++) {
    const auth = authCache.get(cacheKey) ?? authCache.get(`${targetKey(t)}|basic`);
    const res = await request(url, {
      method: opts.method ?? "GET",
      dispatcher: dispatcherFor(t),
      headers: { ...(opts.headers ?? {}), ...(auth ? { authorization: auth } : {}) },
      body: opts.body,
    });
    if (res.statusCode === 401 && attempt === 0 && !(opts.body instanceof Readable)) {
      await res.body.dump();
      const challenge = header(res.headers, "www-authenticate");
      if (!challenge) throw new Error(`${opts.method ?? "GET"} ${url}: 401 without a challenge`);
      const value = await authorize(t, challenge, scope);
      authCache.set(value.startsWith("Basic") ? `${targetKey(t)}|basic` : cacheKey, value);
      continue;
    }
    const body = Buffer.from(await res.body.arrayBuffer());
    return { status: res.statusCode, headers: res.headers, body };
  }
}

function fail(what: string, r: CallResult): never {
  throw new Error(`${what}: HTTP ${r.status} ${r.body.toString("utf8").slice(0, 500)}`);
}

// ---------------------------------------------------------------- digests and streams

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** Passes bytes through and records their sha256 and count. */
class Hasher extends Transform {
  private readonly hash = createHash("sha256");
  size = 0;
  digest = "";
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    this.digest = `sha256:${this.hash.digest("hex")}`;
    cb();
  }
}

const CHUNK = 1024 * 1024;

function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  const put = (s: string, off: number, len: number) => h.write(s.slice(0, len), off, len, "ascii");
  const octal = (n: number, len: number) => n.toString(8).padStart(len - 1, "0");
  put(name, 0, 100);
  put(octal(0o644, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(size, 12), 124, 12);
  put(octal(0, 12), 136, 12);
  h.fill(" ", 148, 156);
  put("0", 156, 1);
  put("ustar\u0000", 257, 6);
  put("00", 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  put(`${sum.toString(8).padStart(6, "0")}\u0000 `, 148, 8);
  return h;
}

/** A tar holding one file of `size` random bytes, generated as it is read. */
export function randomTarStream(size: number, name = `blob-${randomBytes(6).toString("hex")}.bin`): Readable {
  function* parts(): Generator<Buffer> {
    yield tarHeader(name, size);
    let left = size;
    while (left > 0) {
      const n = Math.min(CHUNK, left);
      yield randomBytes(n);
      left -= n;
    }
    const pad = (512 - (size % 512)) % 512;
    yield Buffer.alloc(pad + 1024);
  }
  return Readable.from(parts(), { objectMode: false });
}

/** Size of the tar `randomTarStream(size)` produces. */
export function randomTarSize(size: number): number {
  return 512 + Math.ceil(size / 512) * 512 + 1024;
}

// ---------------------------------------------------------------- blobs

export async function blobExists(t: Target, repo: string, digest: string): Promise<boolean> {
  const r = await call(t, `/v2/${repo}/blobs/${digest}`, { method: "HEAD", repo });
  if (r.status === 200) return true;
  if (r.status === 404) return false;
  fail(`HEAD blob ${digest} in ${repo}`, r);
}

function resolveLocation(t: Target, r: CallResult, what: string): string {
  const loc = header(r.headers, "location");
  if (!loc) fail(`${what}: no Location`, r);
  return new URL(loc, baseUrl(t)).toString();
}

/** Upload a blob held in memory (configs, manifests' companions, artifact files). */
export async function pushBlob(t: Target, repo: string, data: Buffer | string): Promise<Descriptor> {
  const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data);
  const digest = sha256(bytes);
  if (!(await blobExists(t, repo, digest))) {
    const start = await call(t, `/v2/${repo}/blobs/uploads/`, { method: "POST", repo });
    if (start.status !== 202) fail(`start upload in ${repo}`, start);
    const url = new URL(resolveLocation(t, start, "start upload"));
    url.searchParams.set("digest", digest);
    const put = await call(t, url.toString(), {
      method: "PUT",
      repo,
      body: bytes,
      headers: { "content-type": "application/octet-stream", "content-length": String(bytes.length) },
    });
    if (put.status !== 201) fail(`PUT blob ${digest} in ${repo}`, put);
  }
  return { mediaType: "application/octet-stream", digest, size: bytes.length };
}

/**
 * Stream a blob whose digest is not known up front: one chunked PATCH while hashing, then the
 * closing PUT with the digest. Returns the digest and size the registry stored.
 */
export async function pushBlobStream(
  t: Target,
  repo: string,
  source: Readable,
): Promise<{ digest: string; size: number }> {
  const start = await call(t, `/v2/${repo}/blobs/uploads/`, { method: "POST", repo });
  if (start.status !== 202) fail(`start upload in ${repo}`, start);
  const hasher = new Hasher();
  const body = new PassThrough();
  const [patch] = await Promise.all([
    call(t, resolveLocation(t, start, "start upload"), {
      method: "PATCH",
      repo,
      body,
      headers: { "content-type": "application/octet-stream" },
    }),
    pipeline(source, hasher, body),
  ]);
  if (patch.status !== 202) fail(`PATCH upload in ${repo}`, patch);
  const url = new URL(resolveLocation(t, patch, "PATCH upload"));
  url.searchParams.set("digest", hasher.digest);
  const put = await call(t, url.toString(), { method: "PUT", repo, headers: { "content-length": "0" } });
  if (put.status !== 201) fail(`PUT blob ${hasher.digest} in ${repo}`, put);
  return { digest: hasher.digest, size: hasher.size };
}

/** A new random layer: a tar of one random file, uncompressed or gzip level 0. */
export async function pushRandomLayer(
  t: Target,
  repo: string,
  size: number,
  opts: { mediaType?: string; gzip?: boolean } = {},
): Promise<PushedLayer> {
  const gzip = opts.gzip ?? false;
  const tar = randomTarStream(size);
  if (!gzip) {
    const { digest, size: n } = await pushBlobStream(t, repo, tar);
    return { mediaType: opts.mediaType ?? MT.ociLayer, digest, size: n, diffId: digest, repo };
  }
  // Random data does not compress; level 0 keeps gzip from costing more than the upload.
  const diff = new Hasher();
  const compressed = new PassThrough();
  const piping = pipeline(tar, diff, createGzip({ level: 0 }), compressed);
  const [{ digest, size: n }] = await Promise.all([pushBlobStream(t, repo, compressed), piping]);
  return { mediaType: opts.mediaType ?? MT.ociLayerGzip, digest, size: n, diffId: diff.digest, repo };
}

/** Make a layer pushed elsewhere available in `repo`: cross-repository mount, else fail loudly. */
async function ensureLayer(t: Target, repo: string, layer: PushedLayer): Promise<void> {
  if (await blobExists(t, repo, layer.digest)) return;
  const r = await call(
    t,
    `/v2/${repo}/blobs/uploads/?mount=${encodeURIComponent(layer.digest)}&from=${encodeURIComponent(layer.repo)}`,
    { method: "POST", repo },
  );
  if (r.status === 201) return;
  if (r.status === 202) {
    // The registry opened an upload instead of mounting; cancel it so it does not linger.
    await call(t, resolveLocation(t, r, "mount"), { method: "DELETE", repo });
  }
  throw new Error(
    `shared layer ${layer.digest} is not in ${repo} and could not be mounted from ${layer.repo}`,
  );
}

// ---------------------------------------------------------------- manifests

/** PUT a manifest under a tag or its digest; checks the registry's digest matches the bytes. */
export async function putManifest(
  t: Target,
  repo: string,
  ref: string | undefined,
  mediaType: string,
  bytes: Buffer,
): Promise<PushedManifest> {
  const digest = sha256(bytes);
  const r = await call(t, `/v2/${repo}/manifests/${ref ?? digest}`, {
    method: "PUT",
    repo,
    body: bytes,
    headers: { "content-type": mediaType },
  });
  if (r.status !== 201) fail(`PUT manifest ${repo}:${ref ?? digest}`, r);
  const got = header(r.headers, "docker-content-digest");
  if (got && got !== digest)
    throw new Error(`registry stored ${repo} manifest as ${got}, expected ${digest}`);
  return {
    repo,
    ...(ref && !ref.startsWith("sha256:") ? { tag: ref } : {}),
    digest,
    size: bytes.length,
    mediaType,
    manifestBytes: bytes,
  };
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

/** Push a random single-platform image (OCI or Docker v2s2) and tag it. */
export async function pushImage(
  t: Target,
  repo: string,
  tag: string | undefined,
  opts: ImageOptions,
): Promise<PushedImage> {
  const format = opts.format ?? "oci";
  const platform = opts.platform ?? { os: "linux", architecture: "amd64" };
  const layers: PushedLayer[] = [];
  for (const shared of opts.sharedLayers ?? []) {
    await ensureLayer(t, repo, shared);
    layers.push({ ...shared, repo });
  }
  for (const size of opts.layerSizes) {
    layers.push(
      format === "docker"
        ? await pushRandomLayer(t, repo, size, { gzip: true, mediaType: MT.dockerLayer })
        : await pushRandomLayer(t, repo, size, { gzip: opts.compression === "gzip" }),
    );
  }
  const configBytes = json({
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    created: new Date().toISOString(),
    config: { Labels: opts.labels ?? {} },
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    history: layers.map(() => ({ created_by: "airgap test fixture" })),
  });
  const configBlob = await pushBlob(t, repo, configBytes);
  const config: Descriptor = {
    mediaType: format === "docker" ? MT.dockerConfig : MT.ociConfig,
    digest: configBlob.digest,
    size: configBlob.size,
  };
  const mediaType = format === "docker" ? MT.dockerManifest : MT.ociManifest;
  const manifest = {
    schemaVersion: 2,
    mediaType,
    config,
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    ...(opts.annotations && format === "oci" ? { annotations: opts.annotations } : {}),
  };
  const pushed = await putManifest(t, repo, tag, mediaType, json(manifest));
  return { ...pushed, config, layers, platform };
}

/** Push a multi-platform image: an OCI index or a Docker manifest list over one image per platform. */
export async function pushIndex(
  t: Target,
  repo: string,
  tag: string | undefined,
  opts: Omit<ImageOptions, "platform"> & { platforms?: Platform[]; annotations?: Record<string, string> },
): Promise<PushedIndex> {
  const format = opts.format ?? "oci";
  const children: PushedImage[] = [];
  for (const platform of opts.platforms ?? DEFAULT_PLATFORMS) {
    children.push(await pushImage(t, repo, undefined, { ...opts, annotations: undefined, platform }));
  }
  const mediaType = format === "docker" ? MT.dockerList : MT.ociIndex;
  const index = {
    schemaVersion: 2,
    mediaType,
    manifests: children.map((c) => ({
      mediaType: c.mediaType,
      digest: c.digest,
      size: c.size,
      platform: c.platform,
    })),
    ...(opts.annotations && format === "oci" ? { annotations: opts.annotations } : {}),
  };
  const pushed = await putManifest(t, repo, tag, mediaType, json(index));
  return { ...pushed, children };
}

// ---------------------------------------------------------------- cosign and OCI 1.1 artifacts

/** Turns the simple-signing payload into a signature (base64 of DER, as cosign stores it). */
export type Signer = (payload: Buffer) => string | Promise<string>;

/** An ECDSA (P-256) / SHA-256 signer over the payload, as `cosign sign --key` produces. */
export function ecdsaSigner(privateKey: KeyObject | string): Signer {
  return (payload) => createSign("sha256").update(payload).sign(privateKey).toString("base64");
}

export function cosignTag(digest: string, suffix: "sig" | "att" | "sbom" = "sig"): string {
  return `${digest.replace(":", "-")}.${suffix}`;
}

/** The payload cosign signs: which image (by digest) the signature is for. */
export function simpleSigningPayload(dockerReference: string, digest: string): Buffer {
  return json({
    critical: {
      identity: { "docker-reference": dockerReference },
      image: { "docker-manifest-digest": digest },
      type: "cosign container image signature",
    },
    optional: null,
  });
}

/**
 * Attach a cosign-style signature to `subjectDigest`: the `sha256-<hex>.sig` tag, one simple-signing
 * layer per signature (appended when the tag exists, like cosign). Without a signer the signature is
 * a real one by a throwaway key nobody trusts.
 */
export async function pushCosignSignature(
  t: Target,
  repo: string,
  subjectDigest: string,
  opts: { signer?: Signer; dockerReference?: string } = {},
): Promise<PushedImage & { payload: Buffer; signature: string }> {
  const payload = simpleSigningPayload(opts.dockerReference ?? `${t.host}/${repo}`, subjectDigest);
  const signer = opts.signer ?? (await throwawaySigner());
  const signature = await signer(payload);
  const blob = await pushBlob(t, repo, payload);
  const tag = cosignTag(subjectDigest);
  const layer: PushedLayer = {
    mediaType: MT.cosignSimpleSigning,
    digest: blob.digest,
    size: blob.size,
    annotations: { [COSIGN_SIGNATURE_ANNOTATION]: signature },
    diffId: blob.digest,
    repo,
  };
  const existing = await getManifest(t, repo, tag).catch(() => undefined);
  const previous = existing
    ? ((JSON.parse(existing.bytes.toString("utf8")) as { layers: PushedLayer[] }).layers ?? [])
    : [];
  const layers = [...previous.map((l) => ({ ...l, diffId: l.digest, repo })), layer];
  const configBytes = json({
    architecture: "",
    os: "",
    created: "0001-01-01T00:00:00Z",
    config: {},
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
    history: layers.map(() => ({ created: "0001-01-01T00:00:00Z" })),
  });
  const configBlob = await pushBlob(t, repo, configBytes);
  const config: Descriptor = { mediaType: MT.ociConfig, digest: configBlob.digest, size: configBlob.size };
  const manifest = {
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    config,
    layers: layers.map((l) => ({
      mediaType: l.mediaType,
      size: l.size,
      digest: l.digest,
      annotations: l.annotations,
    })),
  };
  const pushed = await putManifest(t, repo, tag, MT.ociManifest, json(manifest));
  return { ...pushed, config, layers, platform: { os: "", architecture: "" }, payload, signature };
}

let throwaway: Signer | undefined;
async function throwawaySigner(): Promise<Signer> {
  if (!throwaway) {
    const { generateKeyPairSync } = await import("node:crypto");
    throwaway = ecdsaSigner(generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey);
  }
  return throwaway;
}

export interface ArtifactFile {
  /** org.opencontainers.image.title of the layer. */
  name: string;
  content: Buffer | string;
  mediaType?: string;
}

export interface PushedArtifact extends PushedManifest {
  artifactType: string;
  layers: Descriptor[];
  subject?: Descriptor;
  /** The referrers tag-schema index (`sha256-<hex>` of the subject) after the update. */
  referrersIndex?: PushedManifest;
}

/**
 * Push an OCI 1.1 artifact (image manifest with `artifactType` and the empty config). With a subject,
 * also maintain the referrers tag schema (`sha256-<subject hex>` index), since distribution 2.8 has
 * no referrers API.
 */
export async function pushArtifact(
  t: Target,
  repo: string,
  opts: {
    artifactType: string;
    files: ArtifactFile[];
    subject?: Pick<Descriptor, "mediaType" | "digest" | "size">;
    tag?: string;
    annotations?: Record<string, string>;
  },
): Promise<PushedArtifact> {
  await pushBlob(t, repo, EMPTY_JSON);
  const layers: Descriptor[] = [];
  for (const f of opts.files) {
    const b = await pushBlob(t, repo, f.content);
    layers.push({
      mediaType: f.mediaType ?? "application/octet-stream",
      digest: b.digest,
      size: b.size,
      annotations: { [TITLE_ANNOTATION]: f.name },
    });
  }
  const subject = opts.subject
    ? { mediaType: opts.subject.mediaType, digest: opts.subject.digest, size: opts.subject.size }
    : undefined;
  const annotations = {
    "org.opencontainers.image.created": new Date().toISOString(),
    ...(opts.annotations ?? {}),
  };
  const manifest = {
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    artifactType: opts.artifactType,
    config: EMPTY_DESCRIPTOR,
    layers: layers.length > 0 ? layers : [EMPTY_DESCRIPTOR],
    ...(subject ? { subject } : {}),
    annotations,
  };
  const pushed = await putManifest(t, repo, opts.tag, MT.ociManifest, json(manifest));
  const result: PushedArtifact = {
    ...pushed,
    artifactType: opts.artifactType,
    layers,
    ...(subject ? { subject } : {}),
  };
  if (subject) {
    result.referrersIndex = await addReferrer(t, repo, subject.digest, {
      mediaType: MT.ociManifest,
      digest: pushed.digest,
      size: pushed.size,
      artifactType: opts.artifactType,
      annotations,
    });
  }
  return result;
}

/** Add a descriptor to the `sha256-<hex>` referrers index of `subjectDigest` (created when absent). */
export async function addReferrer(
  t: Target,
  repo: string,
  subjectDigest: string,
  desc: Descriptor,
): Promise<PushedManifest> {
  const tag = subjectDigest.replace(":", "-");
  const existing = await getManifest(t, repo, tag).catch(() => undefined);
  const manifests: Descriptor[] = existing
    ? ((JSON.parse(existing.bytes.toString("utf8")) as { manifests?: Descriptor[] }).manifests ?? [])
    : [];
  if (!manifests.some((m) => m.digest === desc.digest)) manifests.push(desc);
  const index = { schemaVersion: 2, mediaType: MT.ociIndex, manifests };
  return putManifest(t, repo, tag, MT.ociIndex, json(index));
}

// ---------------------------------------------------------------- reading back

export interface FetchedManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

/** GET a manifest by tag or digest with every manifest type accepted; the digest is of the bytes. */
export async function getManifest(t: Target, repo: string, ref: string): Promise<FetchedManifest> {
  const r = await call(t, `/v2/${repo}/manifests/${ref}`, { repo, headers: { accept: MANIFEST_ACCEPT } });
  if (r.status !== 200) fail(`GET manifest ${repo}:${ref}`, r);
  const digest = sha256(r.body);
  const claimed = header(r.headers, "docker-content-digest");
  if (claimed && claimed !== digest)
    throw new Error(`${repo}:${ref}: header digest ${claimed} != body ${digest}`);
  return { digest, mediaType: header(r.headers, "content-type") ?? "", bytes: r.body };
}

/** The digest a tag points at (HEAD, Docker-Content-Digest), or undefined when the tag is absent. */
export async function manifestDigest(t: Target, repo: string, ref: string): Promise<string | undefined> {
  const r = await call(t, `/v2/${repo}/manifests/${ref}`, {
    method: "HEAD",
    repo,
    headers: { accept: MANIFEST_ACCEPT },
  });
  if (r.status === 404) return undefined;
  if (r.status !== 200) fail(`HEAD manifest ${repo}:${ref}`, r);
  return header(r.headers, "docker-content-digest");
}

/** Tags of a repository, sorted (the registry returns them unsorted). */
export async function listTags(t: Target, repo: string): Promise<string[]> {
  const r = await call(t, `/v2/${repo}/tags/list`, { repo });
  if (r.status === 404) return [];
  if (r.status !== 200) fail(`tags of ${repo}`, r);
  return ((JSON.parse(r.body.toString("utf8")) as { tags: string[] | null }).tags ?? []).sort();
}

/** Read a blob fully (small blobs only: configs, artifact files). Verifies its digest. */
export async function getBlob(t: Target, repo: string, digest: string): Promise<Buffer> {
  const r = await call(t, `/v2/${repo}/blobs/${digest}`, { repo });
  if (r.status !== 200) fail(`GET blob ${digest} in ${repo}`, r);
  if (sha256(r.body) !== digest) throw new Error(`blob ${digest} in ${repo} does not match its digest`);
  return r.body;
}

/** Every blob digest a manifest (and, for an index, its children) refers to, recursively. */
export async function listBlobs(t: Target, repo: string, ref: string): Promise<string[]> {
  const out = new Set<string>();
  const walk = async (r: string): Promise<void> => {
    const m = await getManifest(t, repo, r);
    const doc = JSON.parse(m.bytes.toString("utf8")) as {
      manifests?: Descriptor[];
      config?: Descriptor;
      layers?: Descriptor[];
    };
    for (const child of doc.manifests ?? []) await walk(child.digest);
    if (doc.config) out.add(doc.config.digest);
    for (const l of doc.layers ?? []) out.add(l.digest);
  };
  await walk(ref);
  return [...out].sort();
}

export interface StoredBlob {
  digest: string;
  size: number;
  mtimeMs: number;
  ino: number;
}

/**
 * Blobs in a distribution registry's filesystem storage (e.g. AIRGAP_TEST_REGISTRY_TLS_STORAGE),
 * with inode and mtime, so a test can prove an import did not write a blob again.
 */
export async function listStoredBlobs(storageRoot: string): Promise<Map<string, StoredBlob>> {
  const dir = path.join(storageRoot, "docker", "registry", "v2", "blobs", "sha256");
  const out = new Map<string, StoredBlob>();
  if (!existsSync(dir)) return out;
  for (const prefix of await readdir(dir)) {
    for (const hex of await readdir(path.join(dir, prefix))) {
      const file = path.join(dir, prefix, hex, "data");
      const s = await stat(file).catch(() => undefined);
      if (s)
        out.set(`sha256:${hex}`, { digest: `sha256:${hex}`, size: s.size, mtimeMs: s.mtimeMs, ino: s.ino });
    }
  }
  return out;
}
