/**
 * S3-compatible artifact repository (`s3://BUCKET/PREFIX`): AWS, Ceph RGW, MinIO and appliances.
 *
 * - Endpoint from the option or AWS_ENDPOINT_URL_S3; path-style addressing whenever a custom
 *   endpoint is set (virtual-host buckets rarely resolve inside an isolated network), unless turned off.
 * - Checksums only `WHEN_REQUIRED`: by default SDK v3 sends streamed bodies as `aws-chunked` with a
 *   trailing checksum, which Ceph RGW and older MinIO answer with 411/501.
 * - Single-part uploads send `x-amz-checksum-sha256` (servers that check it refuse corrupt bodies),
 *   and every upload is verified by its ETag: the MD5 of the body, or for multipart uploads the MD5
 *   of the parts' MD5s, computed while streaming. The sha256 is kept as object metadata
 *   (`x-amz-meta-sha256`), which is what `exists` compares, so unchanged content is never re-sent.
 */
import { createHash, type Hash } from "node:crypto";
import { accessSync, constants } from "node:fs";
import { type Readable, Transform, type TransformCallback } from "node:stream";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { ConfigError, IntegrityError, RemoteError, UsageError } from "../errors.js";
import { failureChain, UNREACHABLE_CODES, UNTRUSTED_CERT_CODES } from "../net/failure.js";
import { trustFor } from "../net/trust.js";
import type { ArtifactRepository, ArtifactRepositoryOptions, PutOptions } from "./artifacts.js";
import { joinKey } from "./artifacts.js";

const MiB = 1024 * 1024;
export const DEFAULT_MULTIPART_THRESHOLD = 64 * MiB;
export const DEFAULT_PART_SIZE = 16 * MiB;
const META_SHA256 = "sha256";

/** Hashes sha256 of everything and MD5 per part, to check what S3 says it stored. */
class UploadHasher extends Transform {
  private readonly sha: Hash = createHash("sha256");
  private readonly whole: Hash = createHash("md5");
  private part: Hash = createHash("md5");
  private inPart = 0;
  readonly partDigests: Buffer[] = [];
  size = 0;

  constructor(private readonly partSize: number) {
    super();
  }

  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.sha.update(chunk);
    this.whole.update(chunk);
    this.size += chunk.length;
    let off = 0;
    while (off < chunk.length) {
      const take = Math.min(this.partSize - this.inPart, chunk.length - off);
      this.part.update(chunk.subarray(off, off + take));
      this.inPart += take;
      off += take;
      if (this.inPart === this.partSize) {
        this.partDigests.push(this.part.digest());
        this.part = createHash("md5");
        this.inPart = 0;
      }
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.inPart > 0) this.partDigests.push(this.part.digest());
    cb();
  }

  sha256Hex(): string {
    return this.sha.copy().digest("hex");
  }
  md5Hex(): string {
    return this.whole.copy().digest("hex");
  }
  multipartEtag(): string {
    const md5s = Buffer.concat(this.partDigests);
    return `${createHash("md5").update(md5s).digest("hex")}-${this.partDigests.length}`;
  }
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

/**
 * The SDK warns on Node 20 that its *future* releases will need Node 22; airgap pins its SDK
 * version, so the warning says nothing true about this program and only clutters its output.
 */
function s3Client(config: S3ClientConfig): S3Client {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  return new S3Client(config);
}

/** What the repository knows of its TLS setup, to explain certificate failures. */
interface S3TlsInfo {
  /** host[:port] of the endpoint. */
  host: string;
  /** Where trust for the host was looked for. */
  hint: () => string;
  hasClientCert: () => boolean;
  caFromAwsCaBundle: string | undefined;
}

interface S3RepositoryOptions {
  multipartThreshold?: number;
  partSize?: number;
  sendChecksum?: boolean;
  tls?: S3TlsInfo;
}

/**
 * A TLS proxy (nginx `ssl_verify_client on`) that asks for a client certificate and gets none or a
 * bad one completes the handshake and answers 400 with an HTML page: the SDK sees only an XML parse
 * error, so the page is recognised here.
 */
const CLIENT_CERT_PAGE =
  /No required SSL certificate was sent|The SSL certificate error|SSL certificate required/i;
const CLIENT_CERT_ALERT =
  /certificate required|alert bad certificate|alert handshake failure|peer did not return a certificate|alert unknown ca/i;

export class S3ArtifactRepository implements ArtifactRepository {
  readonly label: string;
  private readonly tls: S3TlsInfo | undefined;
  readonly multipartThreshold: number;
  readonly partSize: number;
  readonly sendChecksum: boolean;

  constructor(
    readonly client: S3Client,
    readonly bucket: string,
    readonly prefix: string,
    readonly endpoint: string | undefined,
    readonly forcePathStyle: boolean,
    opts: S3RepositoryOptions = {},
  ) {
    this.tls = opts.tls;
    this.sendChecksum = opts.sendChecksum ?? true;
    this.label = `s3://${bucket}${prefix ? `/${prefix}` : ""}`;
    this.multipartThreshold = opts.multipartThreshold ?? DEFAULT_MULTIPART_THRESHOLD;
    this.partSize = Math.max(5 * MiB, opts.partSize ?? DEFAULT_PART_SIZE);
  }

  static fromUrl(url: string, opts: ArtifactRepositoryOptions = {}): S3ArtifactRepository {
    const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
    if (!m || m[1]!.length < 3)
      throw new UsageError(`${url} is not s3://BUCKET[/PREFIX] (bucket names have 3+ characters)`);
    const env = opts.env ?? process.env;
    const endpoint = opts.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
    const forcePathStyle = opts.forcePathStyle ?? endpoint !== undefined;
    const config: S3ClientConfig = {
      region: opts.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? "us-east-1",
      forcePathStyle,
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    };
    if (endpoint) config.endpoint = endpoint;
    let tlsHost = "s3.amazonaws.com";
    if (endpoint) {
      try {
        tlsHost = new URL(endpoint).host;
      } catch {
        throw new UsageError(`S3 endpoint ${endpoint} is not a URL`);
      }
    }
    // TLS and proxy from the trust module: one SecureContext, connections kept alive (AWS itself when
    // no endpoint). The CA comes from --ca-file, the config's entry for the endpoint's host, the
    // certs.d folders, or AWS_CA_BUNDLE, the AWS tools' own variable (aws CLI, boto3) that SDK v3
    // ignores: users who reach their S3 with the aws CLI already have it set.
    const https = !endpoint || /^https:/i.test(endpoint);
    const awsCaBundle = https ? env.AWS_CA_BUNDLE || undefined : undefined;
    if (awsCaBundle) {
      try {
        accessSync(awsCaBundle, constants.R_OK);
      } catch (err) {
        throw new ConfigError(
          `AWS_CA_BUNDLE names ${awsCaBundle}, which cannot be read (${(err as Error).message}); fix or unset it`,
          undefined,
          { cause: err },
        );
      }
    }
    const caFiles = [...(opts.caFile ? [opts.caFile] : []), ...(awsCaBundle ? [awsCaBundle] : [])];
    const trust = trustFor({
      ...(caFiles.length > 0 ? { caFiles } : {}),
      ...(opts.hosts ? { hosts: opts.hosts } : {}),
      ...(opts.insecure ? { insecure: true } : {}),
    });
    config.requestHandler = trust.nodeAgents(tlsHost);
    const repoOpts: S3RepositoryOptions = {
      tls: {
        host: tlsHost,
        hint: () => trust.hint(tlsHost),
        hasClientCert: () => trust.host(tlsHost).cert !== undefined,
        caFromAwsCaBundle: awsCaBundle,
      },
    };
    if (opts.sendChecksum !== undefined) repoOpts.sendChecksum = opts.sendChecksum;
    if (opts.multipartThreshold !== undefined) repoOpts.multipartThreshold = opts.multipartThreshold;
    if (opts.partSize !== undefined) repoOpts.partSize = opts.partSize;
    return new S3ArtifactRepository(
      s3Client(config),
      m[1]!,
      m[2]!.replace(/\/+$/, ""),
      endpoint,
      forcePathStyle,
      repoOpts,
    );
  }

  private key(key: string): string {
    return joinKey(this.prefix, key);
  }

  url(key: string): string {
    const k = this.key(key).split("/").map(encodeURIComponent).join("/");
    if (!this.endpoint) return `https://${this.bucket}.s3.amazonaws.com/${k}`;
    const base = this.endpoint.replace(/\/+$/, "");
    if (this.forcePathStyle) return `${base}/${this.bucket}/${k}`;
    const u = new URL(base);
    u.hostname = `${this.bucket}.${u.hostname}`;
    return `${u.toString().replace(/\/+$/, "")}/${k}`;
  }

  private where(key: string): string {
    return `${this.label}/${key}`;
  }

  /** What the endpoint's host is called in messages, and how users give it a CA or certificate. */
  private explainTls(err: unknown): { message: string; code: string } | undefined {
    const tls = this.tls;
    if (!tls) return undefined;
    const endpoint = this.endpoint ?? `https://${tls.host}`;
    const { codes, messages } = failureChain(err);
    const text = messages.join(" ");
    const untrusted = codes.find((c) => UNTRUSTED_CERT_CODES.has(c));
    if (untrusted) {
      return {
        code: "TLS_UNTRUSTED",
        message:
          `the TLS certificate of the S3 endpoint ${endpoint} is not trusted (${untrusted}). Trust its CA with ` +
          `--ca-file FILE, a \`registries:\` entry in the import config (--config) with \`host: "${tls.host}"\` and ` +
          `\`ca: FILE\`, AWS_CA_BUNDLE=FILE, or FILE as *.crt in /etc/docker/certs.d/${tls.host}/. ${tls.hint()}` +
          (tls.caFromAwsCaBundle ? ` (AWS_CA_BUNDLE=${tls.caFromAwsCaBundle} does not hold it.)` : ""),
      };
    }
    if (codes.includes("CERT_HAS_EXPIRED") || codes.includes("CERT_NOT_YET_VALID"))
      return {
        code: "TLS_EXPIRED",
        message: `the TLS certificate of the S3 endpoint ${endpoint} is not valid now (${codes.join(", ")})`,
      };
    if (codes.includes("ERR_TLS_CERT_ALTNAME_INVALID"))
      return {
        code: "TLS_HOSTNAME",
        message: `the TLS certificate of the S3 endpoint ${endpoint} does not name this host: ${text}`,
      };
    const body = (err as { $responseBodyText?: unknown }).$responseBodyText;
    const page = statusOf(err) === 400 && typeof body === "string" && CLIENT_CERT_PAGE.test(body);
    if (page || CLIENT_CERT_ALERT.test(text)) {
      const given = tls.hasClientCert();
      return {
        code: "TLS_CLIENT_CERT",
        message:
          `the S3 endpoint ${endpoint} requires a client certificate and ${given ? "refused the one given" : "none was configured"}: ` +
          `give it with \`cert:\` and \`key:\` in a \`registries:\` entry of the import config (--config) with ` +
          `\`host: "${tls.host}"\`, or as client.cert and client.key in /etc/docker/certs.d/${tls.host}/. ${tls.hint()}`,
      };
    }
    return undefined;
  }

  /** An S3 failure as a RemoteError naming the object, with how to fix a TLS problem when it is one. */
  fail(op: string, key: string, err: unknown): RemoteError {
    const tls = this.explainTls(err);
    if (tls)
      return new RemoteError(`${op} ${this.where(key)}: ${tls.message}`, statusOf(err), tls.code, {
        cause: err,
      });
    const unreachable = failureChain(err).codes.find((c) => UNREACHABLE_CODES.has(c));
    if (unreachable) {
      const endpoint =
        this.endpoint ??
        `AWS (https://${this.bucket}.s3.amazonaws.com; no --s3-endpoint or AWS_ENDPOINT_URL_S3 given)`;
      return new RemoteError(
        `${op} ${this.where(key)}: cannot reach the S3 endpoint ${endpoint} (${unreachable}): check that it is the site's S3 server (--s3-endpoint or AWS_ENDPOINT_URL_S3) and that it is up`,
        undefined,
        "S3_UNREACHABLE",
        { cause: err },
      );
    }
    const status = statusOf(err);
    const name = (err as Error).name;
    return new RemoteError(
      `${op} ${this.where(key)}: ${status ? `HTTP ${status} ` : ""}${name && name !== "Error" ? `${name}: ` : ""}${(err as Error).message}`,
      status,
      "S3",
      { cause: err },
    );
  }

  async exists(key: string, sha256: string, size: number, signal?: AbortSignal): Promise<boolean> {
    try {
      const head = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(key) }),
        {
          abortSignal: signal,
        },
      );
      if (head.ContentLength !== size) return false;
      return head.Metadata?.[META_SHA256] === sha256;
    } catch (err) {
      const status = statusOf(err);
      if (status === 404 || (err as Error).name === "NotFound" || (err as Error).name === "NoSuchKey")
        return false;
      // A HEAD answer has no body to say why; a TLS proxy refusing the client explains itself to a GET.
      if (status === 400 && !this.explainTls(err)) {
        const why = await this.client
          .send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(key), Range: "bytes=0-0" }), {
            abortSignal: signal,
          })
          .then(
            (res) => void (res.Body as Readable | undefined)?.destroy(),
            (e: unknown) => (this.explainTls(e) ? e : undefined),
          );
        if (why) throw this.fail("HEAD", key, why);
      }
      throw this.fail("HEAD", key, err);
    }
  }

  async get(key: string, signal?: AbortSignal): Promise<Buffer | undefined> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(key) }), {
        abortSignal: signal,
      });
      const bytes = await res.Body?.transformToByteArray();
      return bytes ? Buffer.from(bytes) : Buffer.alloc(0);
    } catch (err) {
      if (statusOf(err) === 404 || (err as Error).name === "NoSuchKey") return undefined;
      throw this.fail("GET", key, err);
    }
  }

  async put(key: string, stream: Readable, opts: PutOptions): Promise<void> {
    const Key = this.key(key);
    const multipart = opts.size > this.multipartThreshold;
    const hasher = new UploadHasher(multipart ? this.partSize : Number.MAX_SAFE_INTEGER);
    stream.on("error", (err) => hasher.destroy(err));
    const body = stream.pipe(hasher);
    const common = {
      Bucket: this.bucket,
      Key,
      ContentType: opts.contentType ?? "application/octet-stream",
      Metadata: { [META_SHA256]: opts.sha256 },
    };
    let etag: string | undefined;
    try {
      if (multipart) {
        const upload = new Upload({
          client: this.client,
          params: { ...common, Body: body, ContentLength: opts.size },
          partSize: this.partSize,
          queueSize: 4,
          leavePartsOnError: false,
        });
        if (opts.signal) opts.signal.addEventListener("abort", () => void upload.abort(), { once: true });
        etag = (await upload.done()).ETag;
      } else {
        const res = await this.client.send(
          new PutObjectCommand({
            ...common,
            Body: body,
            ContentLength: opts.size,
            ...(this.sendChecksum
              ? { ChecksumSHA256: Buffer.from(opts.sha256, "hex").toString("base64") }
              : {}),
          }),
          { abortSignal: opts.signal },
        );
        etag = res.ETag;
      }
    } catch (err) {
      if (err instanceof IntegrityError) throw err;
      throw this.fail("PUT", key, err);
    }
    const head = await this.client
      .send(new HeadObjectCommand({ Bucket: this.bucket, Key }), { abortSignal: opts.signal })
      .catch((err: unknown) => {
        throw this.fail("HEAD", key, err);
      });
    // CompleteMultipartUpload answers with an empty ETag on some servers (Ceph RGW); HEAD has it
    const stored = (head.ETag || etag || "").replace(/"/g, "");
    const got = hasher.sha256Hex();
    const expectedEtag = multipart ? hasher.multipartEtag() : hasher.md5Hex();
    const problem =
      hasher.size !== opts.size
        ? `sent ${hasher.size} bytes, expected ${opts.size}`
        : got !== opts.sha256
          ? `content has sha256 ${got}, expected ${opts.sha256}`
          : head.ContentLength !== opts.size
            ? `the server holds ${head.ContentLength} bytes after upload, expected ${opts.size}`
            : stored !== "" && /^[0-9a-f]{32}(-\d+)?$/.test(stored) && stored !== expectedEtag
              ? `the server stored ETag ${stored}, but the bytes sent have ${expectedEtag}`
              : undefined;
    if (problem) {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })).catch(() => undefined);
      throw new IntegrityError("DIGEST_MISMATCH", `${this.where(key)}: ${problem}`, key);
    }
  }
}
