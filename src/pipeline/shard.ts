/**
 * Sharded import: which of a bundle's items one of N independent workers pushes (a Kubernetes
 * Indexed Job gives each its index). Pure: the partition depends only on the items (their names,
 * sizes and blob counts), never on the order the config listed them, so every worker computes the
 * same one without talking to the others. Every write of an import is content-addressed, so two
 * workers that share a blob may both upload it and the registry keeps one.
 */
import type { InventoryItem } from "../bundle/inventory.js";
import { UsageError } from "../errors.js";
import type { ImageIndex } from "../oci/descriptor.js";
import { sha256Hex } from "../oci/digest.js";
import { parseReference } from "../oci/reference.js";
import { namedRoots, referrerRoots } from "../store/bundle.js";

/** Worker `index` (0-based) of `count`. */
export interface ShardSpec {
  index: number;
  count: number;
}

/** Set by Kubernetes in each pod of an Indexed Job (completionMode: Indexed). */
export const JOB_INDEX_VARIABLE = "JOB_COMPLETION_INDEX";
/** More workers than this is a typo, not a plan: a registry is not faster from 10,000 clients. */
export const MAX_SHARDS = 1000;

/**
 * A blob costs this much on top of its bytes when weighing items: a registry round trip (HEAD,
 * upload session, PUT) for a small blob takes as long as moving a few MB. Measured figure and
 * derivation: docs/scale.md.
 */
export const BLOB_COST_BYTES = 4 * 1024 * 1024;

/**
 * `I/N` or `auto/N` (I from JOB_COMPLETION_INDEX): 0 <= I < N <= MAX_SHARDS, plain decimal digits.
 */
export function parseShardSpec(text: string, jobIndex: string | undefined): ShardSpec {
  const usage = `--shard takes I/N (0-based worker I of N, e.g. 0/3) or auto/N (I from ${JOB_INDEX_VARIABLE}, as a Kubernetes Indexed Job sets it)`;
  const m = /^(auto|\d{1,4})\/(\d{1,4})$/.exec(text.trim());
  if (!m) throw new UsageError(`--shard ${JSON.stringify(text)}: ${usage}`);
  const count = Number(m[2]);
  if (count < 1 || count > MAX_SHARDS) {
    throw new UsageError(`--shard ${text}: N must be 1 to ${MAX_SHARDS}; ${usage}`);
  }
  let index: number;
  if (m[1] === "auto") {
    if (jobIndex === undefined || jobIndex.trim() === "") {
      throw new UsageError(
        `--shard ${text}: ${JOB_INDEX_VARIABLE} is not set; run it in an Indexed Job (completionMode: Indexed) or give the index: --shard I/${count}`,
      );
    }
    if (!/^\d{1,4}$/.test(jobIndex.trim())) {
      throw new UsageError(
        `--shard ${text}: ${JOB_INDEX_VARIABLE}=${JSON.stringify(jobIndex)} is not a whole number`,
      );
    }
    index = Number(jobIndex.trim());
    if (index >= count) {
      throw new UsageError(
        `--shard ${text}: ${JOB_INDEX_VARIABLE}=${index} is not below ${count}: the Job's completions must equal N`,
      );
    }
  } else {
    index = Number(m[1]);
    if (index >= count) throw new UsageError(`--shard ${text}: I must be below N (0 to ${count - 1})`);
  }
  return { index, count };
}

/** What the partition weighs: a unique key (the item's normalized source reference) and its cost. */
export interface Weighed {
  key: string;
  /** Estimated cost of pushing it, in bytes (its bytes plus BLOB_COST_BYTES per blob). */
  cost: number;
}

/** A stable hash of a key: the same on every machine, run and Node version. */
export function stableHash(key: string): string {
  return sha256Hex(key);
}

/**
 * Shard of every key: largest cost first, each into the least loaded shard (the lowest index among
 * equals). Ties in cost are ordered by the key's stable hash (then the key), so the outcome depends
 * on the set of items only, and items of equal size spread evenly rather than by name. Greedy
 * largest-first keeps every shard within the largest single item of the mean.
 */
export function partition(items: readonly Weighed[], count: number): Map<string, number> {
  const unique = new Map<string, Weighed>();
  for (const w of items)
    unique.set(w.key, { key: w.key, cost: Math.max(unique.get(w.key)?.cost ?? 0, w.cost) });
  const ordered = [...unique.values()]
    .map((w) => ({ ...w, hash: stableHash(w.key) }))
    .sort(
      (a, b) =>
        b.cost - a.cost ||
        (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0) ||
        (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
    );
  const load = new Array<number>(count).fill(0);
  const out = new Map<string, number>();
  for (const w of ordered) {
    let best = 0;
    for (let s = 1; s < count; s++) if (load[s]! < load[best]!) best = s;
    load[best]! += w.cost;
    out.set(w.key, best);
  }
  return out;
}

/** An item's cost for the partition. */
export function itemCost(item: InventoryItem): number {
  return item.size + BLOB_COST_BYTES * item.blobs.length;
}

/** What one worker pushes: its items, and a test for each root of the bundle's index.json. */
export interface ShardSelection {
  spec: ShardSpec;
  /** Names of the items this worker pushes, sorted. */
  items: string[];
  /** Their estimated cost in bytes (see itemCost). */
  cost: number;
  ownsItem(name: string): boolean;
  /** A named root (an item's own root, or a cosign `sha256-<hex>.sig` tag) by its ref name. */
  ownsNamedRoot(name: string, digest: string): boolean;
  /** An untagged referrer root, by its repository and digest. */
  ownsReferrer(repository: string, digest: string): boolean;
}

function repositoryOf(name: string): string {
  const r = parseReference(name);
  return `${r.registry}/${r.repository}`;
}

/**
 * The roots of index.json worker `spec.index` pushes. An item's root goes with the item; a cosign
 * tag or referrer goes with the item that carried it (same repository, its digest among the item's
 * blobs; the first such item by name where several did); a root no item claims goes to worker 0,
 * so every root has exactly one worker.
 */
export function selectShard(
  items: readonly InventoryItem[],
  index: ImageIndex,
  spec: ShardSpec,
): ShardSelection {
  const shardOf = partition(
    items.map((i) => ({ key: i.name, cost: itemCost(i) })),
    spec.count,
  );
  // (repository, digest) → the item that carried it, for roots named by something else than an item
  const carriers = new Map<string, string>();
  const carried = (repository: string, digest: string) => `${repository}\0${digest}`;
  const names = new Set(items.map((i) => i.name));
  const rootDigests = new Set(index.manifests.map((m) => m.digest));
  for (const item of [...items].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const repository = repositoryOf(item.name);
    for (const digest of item.blobs) {
      if (!rootDigests.has(digest)) continue;
      const key = carried(repository, digest);
      if (!carriers.has(key)) carriers.set(key, item.name);
    }
  }
  const shardOfRoot = (repository: string, digest: string) => {
    const carrier = carriers.get(carried(repository, digest));
    return carrier === undefined ? 0 : (shardOf.get(carrier) ?? 0);
  };
  const ownNamed = new Set<string>();
  for (const { name, descriptor } of namedRoots(index)) {
    const s = names.has(name) ? shardOf.get(name)! : shardOfRoot(repositoryOf(name), descriptor.digest);
    if (s === spec.index) ownNamed.add(`${name}\0${descriptor.digest}`);
  }
  const ownReferrers = new Set<string>();
  for (const r of referrerRoots(index)) {
    const repository = repositoryOf(r.repository);
    if (shardOfRoot(repository, r.descriptor.digest) === spec.index) {
      ownReferrers.add(carried(repository, r.descriptor.digest));
    }
  }
  const mine = items.filter((i) => shardOf.get(i.name) === spec.index);
  const own = new Set(mine.map((i) => i.name));
  return {
    spec,
    items: [...own].sort(),
    cost: [...new Map(mine.map((i) => [i.name, itemCost(i)])).values()].reduce((n, c) => n + c, 0),
    ownsItem: (name) => own.has(name),
    ownsNamedRoot: (name, digest) => ownNamed.has(`${name}\0${digest}`),
    ownsReferrer: (repository, digest) => ownReferrers.has(carried(repositoryOf(repository), digest)),
  };
}
