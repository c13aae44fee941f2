import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import pLimit from "p-limit";
import { describe, expect, it } from "vitest";
import { IntegrityError } from "../../src/errors.js";
import type { Descriptor } from "../../src/oci/descriptor.js";
import { MediaType } from "../../src/oci/mediatypes.js";
import { copyGraph } from "../../src/store/copy.js";
import { image, MemoryStore } from "../helpers/memory-store.js";

describe("copyGraph", () => {
  it("copies an index with its manifests, configs and layers, children before parents", async () => {
    const src = new MemoryStore("src");
    const dst = new MemoryStore("dst");
    const a = image(src, [randomBytes(1000), randomBytes(2000)]);
    const b = image(src, [randomBytes(3000)]);
    const index = src.addManifest({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [
        { ...a, platform: { os: "linux", architecture: "amd64" } },
        { ...b, platform: { os: "linux", architecture: "arm64" } },
      ],
    });
    await copyGraph(src, dst, index);
    expect([...dst.blobs.keys()].sort()).toEqual([...src.blobs.keys()].sort());
    expect(dst.pushed.at(-1)).toBe(index.digest);
  });

  it("copies a blob shared by many images once, also when the copies run at the same time", async () => {
    const src = new MemoryStore();
    const dst = new MemoryStore();
    const base = randomBytes(5000);
    const roots = Array.from({ length: 6 }, () => image(src, [base, randomBytes(100)]));
    const inflight = new Map<string, Promise<void>>();
    const limit = pLimit(4);
    await Promise.all(roots.map((r) => copyGraph(src, dst, r, { inflight, limit })));
    const baseDigest = src.add(base, MediaType.ociLayer).digest;
    expect(dst.pushed.filter((d) => d === baseDigest)).toHaveLength(1);
    expect(new Set(dst.pushed).size).toBe(dst.pushed.length);
  });

  it("skips what the destination already has and fetches nothing for it", async () => {
    const src = new MemoryStore();
    const dst = new MemoryStore();
    const root = image(src, [randomBytes(4000), randomBytes(4000)]);
    await copyGraph(src, dst, root);
    const fetchesBefore = src.calls.fetch;
    const pushesBefore = dst.calls.push;
    await copyGraph(src, dst, root);
    expect(dst.calls.push).toBe(pushesBefore);
    expect(src.calls.fetch).toBe(fetchesBefore);
  });

  it("heals an interrupted copy: a missing layer below a present manifest is copied", async () => {
    const src = new MemoryStore();
    const dst = new MemoryStore();
    const layer = randomBytes(1234);
    const root = image(src, [layer]);
    await copyGraph(src, dst, root);
    const layerDigest = src.add(layer, MediaType.ociLayer).digest;
    dst.blobs.delete(layerDigest);
    await copyGraph(src, dst, root);
    expect(dst.blobs.get(layerDigest)?.equals(layer)).toBe(true);
  });

  it("holdRoot: copies everything below the root, and hands back the root's bytes instead of pushing it", async () => {
    const src = new MemoryStore();
    const dst = new MemoryStore();
    const root = image(src, [randomBytes(700), randomBytes(300)]);
    const result = await copyGraph(src, dst, root, { holdRoot: true });
    expect(dst.blobs.has(root.digest)).toBe(false);
    expect(dst.blobs.size).toBe(src.blobs.size - 1);
    expect(result.heldRoot?.equals(src.blobs.get(root.digest)!)).toBe(true);
  });

  it("presentRootIsComplete: a root the destination holds is not walked (no existence check per child)", async () => {
    const src = new MemoryStore();
    const dst = new MemoryStore();
    const layer = randomBytes(1234);
    const root = image(src, [layer]);
    await copyGraph(src, dst, root);
    const layerDigest = src.add(layer, MediaType.ociLayer).digest;
    dst.blobs.delete(layerDigest);
    const existsBefore = dst.calls.exists;
    await copyGraph(src, dst, root, { presentRootIsComplete: true });
    expect(dst.calls.exists - existsBefore).toBe(1);
    expect(dst.blobs.has(layerDigest)).toBe(false);
  });

  it("follows cosign tags and referrers and tags the cosign tags in the destination", async () => {
    const src = new MemoryStore();
    const dst = new MemoryStore();
    const root = image(src, [randomBytes(100)]);
    const sig = image(src, [Buffer.from("{}")]);
    src.tags.set(`sha256-${root.digest.slice(7)}.sig`, sig);
    const sbom = image(src, [randomBytes(50)], {
      subject: root,
      artifactType: "application/spdx+json",
    } as never);
    src.subjects.set(root.digest, [sbom]);
    const result = await copyGraph(src, dst, root, { cosignTags: ["sig", "att"], referrers: true });
    expect(result.extras.map((e) => e.kind).sort()).toEqual(["referrer", "sig"]);
    expect(dst.tags.get(`sha256-${root.digest.slice(7)}.sig`)?.digest).toBe(sig.digest);
    expect(dst.blobs.has(sbom.digest)).toBe(true);
  });

  it("fails with an IntegrityError naming the digest when the source serves wrong bytes", async () => {
    const src = new MemoryStore();
    const dst = new MemoryStore();
    const root = image(src, [randomBytes(100)]);
    const manifest = JSON.parse(src.blobs.get(root.digest)!.toString()) as { layers: Descriptor[] };
    const layer = manifest.layers[0]!;
    src.blobs.set(layer.digest, randomBytes(100));
    const err = await copyGraph(src, dst, root).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as IntegrityError).message).toContain(layer.digest);
    expect(dst.blobs.has(root.digest)).toBe(false);
  });

  it("never pushes a parent whose child failed", async () => {
    const src = new MemoryStore();
    const dst = new MemoryStore();
    const root = image(src, [randomBytes(10)]);
    const m = JSON.parse(src.blobs.get(root.digest)!.toString()) as { layers: Descriptor[] };
    src.blobs.delete(m.layers[0]!.digest);
    await expect(copyGraph(src, dst, root)).rejects.toThrow();
    expect(dst.blobs.has(root.digest)).toBe(false);
    expect(Readable).toBeDefined();
  });
});
