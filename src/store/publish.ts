/**
 * Publish plain files to an artifact repository (S3 or HTTP): each object is uploaded unless the
 * repository already holds it with the same sha256 and size, so publishing the same content twice
 * uploads nothing. Every upload is verified against its sha256 while it streams (ArtifactRepository.put).
 */
import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { Readable as ReadableStream } from "node:stream";
import { IntegrityError } from "../errors.js";
import type { ArtifactRepository, PutOptions } from "./artifacts.js";

export interface PublishObject {
  /** `/`-separated key below the repository's base, e.g. `files/kubectl/linux/amd64/kubectl`. */
  key: string;
  sha256: string;
  size: number;
  contentType?: string;
  /** The content, or a function called once when it is needed (not when the repository has it already). */
  content: Readable | Buffer | (() => Readable | Promise<Readable>);
  /** Another worker of a sharded import uploads it: listed with its URL, neither read nor uploaded. */
  elsewhere?: boolean;
}

export interface PublishResult {
  uploaded: string[];
  skipped: string[];
  /** Key → URL of every object published (uploaded or already there). */
  urls: Record<string, string>;
}

/**
 * Names and versions come from bundle.json: each must be one path segment, never a way out of its
 * folder. A segment that is not is a malformed bundle (exit 3), named.
 */
export function assertSafeSegment(s: string, what: string): void {
  if (s === "" || s === "." || s === ".." || s.includes("/") || s.includes("\\") || /[\0\r\n]/.test(s)) {
    throw new IntegrityError(
      "PATH_ESCAPE",
      `${what} ${JSON.stringify(s)} cannot be used in a repository path`,
      s,
    );
  }
}

/** An in-memory object (an index) with its sha256 and size computed. */
export function smallObject(key: string, bytes: Buffer, contentType: string): PublishObject {
  return {
    key,
    sha256: createHash("sha256").update(bytes).digest("hex"),
    size: bytes.length,
    contentType,
    content: bytes,
  };
}

export async function publishObjects(
  objects: readonly PublishObject[],
  repo: ArtifactRepository,
  opts: { signal?: AbortSignal } = {},
): Promise<PublishResult> {
  const result: PublishResult = { uploaded: [], skipped: [], urls: {} };
  for (const o of objects) {
    for (const segment of o.key.split("/")) assertSafeSegment(segment, `key ${o.key}: segment`);
  }
  for (const o of objects) {
    if (o.elsewhere) {
      if (o.content && typeof o.content !== "function" && !Buffer.isBuffer(o.content)) o.content.destroy();
      result.urls[o.key] = repo.url(o.key);
      continue;
    }
    if (await repo.exists(o.key, o.sha256, o.size, opts.signal)) {
      if (o.content && typeof o.content !== "function" && !Buffer.isBuffer(o.content)) o.content.destroy();
      result.skipped.push(o.key);
    } else {
      const stream =
        typeof o.content === "function"
          ? await o.content()
          : Buffer.isBuffer(o.content)
            ? ReadableStream.from([o.content])
            : o.content;
      const putOpts: PutOptions = { sha256: o.sha256, size: o.size };
      if (o.contentType) putOpts.contentType = o.contentType;
      if (opts.signal) putOpts.signal = opts.signal;
      await repo.put(o.key, stream, putOpts);
      result.uploaded.push(o.key);
    }
    result.urls[o.key] = repo.url(o.key);
  }
  return result;
}
