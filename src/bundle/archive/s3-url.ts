/**
 * What names an S3 bundle and sizes its upload, without the AWS SDK: the commands load that (in
 * ./s3.ts) only when a bundle is really in S3, so local bundles do not pay for it at start-up.
 */
import { UsageError } from "../../errors.js";

const MiB = 1024 * 1024;
/** Multipart uploads in flight per object: memory is UPLOAD_QUEUE × part size. */
export const UPLOAD_QUEUE = 2;
/**
 * Part size of a bundle upload: half the artifact repository's, so that the parts in flight (and the
 * one being filled) stay near 40 MiB beside what create itself holds; S3's floor is 5 MiB.
 */
export const BUNDLE_PART_SIZE = 8 * MiB;
/** S3 allows 10,000 parts; part sizes grow past 16 MiB so an object of the expected size fits. */
const MAX_PARTS = 9_000;
export function isS3Url(input: string): boolean {
  return /^s3:\/\//i.test(input);
}

export function parseS3Url(url: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/(.+)$/i.exec(url);
  if (!m || m[1]!.length < 3 || m[2]!.endsWith("/")) {
    throw new UsageError(
      `${url} is not s3://BUCKET/KEY (a bucket of 3+ characters and an object key, not a prefix)`,
    );
  }
  return { bucket: m[1]!, key: m[2]! };
}

/** The part size for an object of about `expected` bytes: 8 MiB, or more so it fits in S3's part limit. */
export function uploadPartSize(expected: number, configured = BUNDLE_PART_SIZE): number {
  return Math.max(5 * MiB, configured, Math.ceil(expected / MAX_PARTS / MiB) * MiB);
}
