/**
 * Plain-file artifact repositories on the isolated side (profiles, gems, files): S3-compatible
 * object stores and HTTP raw repositories. Keys are `/`-separated paths below the repository's
 * base. Uploads are idempotent: content that is already there with the same sha256 is not sent again.
 */
import type { Readable } from "node:stream";
import type { HostTlsConfig } from "../net/trust.js";

export interface PutOptions {
  /** sha256 of the content (hex); verified while uploading, recorded next to the object. */
  sha256: string;
  size: number;
  contentType?: string;
  signal?: AbortSignal;
}

export interface ArtifactRepository {
  /** Names the repository in messages, e.g. `s3://bucket/prefix`. */
  readonly label: string;
  /** Is `key` there with exactly this content (size and sha256)? */
  exists(key: string, sha256: string, size: number, signal?: AbortSignal): Promise<boolean>;
  /** Upload `stream` to `key`; fails (and leaves no trusted object) when the bytes differ from `opts`. */
  put(key: string, stream: Readable, opts: PutOptions): Promise<void>;
  /** Where clients fetch `key` from. */
  url(key: string): string;
  /** Small objects (an index) when present; undefined when absent. Optional. */
  get?(key: string, signal?: AbortSignal): Promise<Buffer | undefined>;
}

export interface ArtifactRepositoryOptions {
  /** Extra trusted CA (PEM file) for HTTPS. */
  caFile?: string;
  /** Skip TLS verification (explicitly insecure repositories only). */
  insecure?: boolean;
  /**
   * S3: per-host TLS settings (the import config's `registries:`): the entry whose host is the
   * endpoint's host[:port] gives its CA, client certificate and key, or insecure.
   */
  hosts?: HostTlsConfig[];
  /** S3: endpoint URL (default: AWS_ENDPOINT_URL_S3, else AWS). */
  endpoint?: string;
  /** S3: path-style addressing; default true whenever a custom endpoint is set. */
  forcePathStyle?: boolean;
  /** S3: region (default: AWS_REGION / AWS_DEFAULT_REGION, else us-east-1). */
  region?: string;
  /** S3: objects above this size go up as multipart uploads (default 64 MiB). */
  multipartThreshold?: number;
  /** S3: part size of multipart uploads (default 16 MiB, minimum 5 MiB). */
  partSize?: number;
  /** S3: send x-amz-checksum-sha256 on single-part uploads (default true; turn off for servers that refuse the header). */
  sendChecksum?: boolean;
  /** HTTP: a netrc-format file with `machine HOST login USER password PASS`. */
  netrcFile?: string;
  /** Environment to read credentials from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** Join a prefix and a key with exactly one `/`. */
export function joinKey(prefix: string, key: string): string {
  const p = prefix.replace(/^\/+|\/+$/g, "");
  const k = key.replace(/^\/+/, "");
  return p ? `${p}/${k}` : k;
}
