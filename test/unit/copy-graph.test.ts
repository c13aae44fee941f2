import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import pLimit from "p-limit";
import { describe, expect, it } from "vitest";
import { IntegrityError, RemoteError } from "../../src/errors.js";
import type { Descriptor } from "../../src/oci/descriptor.js";
import { MediaType } from "../../src/oci/mediatypes.js";
import { type CopyEvent, copyGraph } from "../../src/store/copy.js";
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

  describe("a blob copy that fails on the way", () => {
    const fast = { retries: 3, baseDelayMs: 1, maxDelayMs: 5 };

    /** A destination whose first `failures` layer uploads read half the content, then fail with `error`. */
    class FlakyStore extends MemoryStore {
      attempts = 0;
      constructor(
        private failures: number,
        private readonly error: () => Error,
      ) {
        super("flaky");
      }
      override async push(desc: Descriptor, content: Readable): Promise<void> {
        if (desc.mediaType !== MediaType.ociLayer || this.failures === 0) return super.push(desc, content);
        this.failures--;
        this.attempts++;
        let n = 0;
        for await (const c of content) {
          n += (c as Buffer).length;
          if (n >= desc.size / 2) break;
        }
        throw this.error();
      }
    }

    it("starts again from the first byte, source re-opened, and says so", async () => {
      const src = new MemoryStore();
      const root = image(src, [randomBytes(200_000)]);
      const cut = Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" });
      const dst = new FlakyStore(2, () => cut);
      const events: CopyEvent[] = [];
      await copyGraph(src, dst, root, { retry: fast, onEvent: (e) => events.push(e) });
      expect([...dst.blobs.keys()].sort()).toEqual([...src.blobs.keys()].sort());
      const retries = events.filter((e) => e.type === "retry");
      expect(retries).toHaveLength(2);
      // the bytes of failed attempts are taken back: progress counts every byte once
      const moved = events.reduce((n, e) => n + (e.type === "bytes" ? e.bytes : 0), 0);
      expect(moved).toBe([...src.blobs.values()].reduce((n, b) => n + b.length, 0));
    });

    it("retries a 5xx answer, but not a refusal (4xx) or wrong bytes, and stops at the limit", async () => {
      const src = new MemoryStore();
      const root = image(src, [randomBytes(10_000)]);
      const busy = new FlakyStore(1, () => new RemoteError("503 Service Unavailable", 503));
      await copyGraph(src, busy, root, { retry: fast });
      expect(busy.blobs.has(root.digest)).toBe(true);

      const refused = new FlakyStore(5, () => new RemoteError("403 Forbidden", 403));
      await expect(copyGraph(src, refused, root, { retry: fast })).rejects.toThrow(/403/);
      expect(refused.attempts).toBe(1);

      const endless = new FlakyStore(99, () => new RemoteError("502 Bad Gateway", 502));
      await expect(copyGraph(src, endless, root, { retry: fast })).rejects.toThrow(/502/);
      expect(endless.attempts).toBe(1 + fast.retries);

      const bad = new MemoryStore();
      const badRoot = image(bad, [randomBytes(100)]);
      const layer = (JSON.parse(bad.blobs.get(badRoot.digest)!.toString()) as { layers: Descriptor[] })
        .layers[0]!;
      bad.blobs.set(layer.digest, randomBytes(100));
      const dst = new MemoryStore();
      await expect(copyGraph(bad, dst, badRoot, { retry: fast })).rejects.toBeInstanceOf(IntegrityError);
      expect(bad.calls.fetch).toBeLessThanOrEqual(3); // the manifest and config reads, one layer attempt
    });

    it("opens the source only when the destination reads it (a mount reads nothing)", async () => {
      const src = new MemoryStore();
      const root = image(src, [randomBytes(1000)]);
      class Mounting extends MemoryStore {
        override async push(desc: Descriptor, content: Readable): Promise<void> {
          if (desc.mediaType.includes("manifest")) return super.push(desc, content);
          content.destroy();
          this.blobs.set(desc.digest, src.blobs.get(desc.digest)!);
        }
      }
      const dst = new Mounting();
      await copyGraph(src, dst, root);
      expect(src.calls.fetch).toBe(1); // the manifest only
      expect(dst.blobs.size).toBe(src.blobs.size);
    });
  });
});
