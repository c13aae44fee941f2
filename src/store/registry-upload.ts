/**
 * Blob uploads into one repository of a registry, adapting to what the registry accepts.
 *
 * The distribution spec allows several upload forms, and registries sites run accept different
 * subsets. We try them in this order and remember per host (for the rest of the run) what was
 * refused:
 *  1. POST, then one PUT carrying the whole blob (every registry we know accepts it up to some size);
 *  2. POST, PATCHes of `chunkSize` (at least the learned minimum: ECR refuses parts under 5 MiB),
 *     then an empty PUT: for blobs over `chunkThreshold`, or where the PUT with a body is refused;
 *  3. POST, one PATCH with the whole blob, then an empty PUT: where a second PATCH is refused (Gitea).
 * The single-POST form (`POST …/uploads/?digest=` with the body) is never used: CNCF distribution
 * and Nexus ignore its body and open a session instead, and a streamed body cannot be sent twice.
 *
 * A refusal that comes after the body was (partly) sent needs the blob again: the caller's
 * `refill` opens it anew. Without one the error says what the registry refused.
 *
 * Cross-repository mounts are tried first where a repository of the same host holds the blob; a
 * mount the registry refuses (Harbor answers 401 for a source the token cannot read; an auth
 * server that grants one scope per token cannot authorise one) falls back to an upload, and the
 * host is not asked to mount again in this run.
 */
import { pipeline, Readable } from "node:stream";
import { AirgapError, IntegrityError } from "../errors.js";
import type { Descriptor } from "../oci/descriptor.js";
import { isVerifiedFor, VerifyingStream } from "../oci/digest.js";
import { pullScope, pushScope } from "../oci/registry/auth.js";
import type { RegistryStats } from "../oci/registry/client.js";
import { RegistryError } from "../oci/registry/errors.js";
import { header, type RegistryHost, type SendResult } from "../oci/registry/host.js";

/** Opens a blob's content again (verified by the uploader while it streams). */
export type Refill = (desc: Descriptor, signal?: AbortSignal) => Promise<Readable>;

export interface UploadContext {
  host: RegistryHost;
  registry: string;
  repository: string;
  label: string;
  stats: RegistryStats;
  chunkThreshold: number;
  chunkSize: number;
  refill?: Refill | undefined;
}

/** What one registry host refused so far in this run. */
export interface UploadLessons {
  /** A PUT carrying the blob was refused: upload in PATCHes. */
  putBodyRefused: boolean;
  /** A second PATCH of one upload was refused: one PATCH with the whole blob. */
  multiPatchRefused: boolean;
  /** Smallest chunk the host accepts before the last one (0 until a refusal taught otherwise). */
  minChunk: number;
  /** A cross-repository mount was refused: upload instead. */
  mountRefused: boolean;
  /** A blob HEAD answered 200 for a blob the manifest PUT then did not find: ask with GET. */
  headUnreliable: boolean;
}

const lessonsByHost = new WeakMap<RegistryHost, UploadLessons>();

export function lessonsOf(host: RegistryHost): UploadLessons {
  let l = lessonsByHost.get(host);
  if (!l) {
    l = {
      putBodyRefused: false,
      multiPatchRefused: false,
      minChunk: 0,
      mountRefused: false,
      headUnreliable: false,
    };
    lessonsByHost.set(host, l);
  }
  return l;
}

/** The floor S3-backed registries (ECR) put on every part but the last. */
export const PART_FLOOR = 5 * 1024 * 1024;
/** Upload forms one blob may go through before the error stands. */
const MAX_ATTEMPTS = 3;

type Form = { kind: "put" } | { kind: "patches"; chunk: number };

/** How a blob of this size goes to this host, given what it refused so far. */
export function uploadForm(
  size: number,
  c: Pick<UploadContext, "chunkThreshold" | "chunkSize">,
  l: UploadLessons,
): Form {
  if (size <= c.chunkThreshold && !l.putBodyRefused) return { kind: "put" };
  if (l.multiPatchRefused) return { kind: "patches", chunk: Math.max(size, 1) };
  return { kind: "patches", chunk: Math.max(c.chunkSize, l.minChunk) };
}

/** The registry refused this way of uploading; another form may work. */
class FormRefused extends Error {
  constructor(
    readonly refusal: RegistryError,
    readonly lesson: (l: UploadLessons) => void,
  ) {
    super(refusal.message, { cause: refusal });
  }
}

/**
 * Statuses with which a registry says "not like this" rather than "not at all" or "not now" (404
 * is not among them: an upload session the registry forgot is no verdict on the form).
 */
const REFUSED_FORM = new Set([400, 405, 411, 413, 415, 416, 501]);

function refusedForm(err: unknown): err is RegistryError {
  return (
    err instanceof RegistryError &&
    err.status !== undefined &&
    REFUSED_FORM.has(err.status) &&
    err.registryCode !== "DIGEST_INVALID" &&
    err.registryCode !== "SIZE_INVALID"
  );
}

function uploadUrl(c: UploadContext, res: SendResult, what: string): string {
  const loc = header(res.headers, "location");
  if (!loc) {
    throw new RegistryError(
      `${c.label}: the registry started an upload of ${what} without a Location header`,
      { registry: c.registry, repository: c.repository, subject: what, method: "POST", url: res.url },
      res.status,
    );
  }
  return new URL(loc, res.url).toString();
}

function withDigest(location: string, digest: string): string {
  const u = new URL(location);
  u.searchParams.set("digest", digest);
  return u.toString();
}

function ctxOf(c: { registry: string; repository: string }, subject: string) {
  return { registry: c.registry, repository: c.repository, subject };
}

/**
 * Mount `desc` from another repository of the host that holds it, if one is known and the host
 * mounts. Returns true when mounted; otherwise the Location of an upload the registry opened, or
 * undefined.
 */
async function tryMount(
  c: UploadContext,
  desc: Descriptor,
  signal: AbortSignal | undefined,
): Promise<boolean | string | undefined> {
  const lessons = lessonsOf(c.host);
  if (lessons.mountRefused) return undefined;
  const what = `blob ${desc.digest}`;
  const candidates = [...(c.host.blobRepos.get(desc.digest) ?? [])].filter((r) => r !== c.repository);
  for (const from of candidates.slice(0, 3)) {
    const q = new URLSearchParams({ mount: desc.digest, from });
    let res: SendResult;
    try {
      res = await c.host.send({
        method: "POST",
        url: `${c.host.api(c.repository)}/blobs/uploads/?${q.toString()}`,
        headers: { "content-length": "0" },
        scopes: [pushScope(c.repository), pullScope(from)],
        ctx: ctxOf(c, `${what} (mount from ${from})`),
        signal,
        ok: (s) => s === 201 || s === 202,
      });
    } catch (err) {
      signal?.throwIfAborted();
      if (!(err instanceof AirgapError) || err instanceof IntegrityError) throw err;
      // Refused (401/403/404) or the token could not be had: a plain upload needs neither.
      lessons.mountRefused = true;
      return undefined;
    }
    await res.body.dump().catch(() => undefined);
    if (res.status === 201) {
      c.stats.blobsMounted++;
      c.host.noteBlob(desc.digest, c.repository);
      return true;
    }
    return uploadUrl(c, res, what);
  }
  return undefined;
}

async function startUpload(c: UploadContext, what: string, signal: AbortSignal | undefined): Promise<string> {
  const res = await c.host.send({
    method: "POST",
    url: `${c.host.api(c.repository)}/blobs/uploads/`,
    headers: { "content-length": "0" },
    scopes: [pushScope(c.repository)],
    ctx: ctxOf(c, what),
    signal,
    ok: (s) => s === 202 || s === 201,
  });
  await res.body.dump().catch(() => undefined);
  return uploadUrl(c, res, what);
}

async function cancelUpload(
  c: Pick<UploadContext, "host" | "registry" | "repository">,
  location: string,
  what: string,
): Promise<void> {
  await c.host
    .send({
      method: "DELETE",
      url: location,
      scopes: [pushScope(c.repository)],
      ctx: ctxOf(c, what),
      ok: () => true,
    })
    .then((r) => r.body.dump())
    .catch(() => undefined);
}

/**
 * Upload one blob the target lacks (the caller checked): mount where possible, else upload in the
 * form the host accepts. `content` is verified against `desc` while it streams; nothing is
 * committed unless it matches.
 */
export async function uploadBlob(
  c: UploadContext,
  desc: Descriptor,
  content: Readable,
  signal?: AbortSignal,
): Promise<void> {
  const what = `blob ${desc.digest}`;
  const mounted = await tryMount(c, desc, signal);
  if (mounted === true) {
    content.destroy();
    return;
  }
  let location = typeof mounted === "string" ? mounted : undefined;
  let body = content;
  const lessons = lessonsOf(c.host);
  for (let attempt = 1; ; attempt++) {
    location ??= await startUpload(c, what, signal);
    const verifier = verifying(c, desc, body);
    try {
      const form = uploadForm(desc.size, c, lessons);
      if (form.kind === "put") await putWhole(c, desc, verifier, location, signal);
      else await putInPatches(c, desc, verifier, location, form.chunk, signal);
      break;
    } catch (err) {
      verifier.destroy();
      body.destroy();
      // Leave no half-written upload behind; the registry would expire it anyway.
      await cancelUpload(c, location, what);
      if (!(err instanceof FormRefused)) throw err;
      err.lesson(lessons);
      if (!c.refill || attempt >= MAX_ATTEMPTS) {
        throw new RegistryError(
          `${err.refusal.message}; ${what} could not be sent again in another form: its content cannot be read a second time here (a bundle file or directory can be, a pipe cannot)`,
          { ...ctxOf(c, what), method: err.refusal.method, url: err.refusal.url },
          err.refusal.status,
          err.refusal.errors,
          err.refusal.code,
          err.cause,
        );
      }
      body = await c.refill(desc, signal);
      location = undefined;
    }
  }
  c.stats.blobsUploaded++;
  c.stats.bytesUploaded += desc.size;
  c.host.noteBlob(desc.digest, c.repository);
}

/** A stream already bound to this digest (a verified fetch) is not hashed a second time. */
function verifying(c: UploadContext, desc: Descriptor, content: Readable): Readable {
  if (isVerifiedFor(content, desc)) return content;
  const v = new VerifyingStream(
    desc.digest,
    desc.size,
    `blob ${desc.digest} for ${c.registry}/${c.repository}`,
  );
  pipeline(content, v, () => {
    // failures surface through `v`, which is the request body
  });
  return v;
}

async function putWhole(
  c: UploadContext,
  desc: Descriptor,
  body: Readable,
  location: string,
  signal?: AbortSignal,
): Promise<void> {
  const what = `blob ${desc.digest}`;
  let payload: Readable | Buffer = body;
  if (desc.size === 0) {
    // An empty body still has to pass verification before anything is committed.
    const chunks: Buffer[] = [];
    for await (const b of body) chunks.push(b as Buffer);
    payload = Buffer.concat(chunks);
    if (payload.length !== 0)
      throw new IntegrityError("SIZE_MISMATCH", `${what}: expected 0 bytes`, desc.digest);
  }
  try {
    const res = await c.host.send({
      method: "PUT",
      url: withDigest(location, desc.digest),
      headers: { "content-type": "application/octet-stream", "content-length": String(desc.size) },
      body: payload,
      scopes: [pushScope(c.repository)],
      ctx: ctxOf(c, what),
      signal,
      ok: (s) => s === 201 || s === 204 || s === 200,
    });
    await res.body.dump().catch(() => undefined);
  } catch (err) {
    if (refusedForm(err)) {
      throw new FormRefused(err, (l) => {
        l.putBodyRefused = true;
      });
    }
    throw err;
  }
}

async function putInPatches(
  c: UploadContext,
  desc: Descriptor,
  body: Readable,
  location: string,
  chunkSize: number,
  signal?: AbortSignal,
): Promise<void> {
  const what = `blob ${desc.digest}`;
  const reader = new ChunkReader(body, `${what} for ${c.registry}/${c.repository}`, desc.digest);
  let loc = location;
  let offset = 0;
  let previous = 0;
  let patches = 0;
  while (offset < desc.size) {
    const n = Math.min(chunkSize, desc.size - offset);
    let res: SendResult;
    try {
      res = await c.host.send({
        method: "PATCH",
        url: loc,
        headers: {
          "content-type": "application/octet-stream",
          "content-length": String(n),
          "content-range": `${offset}-${offset + n - 1}`,
        },
        body: reader.take(n),
        scopes: [pushScope(c.repository)],
        ctx: ctxOf(c, `${what} (chunk at ${offset})`),
        signal,
        // ECR answers 201 to an intermediate PATCH; the spec says 202
        ok: (s) => s === 202 || s === 201 || s === 204,
      });
    } catch (err) {
      if (patches > 0 && refusedForm(err)) {
        const small = previous < PART_FLOOR;
        throw new FormRefused(err, (l) => {
          // First suspect a part floor (ECR, S3-backed stores), then a one-PATCH rule (Gitea).
          if (small && l.minChunk < PART_FLOOR) l.minChunk = PART_FLOOR;
          else l.multiPatchRefused = true;
        });
      }
      throw err;
    }
    await res.body.dump().catch(() => undefined);
    loc = uploadUrl(c, res, what);
    offset += n;
    previous = n;
    patches++;
  }
  await reader.finish();
  const res = await c.host.send({
    method: "PUT",
    url: withDigest(loc, desc.digest),
    headers: { "content-length": "0" },
    scopes: [pushScope(c.repository)],
    ctx: ctxOf(c, what),
    signal,
  });
  await res.body.dump().catch(() => undefined);
}

/**
 * Start an upload session in a repository and cancel it at once: whether the repository exists
 * and may be written, with no content written. Resolves undefined when it may; otherwise the
 * registry's refusal.
 */
export async function probeWritable(
  c: Pick<UploadContext, "host" | "registry" | "repository">,
  signal?: AbortSignal,
): Promise<RegistryError | undefined> {
  const what = "upload session (pre-flight)";
  let res: SendResult;
  try {
    res = await c.host.send({
      method: "POST",
      url: `${c.host.api(c.repository)}/blobs/uploads/`,
      headers: { "content-length": "0" },
      scopes: [pushScope(c.repository)],
      ctx: ctxOf(c, what),
      signal,
      ok: (s) => s === 202,
    });
  } catch (err) {
    signal?.throwIfAborted();
    // a refusal is an answer; a connection or TLS failure stays the error it is
    if (err instanceof RegistryError && err.status !== undefined && err.status >= 400 && err.status < 500)
      return err;
    throw err;
  }
  await res.body.dump().catch(() => undefined);
  const loc = header(res.headers, "location");
  if (loc) await cancelUpload(c, new URL(loc, res.url).toString(), what);
  return undefined;
}

/** Split one stream into consecutive sub-streams of exact sizes, without buffering more than one chunk of the source. */
export class ChunkReader {
  private readonly it: AsyncIterator<Buffer>;
  private leftover: Buffer | undefined;

  constructor(
    source: Readable,
    private readonly label: string,
    private readonly digest: string,
  ) {
    this.it = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  take(n: number): Readable {
    const self = this;
    return Readable.from(
      (async function* () {
        let remaining = n;
        while (remaining > 0) {
          let buf = self.leftover;
          self.leftover = undefined;
          if (!buf) {
            const r = await self.it.next();
            if (r.done) {
              throw new IntegrityError(
                "SIZE_MISMATCH",
                `${self.label}: the content ended before its declared size`,
                self.digest,
              );
            }
            buf = r.value;
          }
          if (buf.length > remaining) {
            self.leftover = buf.subarray(remaining);
            yield buf.subarray(0, remaining);
            remaining = 0;
          } else {
            remaining -= buf.length;
            yield buf;
          }
        }
      })(),
      { objectMode: false },
    );
  }

  /** Wait for the end of the source (where size and digest are checked). */
  async finish(): Promise<void> {
    if (this.leftover && this.leftover.length > 0) {
      throw new IntegrityError(
        "SIZE_MISMATCH",
        `${this.label}: more bytes than its declared size`,
        this.digest,
      );
    }
    const r = await this.it.next();
    if (!r.done)
      throw new IntegrityError(
        "SIZE_MISMATCH",
        `${this.label}: more bytes than its declared size`,
        this.digest,
      );
  }
}
