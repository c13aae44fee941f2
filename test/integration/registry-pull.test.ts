import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IntegrityError, RemoteError } from "../../src/errors.js";
import { MANIFEST_ACCEPT } from "../../src/oci/mediatypes.js";
import { RegistryClient } from "../../src/oci/registry/client.js";
import { registryRepository } from "../../src/store/registry.js";
import { needEnv } from "../helpers/env.js";
import {
  closeFixtures,
  MT,
  type PushedImage,
  type PushedIndex,
  plainTarget,
  pushArtifact,
  pushImage,
  pushIndex,
  uniqueRepo,
} from "../helpers/fixtures.js";

const target = plainTarget();
const host = target.host;
const repo = uniqueRepo("pull");
let client: RegistryClient;
let oci: PushedImage;
let docker: PushedImage;
let index: PushedIndex;

async function drain(s: Readable): Promise<{ bytes: number; digest: string }> {
  const h = createHash("sha256");
  let bytes = 0;
  for await (const c of s) {
    h.update(c as Buffer);
    bytes += (c as Buffer).length;
  }
  return { bytes, digest: `sha256:${h.digest("hex")}` };
}

beforeAll(async () => {
  client = new RegistryClient({ hosts: [{ host, plainHTTP: true }] });
  oci = await pushImage(target, repo, "oci", { layerSizes: [300_000, 1000] });
  docker = await pushImage(target, repo, "v2s2", { layerSizes: [2000], format: "docker" });
  index = await pushIndex(target, repo, "multi", { layerSizes: [500] });
});

afterAll(async () => {
  await client.close();
  await closeFixtures();
});

describe("RegistryStore reads manifests", () => {
  const cases = () =>
    [
      ["OCI manifest", "oci", oci],
      ["Docker v2s2 manifest", "v2s2", docker],
      ["OCI index", "multi", index],
    ] as const;

  it("resolves tags and digests to the descriptor of the exact bytes (HEAD)", async () => {
    const store = registryRepository(client, host, repo);
    for (const [, tag, pushed] of cases()) {
      const want = { mediaType: pushed.mediaType, digest: pushed.digest, size: pushed.size };
      expect(await store.resolve(tag)).toEqual(want);
      expect(await store.resolve(pushed.digest)).toEqual(want);
    }
  });

  it("GETs by tag and digest: bytes identical to what was pushed, digest = sha256 of them", async () => {
    const store = registryRepository(client, host, repo);
    for (const [, tag, pushed] of cases()) {
      for (const ref of [tag, pushed.digest]) {
        const got = await store.fetchManifest(ref);
        expect(got.bytes.equals(pushed.manifestBytes)).toBe(true);
        expect(got.descriptor).toEqual({
          mediaType: pushed.mediaType,
          digest: pushed.digest,
          size: pushed.size,
        });
        expect(`sha256:${createHash("sha256").update(got.bytes).digest("hex")}`).toBe(pushed.digest);
      }
    }
  });

  it("asks with the full Accept list, so a Docker manifest list is not swapped for its amd64 child", async () => {
    expect(MANIFEST_ACCEPT.split(", ").sort()).toEqual(
      [MT.dockerList, MT.dockerManifest, MT.ociIndex, MT.ociManifest].sort(),
    );
    const r = uniqueRepo("pull-list");
    const list = await pushIndex(target, r, "list", { layerSizes: [100], format: "docker" });
    const store = registryRepository(client, host, r);
    const d = await store.resolve("list");
    expect(d.mediaType).toBe(MT.dockerList);
    expect(d.digest).toBe(list.digest);
    expect((await store.fetchManifest("list")).bytes.equals(list.manifestBytes)).toBe(true);
  });

  it("fetch() of a manifest descriptor streams verified bytes", async () => {
    const store = registryRepository(client, host, repo);
    const got = await drain(
      await store.fetch({ mediaType: index.mediaType, digest: index.digest, size: index.size }),
    );
    expect(got).toEqual({ bytes: index.size, digest: index.digest });
  });

  it("exists() answers for manifests and blobs", async () => {
    const store = registryRepository(client, host, repo);
    expect(await store.exists({ mediaType: oci.mediaType, digest: oci.digest, size: oci.size })).toBe(true);
    expect(await store.exists(oci.layers[0]!)).toBe(true);
    const absent = `sha256:${"0".repeat(64)}`;
    expect(await store.exists({ mediaType: MT.ociLayer, digest: absent, size: 1 })).toBe(false);
    expect(await store.exists({ mediaType: MT.ociManifest, digest: absent, size: 1 })).toBe(false);
  });

  it("a missing tag is a RemoteError naming registry, repository and tag", async () => {
    const store = registryRepository(client, host, repo);
    const err = await store.resolve("no-such-tag").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as RemoteError).status).toBe(404);
    expect((err as Error).message).toContain("no-such-tag");
    expect((err as Error).message).toContain(`${host}/${repo}`);
    const err2 = await store.fetchManifest("no-such-tag").catch((e: unknown) => e);
    expect((err2 as RemoteError).status).toBe(404);
  });

  it("a missing repository's tag error carries the registry's error code and message", async () => {
    const store = registryRepository(client, host, uniqueRepo("nothing-here"));
    const err = (await store
      .fetch({ mediaType: MT.ociLayer, digest: `sha256:${"1".repeat(64)}`, size: 3 })
      .catch((e: unknown) => e)) as RemoteError;
    expect(err).toBeInstanceOf(RemoteError);
    expect(err.message).toContain(`sha256:${"1".repeat(64)}`);
    expect(await store.listTags()).toEqual([]);
  });
});

describe("RegistryStore streams blobs and verifies them", () => {
  it("fetch() streams a layer whose bytes hash to its digest", async () => {
    const store = registryRepository(client, host, repo);
    const layer = oci.layers[0]!;
    const got = await drain(await store.fetch(layer));
    expect(got).toEqual({ bytes: layer.size, digest: layer.digest });
  });

  it("a descriptor with the wrong size fails with an IntegrityError naming the digest", async () => {
    const store = registryRepository(client, host, repo);
    const layer = oci.layers[1]!;
    for (const size of [layer.size - 1, layer.size + 1]) {
      const err = await drain(await store.fetch({ ...layer, size })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IntegrityError);
      expect((err as IntegrityError).code).toBe("SIZE_MISMATCH");
      expect((err as Error).message).toContain(layer.digest);
      expect((err as IntegrityError).item).toBe(layer.digest);
    }
  });

  it("tampered bytes in the registry's storage fail with an IntegrityError naming the digest", async () => {
    const r = uniqueRepo("pull-tamper");
    const img = await pushImage(target, r, "t", { layerSizes: [4000] });
    const layer = img.layers[0]!;
    const storage = join(needEnv("AIRGAP_TEST_STATE"), "registry-plain", "storage");
    const hex = (d: string) => d.slice("sha256:".length);
    const dataOf = (d: string) =>
      join(storage, "docker/registry/v2/blobs/sha256", hex(d).slice(0, 2), hex(d), "data");
    // Same size, other bytes: only the digest can tell.
    const original = readFileSync(dataOf(layer.digest));
    const flipped = Buffer.from(original);
    flipped[flipped.length - 1] = (flipped[flipped.length - 1]! + 1) % 256;
    writeFileSync(dataOf(layer.digest), flipped);
    const store = registryRepository(client, host, r);
    const err = await drain(await store.fetch(layer)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as IntegrityError).code).toBe("DIGEST_MISMATCH");
    expect((err as Error).message).toContain(layer.digest);
    expect((err as Error).message).toContain(`${host}/${r}`);

    // A tampered manifest: the bytes no longer hash to the digest the registry names for the tag.
    const m = Buffer.from(readFileSync(dataOf(img.digest)));
    writeFileSync(
      dataOf(img.digest),
      Buffer.from(m.toString("utf8").replace('"schemaVersion":2', '"schemaVersion": 2')),
    );
    const err2 = await store.fetchManifest("t").catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(IntegrityError);
    expect((err2 as Error).message).toContain(img.digest);
    const err3 = await store.fetchManifest(img.digest).catch((e: unknown) => e);
    expect(err3).toBeInstanceOf(IntegrityError);
    expect((err3 as IntegrityError).code).toBe("DIGEST_MISMATCH");
    const err4 = await drain(
      await store.fetch({ mediaType: img.mediaType, digest: img.digest, size: img.size }),
    ).catch((e: unknown) => e);
    expect(err4).toBeInstanceOf(IntegrityError);
  });

  it("listTags() lists every tag", async () => {
    const store = registryRepository(client, host, repo);
    expect((await store.listTags()).sort()).toEqual(["multi", "oci", "v2s2"]);
  });
});

describe("referrers", () => {
  it("finds artifacts through the sha256-<hex> tag schema when the registry has no referrers API", async () => {
    const r = uniqueRepo("pull-ref");
    const img = await pushImage(target, r, "app", { layerSizes: [100] });
    const subject = { mediaType: img.mediaType, digest: img.digest, size: img.size };
    const a = await pushArtifact(target, r, {
      artifactType: "application/vnd.example.sbom",
      files: [{ name: "sbom.json", content: "{}" }],
      subject,
    });
    const b = await pushArtifact(target, r, {
      artifactType: "application/vnd.example.sig",
      files: [{ name: "sig", content: "x" }],
      subject,
    });
    const store = registryRepository(client, host, r);
    const refs = await store.referrers(subject);
    expect(refs.map((d) => d.digest).sort()).toEqual([a.digest, b.digest].sort());
    expect(refs.find((d) => d.digest === a.digest)?.artifactType).toBe("application/vnd.example.sbom");
    expect(await store.referrers({ mediaType: MT.ociManifest, digest: a.digest, size: a.size })).toEqual([]);
  });
});
