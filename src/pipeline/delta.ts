/**
 * Incremental bundles (`create --since BASE`) leave out the layers and configs BASE carried. Import
 * finds each such blob in the target registry, in a repository that this bundle's items or BASE's
 * items (`since.holders`) were imported to, and serves it from there: the registry mounts it across
 * repositories, or, when it refuses the mount, it streams from that repository (verified against
 * its digest) into the one that needs it. Only a blob the target holds nowhere BASE put it is
 * refused. The import must use the mapping (--registry, --prefix, mappings) BASE was imported with.
 */
import type { Readable } from "node:stream";
import type pLimit from "p-limit";
import type { Inventory } from "../bundle/inventory.js";
import { NotFoundError, UsageError } from "../errors.js";
import { childrenOf, type Descriptor, parseManifest } from "../oci/descriptor.js";
import { parseReference, type Reference } from "../oci/reference.js";
import type { RegistryClient } from "../oci/registry/client.js";
import { type CopyGraphOptions, copyGraph, isNotFound } from "../store/copy.js";
import { type RegistryStore, registryRepository } from "../store/registry.js";
import type { ReadOnlyStore, Store } from "../store/store.js";
import { type MappingOptions, mapReference } from "../targets/mapping.js";

/** Blobs an incremental bundle leaves out, each read from the target repository found to hold it. */
export class BaseContent implements ReadOnlyStore {
  readonly label: string;

  constructor(
    private readonly holders: Map<string, RegistryStore>,
    base: string,
  ) {
    this.label = `the target's copy of what ${base} carried`;
  }

  /** Is this one of the left-out blobs (found in the target)? */
  has(digest: string): boolean {
    return this.holders.has(digest);
  }

  /** Where the blob was found, e.g. `127.0.0.1:5000/team/app`. */
  holderOf(digest: string): string | undefined {
    const s = this.holders.get(digest);
    return s ? `${s.registry}/${s.repository}` : undefined;
  }

  async resolve(ref: string): Promise<Descriptor> {
    throw new NotFoundError(`${ref} is not among the blobs ${this.label} holds`, ref);
  }

  async exists(desc: Descriptor): Promise<boolean> {
    return this.holders.has(desc.digest);
  }

  async fetch(desc: Descriptor, signal?: AbortSignal): Promise<Readable> {
    const holder = this.holders.get(desc.digest);
    if (!holder) throw new NotFoundError(`${desc.digest} is not among the blobs ${this.label}`, desc.digest);
    return holder.fetch(desc, signal);
  }

  async referrers(): Promise<Descriptor[]> {
    return [];
  }
}

/** `src`, with the left-out blobs of an incremental bundle read from the target where src lacks them. */
export function withBaseContent(src: ReadOnlyStore, base: BaseContent | undefined): ReadOnlyStore {
  if (!base) return src;
  return {
    label: src.label,
    resolve: (ref, signal) => src.resolve(ref, signal),
    referrers: (desc, signal) => src.referrers(desc, signal),
    exists: async (desc, signal) => (await src.exists(desc, signal)) || base.has(desc.digest),
    fetch: async (desc, signal) => {
      try {
        return await src.fetch(desc, signal);
      } catch (err) {
        if (isNotFound(err) && base.has(desc.digest)) return base.fetch(desc, signal);
        throw err;
      }
    },
  };
}

/**
 * Before anything is pushed: find, for every blob the bundle leaves out, one repository of the
 * target that holds it, looking first in the repositories of the items that need it, then in those
 * BASE's items went to. Refuses (naming blobs and the repositories tried) when a blob is nowhere.
 * Each repository found to hold a blob is remembered by the registry client as a mount source.
 */
export async function locateBaseContent(
  inventory: Inventory,
  mapping: MappingOptions,
  client: RegistryClient,
  limit: ReturnType<typeof pLimit>,
  signal?: AbortSignal,
): Promise<BaseContent | undefined> {
  const since = inventory.since;
  const omitted = new Set(since?.omittedBlobs ?? []);
  if (!since || omitted.size === 0) return undefined;

  const targetOf = (name: string): Reference | undefined => {
    try {
      const r = mapReference(parseReference(name), mapping);
      return { registry: r.registry, repository: r.repository };
    } catch {
      // A name that does not parse as a reference names no repository to look in.
      return undefined;
    }
  };
  const candidates = new Map<string, Reference[]>();
  const add = (digest: string, ref: Reference | undefined) => {
    if (!ref || !omitted.has(digest)) return;
    const list = candidates.get(digest) ?? [];
    if (!list.some((r) => r.registry === ref.registry && r.repository === ref.repository)) list.push(ref);
    candidates.set(digest, list);
  };
  // The bundle's own items first (the base most likely put the blob right there), then BASE's.
  const needed = new Set<string>();
  for (const item of inventory.items) {
    const to = targetOf(item.name);
    for (const d of item.blobs) {
      if (!omitted.has(d)) continue;
      needed.add(d);
      add(d, to);
    }
  }
  for (const h of since.holders ?? []) {
    const to = targetOf(h.name);
    for (const d of h.blobs) if (needed.has(d)) add(d, to);
  }

  const stores = new Map<string, RegistryStore>();
  const storeOf = (r: Reference) => {
    const key = `${r.registry}/${r.repository}`;
    let s = stores.get(key);
    if (!s) {
      s = registryRepository(client, r.registry, r.repository);
      stores.set(key, s);
    }
    return s;
  };
  const holders = new Map<string, RegistryStore>();
  const missing: string[] = [];
  await Promise.all(
    [...needed].map(async (digest) => {
      const tried = candidates.get(digest) ?? [];
      for (const ref of tried) {
        const store = storeOf(ref);
        // the size is not needed to ask a registry whether it has a blob
        const desc = { mediaType: "application/octet-stream", digest, size: 0 };
        if (await limit(() => store.exists(desc, signal))) {
          holders.set(digest, store);
          return;
        }
      }
      missing.push(`${digest} (looked in ${tried.map((r) => `${r.registry}/${r.repository}`).join(", ")})`);
    }),
  );
  if (missing.length > 0) {
    missing.sort();
    throw new UsageError(
      `this bundle is incremental on top of ${since.bundle} (${since.name} ${since.version}, created ${since.created}) and the target holds ${missing.length} blob(s) it leaves out in none of the repositories that bundle's content went to: ${missing.slice(0, 3).join("; ")}${missing.length > 3 ? `; and ${missing.length - 3} more` : ""}. Import ${since.bundle} into the same target first, with the same --registry, --prefix and mapping`,
    );
  }
  return new BaseContent(holders, since.bundle);
}

/**
 * Before a manifest from a bundle read once (a pipe) is pushed to `dst`: put there the left-out
 * blobs it names, mounted or copied from where the target holds them.
 */
export async function placeLeftOutChildren(
  base: BaseContent | undefined,
  manifest: Buffer,
  desc: Descriptor,
  dst: Store,
  options: CopyGraphOptions,
): Promise<void> {
  if (!base) return;
  const children = childrenOf(parseManifest(manifest, desc)).filter((c) => base.has(c.digest));
  await Promise.all(children.map((child) => copyGraph(base, dst, child, options)));
}
