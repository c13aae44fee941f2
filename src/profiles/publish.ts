/**
 * Publish packed profiles to an internal artifact repository (S3 or HTTP):
 * `profiles/NAME/VERSION/NAME-VERSION.tar.gz` for each, plus `profiles/index.json` listing every
 * profile (name, version, sha256, url), merged with the index already there. Content already
 * present with the same sha256 is skipped, so importing the same bundle twice uploads nothing.
 */

import { createReadStream } from "node:fs";
import type { Readable } from "node:stream";
import { parseSha256Hex } from "../oci/digest.js";
import type { ArtifactRepository } from "../store/artifacts.js";
import {
  assertSafeSegment,
  type PublishObject,
  type PublishResult,
  publishObjects,
  smallObject,
} from "../store/publish.js";

export type { PublishResult };

export interface PublishableProfile {
  name: string;
  version: string;
  sha256: string;
  size: number;
  tarPath?: string;
  /** The content, or a function called once when it is needed (not when the repository has it already). */
  stream?: Readable | (() => Readable | Promise<Readable>);
  /** Another worker of a sharded import uploads it: listed in the index, not uploaded here. */
  elsewhere?: boolean;
}

export interface ProfileIndexEntry {
  name: string;
  version: string;
  sha256: string;
  url: string;
}

export const PROFILE_INDEX_KEY = "profiles/index.json";

export function profileKey(name: string, version: string): string {
  return `profiles/${name}/${version}/${name}-${version}.tar.gz`;
}

export async function publishProfiles(
  profiles: readonly PublishableProfile[],
  repo: ArtifactRepository,
  opts: { signal?: AbortSignal } = {},
): Promise<PublishResult> {
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
  const objects: PublishObject[] = profiles.map((p) => {
    assertSafeSegment(p.name, "profile name");
    assertSafeSegment(p.version, "profile version");
    parseSha256Hex(p.sha256, `sha256 of profile ${p.name} ${p.version}`);
    const key = profileKey(p.name, p.version);
    entries.set(`${p.name}\0${p.version}`, {
      name: p.name,
      version: p.version,
      sha256: p.sha256,
      url: repo.url(key),
    });
    const content = p.tarPath ? () => createReadStream(p.tarPath!) : p.stream;
    if (!content) throw new Error(`profile ${p.name} ${p.version}: neither tarPath nor stream given`);
    return {
      key,
      sha256: p.sha256,
      size: p.size,
      contentType: "application/gzip",
      content,
      ...(p.elsewhere ? { elsewhere: true } : {}),
    };
  });
  const sorted = [...entries.values()].sort(
    (a, b) => compare(a.name, b.name) || compare(a.version, b.version),
  );
  const index = Buffer.from(`${JSON.stringify({ profiles: sorted }, null, 2)}\n`);
  // the index goes last: it only names profiles that are already there
  objects.push(smallObject(PROFILE_INDEX_KEY, index, "application/json"));
  return await publishObjects(objects, repo, opts);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
