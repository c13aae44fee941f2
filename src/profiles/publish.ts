/**
 * Publish packed profiles to an internal artifact repository (S3 or HTTP):
 * `profiles/NAME/VERSION/NAME-VERSION.tar.gz` for each, plus `profiles/index.json` listing every
 * profile (name, version, sha256, url), merged with the index already there. Content already
 * present with the same sha256 is skipped, so importing the same bundle twice uploads nothing.
 */

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import type { Readable } from "node:stream";
import { Readable as ReadableStream } from "node:stream";
import { IntegrityError } from "../errors.js";
import { parseSha256Hex } from "../oci/digest.js";
import type { ArtifactRepository } from "../store/artifacts.js";

export interface PublishableProfile {
  name: string;
  version: string;
  sha256: string;
  size: number;
  tarPath?: string;
  /** The content, or a function called once when it is needed (not when the repository has it already). */
  stream?: Readable | (() => Readable | Promise<Readable>);
}

export interface ProfileIndexEntry {
  name: string;
  version: string;
  sha256: string;
  url: string;
}

export interface PublishResult {
  uploaded: string[];
  skipped: string[];
  /** Key → URL of every profile published (uploaded or already there). */
  urls: Record<string, string>;
}

export const PROFILE_INDEX_KEY = "profiles/index.json";

export function profileKey(name: string, version: string): string {
  return `profiles/${name}/${version}/${name}-${version}.tar.gz`;
}

/** Name and version come from bundle.json: one path segment each, never a way out of profiles/. */
function assertSafeSegment(s: string, what: string): void {
  if (s === "" || s === "." || s === ".." || s.includes("/") || s.includes("\\") || /[\0\r\n]/.test(s)) {
    throw new IntegrityError(
      "PATH_ESCAPE",
      `profile ${what} ${JSON.stringify(s)} cannot be used in a repository path`,
      s,
    );
  }
}

export async function publishProfiles(
  profiles: readonly PublishableProfile[],
  repo: ArtifactRepository,
  opts: { signal?: AbortSignal } = {},
): Promise<PublishResult> {
  const result: PublishResult = { uploaded: [], skipped: [], urls: {} };
  const entries = new Map<string, ProfileIndexEntry>();
  const previous = repo.get ? await repo.get(PROFILE_INDEX_KEY, opts.signal) : undefined;
  if (previous) {
    try {
      const parsed = JSON.parse(previous.toString("utf8")) as { profiles?: ProfileIndexEntry[] };
      for (const e of parsed.profiles ?? []) entries.set(`${e.name}\0${e.version}`, e);
    } catch {
      // an unreadable index is rebuilt from what this import publishes
    }
  }
  for (const p of profiles) {
    assertSafeSegment(p.name, "name");
    assertSafeSegment(p.version, "version");
    parseSha256Hex(p.sha256, `sha256 of profile ${p.name} ${p.version}`);
    const key = profileKey(p.name, p.version);
    if (await repo.exists(key, p.sha256, p.size, opts.signal)) {
      if (p.stream && typeof p.stream !== "function") p.stream.destroy();
      result.skipped.push(key);
    } else {
      const stream = p.tarPath
        ? createReadStream(p.tarPath)
        : typeof p.stream === "function"
          ? await p.stream()
          : p.stream;
      if (!stream) throw new Error(`profile ${p.name} ${p.version}: neither tarPath nor stream given`);
      const putOpts: Parameters<ArtifactRepository["put"]>[2] = {
        sha256: p.sha256,
        size: p.size,
        contentType: "application/gzip",
      };
      if (opts.signal) putOpts.signal = opts.signal;
      await repo.put(key, stream, putOpts);
      result.uploaded.push(key);
    }
    result.urls[key] = repo.url(key);
    entries.set(`${p.name}\0${p.version}`, {
      name: p.name,
      version: p.version,
      sha256: p.sha256,
      url: repo.url(key),
    });
  }
  const sorted = [...entries.values()].sort((a, b) =>
    a.name === b.name
      ? a.version < b.version
        ? -1
        : a.version > b.version
          ? 1
          : 0
      : a.name < b.name
        ? -1
        : 1,
  );
  const index = Buffer.from(`${JSON.stringify({ profiles: sorted }, null, 2)}\n`);
  const indexSha = createHash("sha256").update(index).digest("hex");
  if (await repo.exists(PROFILE_INDEX_KEY, indexSha, index.length, opts.signal)) {
    result.skipped.push(PROFILE_INDEX_KEY);
  } else {
    const putOpts: Parameters<ArtifactRepository["put"]>[2] = {
      sha256: indexSha,
      size: index.length,
      contentType: "application/json",
    };
    if (opts.signal) putOpts.signal = opts.signal;
    await repo.put(PROFILE_INDEX_KEY, ReadableStream.from([index]), putOpts);
    result.uploaded.push(PROFILE_INDEX_KEY);
  }
  result.urls[PROFILE_INDEX_KEY] = repo.url(PROFILE_INDEX_KEY);
  return result;
}
