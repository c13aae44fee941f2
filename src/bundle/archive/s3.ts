/**
 * Bundles in object storage: `s3://BUCKET/KEY` read as a random-access source (ranged GETs) and
 * written by multipart upload. The client (endpoint, credentials, path-style, region, CA and client
 * certificate) is the artifact repository's, from the same flags and AWS_* variables.
 *
 * Visibility: a multipart upload becomes an object only when it is completed, so a tar is uploaded
 * straight to its final key: a failed or interrupted upload is aborted and leaves nothing, and an
 * object it replaces (--force) stays whole until the new one is complete. Split parts are objects
 * of their own; their parts manifest goes last (and an old one first is deleted first), so a set is
 * complete exactly when its manifest is there, as on disk.
 */
import { createHash, type Hash } from "node:crypto";
import { PassThrough, pipeline, Readable, Transform, Writable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { AirgapError, IntegrityError, RemoteError, UsageError } from "../../errors.js";
import type { ArtifactRepositoryOptions } from "../../store/artifacts.js";
import { S3ArtifactRepository } from "../../store/s3.js";
import { parseS3Url, UPLOAD_QUEUE, uploadPartSize } from "./s3-url.js";
import type { RandomAccessSource, SourcePlace } from "./source.js";

const MiB = 1024 * 1024;
/**
 * Reads smaller than this fetch this much and keep it: the headers and bodies of small files
 * (manifests, configs) lie together, so indexing a tar costs a GET per big blob, not per file. Small
 * enough that reading the header of a big blob fetches little of the blob itself.
 */
const WINDOW = 128 * 1024;
/** Times a broken ranged read is resumed where it stopped before giving up. */
const RESUMES = 3;

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

function isNotFound(err: unknown): boolean {
  const name = (err as Error).name;
  return statusOf(err) === 404 || name === "NotFound" || name === "NoSuchKey" || name === "NoSuchBucket";
}

/** The buckets' clients, made once each from the artifact repository's settings. */
class S3Access {
  private readonly repos = new Map<string, S3ArtifactRepository>();

  constructor(readonly opts: ArtifactRepositoryOptions = {}) {}

  repo(bucket: string): S3ArtifactRepository {
    let r = this.repos.get(bucket);
    if (!r) {
      r = S3ArtifactRepository.fromUrl(`s3://${bucket}`, this.opts);
      this.repos.set(bucket, r);
    }
    return r;
  }

  /** A failure as a clear error: denied access and a missing bucket say so and what to check. */
  fail(op: string, url: string, err: unknown): AirgapError {
    if (err instanceof AirgapError) return err;
    const { bucket, key } = parseS3Url(url);
    const status = statusOf(err);
    const name = (err as Error).name;
    if (
      status === 403 ||
      name === "AccessDenied" ||
      name === "InvalidAccessKeyId" ||
      name === "SignatureDoesNotMatch"
    ) {
      return new RemoteError(
        `${op} ${url}: access denied (HTTP ${status ?? 403} ${name}): the S3 credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the workload's role) are not accepted or may not ${op === "GET" || op === "HEAD" ? "read" : "write"} it`,
        status,
        "S3_DENIED",
        { cause: err },
      );
    }
    if (name === "NoSuchBucket") {
      return new UsageError(`${op} ${url}: the bucket ${bucket} does not exist at this S3 endpoint`, {
        cause: err,
      });
    }
    if (name === "CredentialsProviderError") {
      return new UsageError(
        `${op} ${url}: no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)`,
        { cause: err },
      );
    }
    return this.repo(bucket).fail(op, key, err);
  }
}

/** One S3 object, read by ranged GETs pinned to the ETag it had when it was opened. */
export class S3ObjectSource implements RandomAccessSource {
  readonly localFile = undefined;
  private window: { pos: number; bytes: Buffer } | undefined;

  constructor(
    private readonly access: S3Access,
    readonly name: string,
    readonly size: number,
    private readonly etag: string | undefined,
  ) {}

  private async get(start: number, end: number): Promise<Readable> {
    const { bucket, key } = parseS3Url(this.name);
    const repo = this.access.repo(bucket);
    try {
      const res = await repo.client.send(
        new GetObjectCommand({
          Bucket: bucket,
          Key: key,
          Range: `bytes=${start}-${end - 1}`,
          ...(this.etag ? { IfMatch: this.etag } : {}),
        }),
      );
      return res.Body as Readable;
    } catch (err) {
      if (statusOf(err) === 412 || (err as Error).name === "PreconditionFailed") {
        throw new AirgapError(
          `${this.name} was replaced while being read (its ETag changed); read it again`,
          "CHANGED",
          { cause: err },
        );
      }
      if (statusOf(err) === 416 || (err as Error).name === "InvalidRange") {
        throw new IntegrityError(
          "TRUNCATED",
          `${this.name} is truncated: it ends before byte ${end} (expected ${this.size} bytes)`,
          this.name,
          { cause: err },
        );
      }
      if (isNotFound(err)) {
        throw new IntegrityError("TRUNCATED", `${this.name} disappeared while being read`, this.name, {
          cause: err,
        });
      }
      throw this.access.fail("GET", this.name, err);
    }
  }

  async read(pos: number, len: number): Promise<Buffer> {
    const want = Math.max(0, Math.min(len, this.size - pos));
    if (want === 0) return Buffer.alloc(0);
    const w = this.window;
    if (w && pos >= w.pos && pos + want <= w.pos + w.bytes.length) {
      // a copy: a caller that changes what it got must not change what the next read returns
      return Buffer.from(w.bytes.subarray(pos - w.pos, pos - w.pos + want));
    }
    const end = want >= WINDOW ? pos + want : Math.min(this.size, pos + WINDOW);
    const chunks: Buffer[] = [];
    for await (const c of this.stream(pos, end - pos)) chunks.push(c as Buffer);
    const bytes = Buffer.concat(chunks);
    if (want >= WINDOW) return bytes;
    this.window = { pos, bytes };
    return Buffer.from(bytes.subarray(0, want));
  }

  stream(start: number, length: number): Readable {
    const self = this;
    async function* gen(): AsyncGenerator<Buffer> {
      const end = start + length;
      let pos = start;
      let resumes = 0;
      while (pos < end) {
        const body = await self.get(pos, end);
        let broken: unknown;
        try {
          for await (const c of body) {
            const b = c as Buffer;
            pos += b.length;
            yield b;
          }
        } catch (err) {
          if (err instanceof AirgapError) throw err;
          broken = err;
        } finally {
          if (!body.destroyed) body.destroy();
        }
        if (pos < end) {
          // A connection dropped or a body cut short: go on from the byte it stopped at (the ETag
          // pins the object, so the rest is the same object's).
          if (resumes++ < RESUMES) continue;
          if (broken) throw self.access.fail("GET", self.name, broken);
          throw new IntegrityError(
            "TRUNCATED",
            `${self.name} is truncated: reads end at byte ${pos}, expected ${end}`,
            self.name,
          );
        }
      }
      if (pos !== end) {
        throw new IntegrityError(
          "TRUNCATED",
          `${self.name}: read ${pos - start} bytes, expected ${length}`,
          self.name,
        );
      }
    }
    return Readable.from(gen(), { objectMode: false });
  }

  async close(): Promise<void> {
    this.window = undefined;
  }
}

/** `s3://BUCKET/KEY` names as a place to find a bundle and its parts. */
export class S3Place implements SourcePlace {
  private readonly access: S3Access;
  private readonly etags = new Map<string, string | undefined>();

  constructor(opts: ArtifactRepositoryOptions = {}) {
    this.access = new S3Access(opts);
  }

  async sizeOf(url: string): Promise<number | undefined> {
    const { bucket, key } = parseS3Url(url);
    try {
      const head = await this.access
        .repo(bucket)
        .client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      this.etags.set(url, head.ETag);
      return head.ContentLength ?? 0;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.access.fail("HEAD", url, err);
    }
  }

  open(url: string, size: number): RandomAccessSource {
    return new S3ObjectSource(this.access, url, size, this.etags.get(url));
  }

  async readSmall(url: string, max: number): Promise<Buffer | undefined> {
    const { bucket, key } = parseS3Url(url);
    let body: Readable;
    try {
      const res = await this.access
        .repo(bucket)
        .client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      if ((res.ContentLength ?? 0) > max) {
        (res.Body as Readable).destroy();
        throw new IntegrityError("MALFORMED", `${url} is larger than ${max} bytes`, url);
      }
      body = res.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.access.fail("GET", url, err);
    }
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of body) {
      n += (c as Buffer).length;
      if (n > max) {
        body.destroy();
        throw new IntegrityError("MALFORMED", `${url} is larger than ${max} bytes`, url);
      }
      chunks.push(c as Buffer);
    }
    return Buffer.concat(chunks);
  }

  sibling(url: string, name: string): string {
    return `${url.slice(0, url.lastIndexOf("/") + 1)}${name}`;
  }

  /**
   * Why `url` is not there: its bucket is missing, it is a prefix (a directory bundle uploaded file
   * by file, which airgap does not read from S3), or the object (and any parts of it) are.
   */
  async whyMissing(url: string): Promise<AirgapError> {
    const { bucket, key } = parseS3Url(url);
    try {
      await this.access.repo(bucket).client.send(new HeadBucketCommand({ Bucket: bucket }));
      const under = await this.access
        .repo(bucket)
        .client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${key}/`, MaxKeys: 1 }));
      if ((under.KeyCount ?? under.Contents?.length ?? 0) > 0) {
        return new UsageError(
          `bundle ${url} is a prefix holding objects, not a bundle: in S3 a bundle is one tar object (or its split parts); write it with bundle create -o ${url}.tar`,
        );
      }
    } catch (err) {
      if (isNotFound(err))
        return new UsageError(`bundle ${url}: the bucket ${bucket} does not exist at this S3 endpoint`);
      return this.access.fail("HEAD", url, err);
    }
    if ((await this.sizeOf(`${url}.part-0001`)) !== undefined) {
      return new UsageError(
        `bundle ${url} does not exist and its parts manifest ${url}.parts.json is missing, but its parts are there: pass ${url}.part-0001 to read them without it`,
      );
    }
    return new UsageError(`bundle ${url} does not exist`);
  }
}

export function s3Place(opts?: ArtifactRepositoryOptions): S3Place {
  return new S3Place(opts);
}

// ---------------------------------------------------------------- writing

/** Writes objects of one bundle output, with the artifact repository's client for its bucket. */
export class S3BundleOutput {
  private readonly access: S3Access;
  readonly bucket: string;
  readonly key: string;

  constructor(
    readonly url: string,
    opts: ArtifactRepositoryOptions = {},
  ) {
    this.access = new S3Access(opts);
    ({ bucket: this.bucket, key: this.key } = parseS3Url(url));
  }

  private get client() {
    return this.access.repo(this.bucket).client;
  }

  private async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw this.access.fail("HEAD", `s3://${this.bucket}/${key}`, err);
    }
  }

  /**
   * Before anything is pulled: the bucket exists and the credentials reach it, and the output (or,
   * split, its parts manifest or first part) is not there unless it may be replaced.
   */
  async preflight(split: boolean, overwrite: boolean): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      if (isNotFound(err))
        throw new UsageError(
          `output ${this.url}: the bucket ${this.bucket} does not exist at this S3 endpoint`,
        );
      throw this.access.fail("HEAD", this.url, err);
    }
    if (overwrite) return;
    const taken = split
      ? (await this.exists(`${this.key}.parts.json`)) || (await this.exists(`${this.key}.part-0001`))
      : await this.exists(this.key);
    if (taken)
      throw new UsageError(
        `${split ? `${this.url}.parts.json or its parts` : this.url} already exist${split ? "" : "s"}; remove it, choose another -o, or pass --force`,
      );
  }

  /**
   * Streams `body` to `key` by multipart upload (parts of `partSize`, UPLOAD_QUEUE at a time). On
   * failure or abort the upload is aborted: no object appears. Checks the stored size afterwards.
   */
  async upload(key: string, body: Readable, partSize: number, signal?: AbortSignal): Promise<number> {
    let sent = 0;
    const counted = new Transform({
      highWaterMark: MiB,
      transform(chunk: Buffer, _e, cb) {
        sent += chunk.length;
        cb(null, chunk);
      },
    });
    // a body that fails or is destroyed (even without an error) must end the upload, never stall it
    pipeline(body, counted, () => {});
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: key, Body: counted, ContentType: "application/x-tar" },
      partSize,
      queueSize: UPLOAD_QUEUE,
      leavePartsOnError: false,
    });
    // Upload.abort() lets parts in flight finish before it aborts the upload on the server; an
    // interrupted command may not live that long, so the upload is aborted on the server at once.
    let aborting: Promise<void> | undefined;
    const abortNow = (): Promise<void> => {
      aborting ??= (async () => {
        await upload.abort();
        const UploadId = (upload as unknown as { uploadId?: string }).uploadId;
        if (UploadId) {
          await this.client
            .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId }))
            .catch(() => undefined);
        }
      })();
      return aborting;
    };
    const onAbort = () => void abortNow();
    signal?.addEventListener("abort", onAbort, { once: true });
    const url = `s3://${this.bucket}/${key}`;
    try {
      signal?.throwIfAborted();
      await upload.done();
    } catch (err) {
      await abortNow();
      if (!body.destroyed) body.destroy();
      signal?.throwIfAborted();
      if (err instanceof AirgapError) throw err;
      // the body's own failure (the tar writer) is the story, not the upload that saw it
      if (body.errored) throw body.errored;
      throw this.access.fail("PUT", url, err);
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    const head = await this.client
      .send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }))
      .catch((err: unknown) => {
        throw this.access.fail("HEAD", url, err);
      });
    if (head.ContentLength !== sent) {
      await this.delete(key);
      throw new IntegrityError(
        "TRUNCATED",
        `${url}: the server holds ${head.ContentLength} bytes after upload, ${sent} were sent`,
        url,
      );
    }
    return sent;
  }

  async put(key: string, bytes: Buffer): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: bytes,
          ContentLength: bytes.length,
          ContentType: "application/json",
        }),
      );
    } catch (err) {
      throw this.access.fail("PUT", `s3://${this.bucket}/${key}`, err);
    }
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })).catch(() => undefined);
  }

  /** Deletes `key` if it is there (a part left from an older, longer set); false when it was not. */
  async deleteIfPresent(key: string): Promise<boolean> {
    if (!(await this.exists(key))) return false;
    await this.client
      .send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }))
      .catch((err: unknown) => {
        throw this.access.fail("DELETE", `s3://${this.bucket}/${key}`, err);
      });
    return true;
  }
}

/**
 * Cuts a byte stream into objects of at most `partSize` bytes (`KEY.part-0001`, …), each uploaded
 * as it fills and hashed on the way. One part is in flight at a time.
 */
export class S3PartSink extends Writable {
  readonly parts: { name: string; key: string; size: number; sha256: string }[] = [];
  private current: { body: PassThrough; hash: Hash; size: number; done: Promise<number> } | undefined;
  /** Every part upload started, settled or not: cleanup waits for them all. */
  private readonly uploads: Promise<number>[] = [];

  constructor(
    private readonly out: S3BundleOutput,
    private readonly partName: (index: number) => string,
    private readonly partSize: number,
    private readonly signal?: AbortSignal,
  ) {
    super({ highWaterMark: MiB });
  }

  private open(): void {
    const name = this.partName(this.parts.length + 1);
    const prefix = this.out.key.slice(0, this.out.key.lastIndexOf("/") + 1);
    const key = `${prefix}${name}`;
    this.parts.push({ name, key, size: 0, sha256: "" });
    const body = new PassThrough({ highWaterMark: MiB });
    const done = this.out.upload(key, body, uploadPartSize(this.partSize), this.signal);
    done.catch(() => {});
    this.uploads.push(done);
    this.current = { body, hash: createHash("sha256"), size: 0, done };
  }

  private async finishPart(): Promise<void> {
    const c = this.current;
    if (!c) return;
    this.current = undefined;
    c.body.end();
    await c.done;
    const p = this.parts.at(-1)!;
    p.size = c.size;
    p.sha256 = c.hash.digest("hex");
  }

  private async writeTo(c: NonNullable<typeof this.current>, slice: Buffer): Promise<void> {
    c.hash.update(slice);
    c.size += slice.length;
    if (!c.body.write(slice)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = () => {
          cleanup();
          resolve();
        };
        const onFail = (err: unknown) => {
          cleanup();
          reject(err);
        };
        const cleanup = () => c.body.off("drain", onDrain);
        c.body.once("drain", onDrain);
        c.done.catch(onFail);
      });
    }
  }

  override _write(chunk: Buffer, _e: BufferEncoding, cb: (err?: Error | null) => void): void {
    (async () => {
      let off = 0;
      while (off < chunk.length) {
        if (!this.current) this.open();
        const c = this.current!;
        const n = Math.min(chunk.length - off, this.partSize - c.size);
        await this.writeTo(c, chunk.subarray(off, off + n));
        off += n;
        if (c.size === this.partSize) await this.finishPart();
      }
    })().then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    (async () => {
      if (this.parts.length === 0) this.open();
      await this.finishPart();
    })().then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const c = this.current;
    this.current = undefined;
    if (c) {
      c.body.destroy(err ?? new AirgapError("the split bundle writer was stopped"));
      void c.done.then(
        () => cb(err),
        () => cb(err),
      );
    } else cb(err);
  }

  /** Removes every part object this sink wrote (after a failure). */
  async removeAll(): Promise<void> {
    const c = this.current;
    this.current = undefined;
    c?.body.destroy();
    await Promise.allSettled(this.uploads);
    await Promise.all(this.parts.map((p) => this.out.delete(p.key)));
  }
}
