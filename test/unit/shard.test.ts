/**
 * The sharded import's partition: every item lands in exactly one shard, the same one whatever order
 * the config listed the items in, shards are balanced by size, and every root of index.json (an
 * item's own, its cosign tags and referrers) goes with the item that carried it. `--shard` parsing,
 * with JOB_COMPLETION_INDEX for auto/N, refuses what is not a valid worker of N.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ImageItem, InventoryItem } from "../../src/bundle/inventory.js";
import { UsageError } from "../../src/errors.js";
import type { ImageIndex } from "../../src/oci/descriptor.js";
import {
  BLOB_COST_BYTES,
  itemCost,
  parseShardSpec,
  partition,
  selectShard,
  type Weighed,
} from "../../src/pipeline/shard.js";

const hex = (n: number) => `sha256:${n.toString(16).padStart(64, "0")}`;

describe("--shard I/N and auto/N", () => {
  it("takes I/N with 0 <= I < N, and auto/N from JOB_COMPLETION_INDEX", () => {
    expect(parseShardSpec("0/1", undefined)).toEqual({ index: 0, count: 1 });
    expect(parseShardSpec("2/3", "0")).toEqual({ index: 2, count: 3 });
    expect(parseShardSpec("auto/3", "1")).toEqual({ index: 1, count: 3 });
    expect(parseShardSpec("auto/3", "0")).toEqual({ index: 0, count: 3 });
  });

  it.each([
    ["3/3", undefined, /I must be below N/],
    ["0/0", undefined, /N must be 1 to 1000/],
    ["1", undefined, /takes I\/N/],
    ["-1/3", undefined, /takes I\/N/],
    ["1.5/3", undefined, /takes I\/N/],
    ["a/3", undefined, /takes I\/N/],
    ["0/1001", undefined, /N must be 1 to 1000/],
    ["auto/3", undefined, /JOB_COMPLETION_INDEX is not set/],
    ["auto/3", "", /JOB_COMPLETION_INDEX is not set/],
    ["auto/3", "3", /JOB_COMPLETION_INDEX=3 is not below 3/],
    ["auto/3", "x", /is not a whole number/],
  ])("refuses --shard %s (JOB_COMPLETION_INDEX=%s) as a usage error", (text, env, message) => {
    let caught: unknown;
    try {
      parseShardSpec(text, env);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(UsageError);
    expect((caught as UsageError).exitCode).toBe(2);
    expect((caught as Error).message).toMatch(message);
  });
});

const weighed = fc.uniqueArray(
  fc.record({
    key: fc.string({ minLength: 1, maxLength: 12 }),
    cost: fc.integer({ min: 0, max: 1_000_000 }),
  }),
  { selector: (w) => w.key, maxLength: 60 },
);

function loads(items: readonly Weighed[], shardOf: Map<string, number>, count: number): number[] {
  const out = new Array<number>(count).fill(0);
  for (const w of items) out[shardOf.get(w.key)!]! += w.cost;
  return out;
}

describe("partition", () => {
  it("puts every item in exactly one shard below N, the same for any order of the items", () => {
    fc.assert(
      fc.property(weighed, fc.integer({ min: 1, max: 7 }), fc.integer(), (items, count, seed) => {
        const a = partition(items, count);
        const shuffled = fc.sample(fc.shuffledSubarray(items, { minLength: items.length }), {
          numRuns: 1,
          seed,
        })[0]!;
        const b = partition(shuffled, count);
        expect([...a.keys()].sort()).toEqual(items.map((w) => w.key).sort());
        for (const s of a.values()) expect(s >= 0 && s < count).toBe(true);
        expect(new Map([...b].sort())).toEqual(new Map([...a].sort()));
      }),
    );
  });

  it("is balanced: no shard is heavier than the mean plus the largest item", () => {
    fc.assert(
      fc.property(weighed, fc.integer({ min: 1, max: 7 }), (items, count) => {
        const l = loads(items, partition(items, count), count);
        const total = items.reduce((n, w) => n + w.cost, 0);
        const largest = Math.max(0, ...items.map((w) => w.cost));
        for (const x of l) expect(x).toBeLessThanOrEqual(total / count + largest);
      }),
    );
  });

  it("spreads 10,000 items of realistic sizes within 1% across 8 shards", () => {
    // sizes from a fixed pseudo-random sequence: 10 MB to 2 GB, a few very large
    let x = 12345;
    const next = () => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return x / 2 ** 31;
    };
    const items = Array.from({ length: 10_000 }, (_, i) => ({
      key: `registry.example/team-${i % 97}/app-${i}:1.${i % 13}`,
      cost: Math.round(10e6 + next() ** 4 * 2e9),
    }));
    const l = loads(items, partition(items, 8), 8);
    const mean = l.reduce((a, b) => a + b, 0) / 8;
    for (const v of l) expect(Math.abs(v - mean) / mean).toBeLessThan(0.01);
  });

  it("equal items spread by hash, not by name order, and one shard takes everything", () => {
    const items = Array.from({ length: 9 }, (_, i) => ({ key: `r/app-${i}`, cost: 100 }));
    const s = partition(items, 3);
    expect(loads(items, s, 3)).toEqual([300, 300, 300]);
    // not the listing order dealt round-robin: the hash decides
    const byName = items.map((w) => s.get(w.key));
    expect(byName).not.toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2]);
    expect(new Set(partition(items, 1).values())).toEqual(new Set([0]));
  });

  it("weighs an item by its bytes plus a per-blob cost", () => {
    const item = { size: 1000, blobs: ["a", "b", "c"] } as unknown as InventoryItem;
    expect(itemCost(item)).toBe(1000 + 3 * BLOB_COST_BYTES);
  });
});

/** An image item with its root, a cosign signature tag and a referrer, as create writes them. */
function imageWithExtras(
  repo: string,
  n: number,
  size: number,
): { item: ImageItem; roots: ImageIndex["manifests"] } {
  const root = hex(n * 10 + 1);
  const sig = hex(n * 10 + 2);
  const referrer = hex(n * 10 + 3);
  const layer = hex(n * 10 + 4);
  const name = `registry.example/${repo}:1`;
  const item: ImageItem = {
    kind: "image",
    name,
    source: name,
    digest: root,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    size,
    blobs: [layer, root, sig, referrer],
    manifests: [],
    sourceDigest: root,
    platforms: [],
    carried: [
      { kind: "sig", subject: root, digest: sig, mediaType: "m", tag: `sha256-${root.slice(7)}.sig` },
      { kind: "referrer", subject: root, digest: referrer, mediaType: "m" },
    ],
  };
  const mt = "application/vnd.oci.image.manifest.v1+json";
  return {
    item,
    roots: [
      { mediaType: mt, digest: root, size: 100, annotations: { "org.opencontainers.image.ref.name": name } },
      {
        mediaType: mt,
        digest: sig,
        size: 100,
        annotations: {
          "org.opencontainers.image.ref.name": `registry.example/${repo}:sha256-${root.slice(7)}.sig`,
        },
      },
      {
        mediaType: mt,
        digest: referrer,
        size: 100,
        annotations: {
          "io.cinc-airgap.subject": root,
          "io.cinc-airgap.repository": `registry.example/${repo}`,
        },
      },
    ],
  };
}

describe("selectShard", () => {
  const images = Array.from({ length: 7 }, (_, i) => imageWithExtras(`team/app-${i}`, i + 1, (i + 1) * 1e8));
  const items = images.map((x) => x.item);
  const index: ImageIndex = { schemaVersion: 2, manifests: images.flatMap((x) => x.roots) };

  it("gives every root of index.json to exactly one shard, with the item that carried it", () => {
    const shards = [0, 1, 2].map((i) => selectShard(items, index, { index: i, count: 3 }));
    expect(shards.flatMap((s) => s.items).sort()).toEqual(items.map((i) => i.name).sort());
    for (const { item, roots } of images) {
      const owner = shards.findIndex((s) => s.ownsItem(item.name));
      for (const r of roots) {
        const name = r.annotations?.["org.opencontainers.image.ref.name"];
        const owners = shards.map((s) =>
          name
            ? s.ownsNamedRoot(name, r.digest)
            : s.ownsReferrer(r.annotations!["io.cinc-airgap.repository"]!, r.digest),
        );
        expect(owners.filter(Boolean), `${name ?? r.digest}`).toHaveLength(1);
        expect(owners[owner], `${name ?? r.digest} goes with ${item.name}`).toBe(true);
      }
    }
  });

  it("is the same for any order of the items and of index.json", () => {
    const reversed = selectShard(
      [...items].reverse(),
      { ...index, manifests: [...index.manifests].reverse() },
      {
        index: 1,
        count: 3,
      },
    );
    expect(reversed.items).toEqual(selectShard(items, index, { index: 1, count: 3 }).items);
  });

  it("a root no item claims goes to shard 0; 0/1 takes everything", () => {
    const stray = {
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: hex(999),
      size: 1,
      annotations: { "org.opencontainers.image.ref.name": "registry.example/other/thing:1" },
    };
    const withStray: ImageIndex = { ...index, manifests: [...index.manifests, stray] };
    expect(
      selectShard(items, withStray, { index: 0, count: 2 }).ownsNamedRoot(
        stray.annotations["org.opencontainers.image.ref.name"],
        stray.digest,
      ),
    ).toBe(true);
    expect(
      selectShard(items, withStray, { index: 1, count: 2 }).ownsNamedRoot(
        stray.annotations["org.opencontainers.image.ref.name"],
        stray.digest,
      ),
    ).toBe(false);
    const all = selectShard(items, withStray, { index: 0, count: 1 });
    expect(all.items).toHaveLength(items.length);
    for (const m of withStray.manifests) {
      const name = m.annotations?.["org.opencontainers.image.ref.name"];
      expect(
        name
          ? all.ownsNamedRoot(name, m.digest)
          : all.ownsReferrer(m.annotations!["io.cinc-airgap.repository"]!, m.digest),
      ).toBe(true);
    }
  });
});
