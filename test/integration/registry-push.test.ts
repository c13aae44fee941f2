import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { IntegrityError } from "../../src/errors.js";
import type { Descriptor } from "../../src/oci/descriptor.js";
import { sha256Digest } from "../../src/oci/digest.js";
import { RegistryClient } from "../../src/oci/registry/client.js";
import { registryRepository } from "../../src/store/registry.js";
import {
  blobExists,
  closeFixtures,
  getBlob,
  getManifest,
  listTags,
  MT,
  manifestDigest,
  plainTarget,
  uniqueRepo,
} from "../helpers/fixtures.js";

const target = plainTarget();
const host = target.host;
const clients: RegistryClient[] = [];

function newClient(opts: ConstructorParameters<typeof RegistryClient>[0] = {}): RegistryClient {
  const c = new RegistryClient({ hosts: [{ host, plainHTTP: true }], ...opts });
  clients.push(c);
  return c;
}

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await closeFixtures();
});

function blob(data: Buffer, mediaType: string = MT.ociLayer): Descriptor {
  return { mediaType, digest: sha256Digest(data), size: data.length };
}

/** A stream of `data` in pieces of `piece` bytes, so chunk boundaries never line up with them. */
function pieces(data: Buffer, piece = 777): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += piece) parts.push(data.subarray(i, i + piece));
  return Readable.from(parts);
}

function manifestOf(config: Descriptor, layers: Descriptor[], extra: Record<string, unknown> = {}): Buffer {
  return Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MT.ociManifest, config, layers, ...extra }),
  );
}

describe("RegistryStore.push", () => {
  it("uploads a blob monolithically and a manifest by digest; tag() names it; a second push is skipped", async () => {
    const c = newClient();
    const repo = uniqueRepo("push-mono");
    const store = registryRepository(c, host, repo);
    const layer = randomBytes(200_000);
    const cfg = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const ld = blob(layer);
    const cd = blob(cfg, MT.ociConfig);
    await store.push(ld, pieces(layer));
    await store.push(cd, Readable.from([cfg]));
    const m = manifestOf(cd, [ld]);
    const md = blob(m, MT.ociManifest);
    await store.push(md, Readable.from([m]));
    await store.tag(md, "1.0");

    expect((await getBlob(target, repo, ld.digest)).equals(layer)).toBe(true);
    const got = await getManifest(target, repo, "1.0");
    expect(got.digest).toBe(md.digest);
    expect(got.bytes.equals(m)).toBe(true);
    expect(got.mediaType).toBe(MT.ociManifest);
    expect(c.stats.blobsUploaded).toBe(2);
    expect(c.stats.bytesUploaded).toBe(layer.length + cfg.length);

    await store.push(ld, pieces(layer));
    expect(c.stats.blobsUploaded).toBe(2);
    expect(await store.listTags()).toEqual(["1.0"]);
  });

  it("uploads in chunked PATCHes above the chunk threshold, with exact bytes", async () => {
    const c = newClient({ chunkThreshold: 10_000, chunkSize: 4096 });
    const repo = uniqueRepo("push-chunk");
    const store = registryRepository(c, host, repo);
    const data = randomBytes(50_001);
    const d = blob(data);
    const before = c.stats.requests;
    await store.push(d, pieces(data, 1000));
    // HEAD + POST + ceil(50001/4096)=13 PATCH + PUT
    expect(c.stats.requests - before).toBe(1 + 1 + 13 + 1);
    expect((await getBlob(target, repo, d.digest)).equals(data)).toBe(true);
    expect(c.stats.blobsUploaded).toBe(1);
  });

  it("an empty blob uploads too", async () => {
    const c = newClient();
    const repo = uniqueRepo("push-empty");
    const d = blob(Buffer.alloc(0));
    await registryRepository(c, host, repo).push(d, Readable.from([]));
    expect(await blobExists(target, repo, d.digest)).toBe(true);
  });

  it("mounts a blob from another repository of the same registry instead of uploading it", async () => {
    const c = newClient();
    const a = registryRepository(c, host, uniqueRepo("push-mount-a"));
    const bRepo = uniqueRepo("push-mount-b");
    const b = registryRepository(c, host, bRepo);
    const data = randomBytes(100_000);
    const d = blob(data);
    await a.push(d, pieces(data));
    expect(c.stats).toMatchObject({ blobsUploaded: 1, blobsMounted: 0 });
    let read = false;
    const src = Readable.from(
      (function* () {
        read = true;
        yield data;
      })(),
    );
    await b.push(d, src);
    expect(c.stats).toMatchObject({ blobsUploaded: 1, blobsMounted: 1, bytesUploaded: data.length });
    expect(read).toBe(false);
    expect((await getBlob(target, bRepo, d.digest)).equals(data)).toBe(true);
  });

  it("a blob fetched from one repository is mounted into another (the client remembers where it saw it)", async () => {
    const c = newClient();
    const aRepo = uniqueRepo("push-seen-a");
    const data = randomBytes(3000);
    const d = blob(data);
    await registryRepository(newClient(), host, aRepo).push(d, pieces(data));
    const a = registryRepository(c, host, aRepo);
    const copy = await a.fetch(d);
    const b = registryRepository(c, host, uniqueRepo("push-seen-b"));
    copy.destroy();
    await b.push(d, Readable.from([data]));
    expect(c.stats.blobsMounted).toBe(1);
    expect(c.stats.blobsUploaded).toBe(0);
  });

  it("refuses bytes that do not match the descriptor and commits nothing", async () => {
    const c = newClient({ chunkThreshold: 1000, chunkSize: 300 });
    const repo = uniqueRepo("push-bad");
    const store = registryRepository(c, host, repo);
    const data = randomBytes(5000);
    const other = Buffer.from(data);
    other[10] = (other[10]! + 1) % 256;
    for (const threshold of ["chunked", "monolithic"]) {
      const s = threshold === "chunked" ? store : registryRepository(newClient(), host, repo);
      const d = blob(data);
      const err = await s.push(d, pieces(other)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IntegrityError);
      expect((err as IntegrityError).code).toBe("DIGEST_MISMATCH");
      expect((err as Error).message).toContain(d.digest);
      expect(await blobExists(target, repo, d.digest)).toBe(false);
      expect(await blobExists(target, repo, sha256Digest(other))).toBe(false);

      const short = await s.push(d, pieces(data.subarray(0, 4000))).catch((e: unknown) => e);
      expect(short).toBeInstanceOf(Error);
      expect(await blobExists(target, repo, d.digest)).toBe(false);
    }
    const m = manifestOf(blob(data), []);
    const wrong = await store
      .push(blob(m, MT.ociManifest), Readable.from([Buffer.concat([m, Buffer.from(" ")])]))
      .catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(IntegrityError);
    expect(await manifestDigest(target, repo, sha256Digest(m))).toBeUndefined();
  });

  it("makes an artifact with a subject discoverable through the sha256-<hex> tag schema, once per digest", async () => {
    const c = newClient();
    const repo = uniqueRepo("push-ref");
    const store = registryRepository(c, host, repo);
    const cfg = Buffer.from("{}");
    const cd = blob(cfg, MT.ociConfig);
    await store.push(cd, Readable.from([cfg]));
    const subjectBytes = manifestOf(cd, []);
    const subject = blob(subjectBytes, MT.ociManifest);
    await store.push(subject, Readable.from([subjectBytes]));
    await store.tag(subject, "app");

    const empty = { mediaType: MT.ociEmpty, digest: cd.digest, size: 2 };
    const artifacts: Descriptor[] = [];
    for (const kind of ["sbom", "vuln-scan"]) {
      const body = Buffer.from(`{"kind":"${kind}"}`);
      const ld = blob(body, "application/json");
      await store.push(ld, Readable.from([body]));
      const m = manifestOf(empty, [ld], {
        artifactType: `application/vnd.example.${kind}`,
        subject,
        annotations: { "org.opencontainers.image.created": "2026-01-01T00:00:00Z" },
      });
      const md = blob(m, MT.ociManifest);
      await store.push(md, Readable.from([m]));
      artifacts.push(md);
    }
    // pushing the same artifact again must not duplicate it
    const again = artifacts[0]!;
    const againBytes = (await store.fetchManifest(again.digest)).bytes;
    await store.push(again, Readable.from([againBytes]));

    const refs = await store.referrers(subject);
    expect(refs.map((d) => d.digest).sort()).toEqual(artifacts.map((d) => d.digest).sort());
    const sbom = refs.find((d) => d.digest === artifacts[0]!.digest)!;
    expect(sbom).toMatchObject({
      mediaType: MT.ociManifest,
      size: artifacts[0]!.size,
      artifactType: "application/vnd.example.sbom",
      annotations: { "org.opencontainers.image.created": "2026-01-01T00:00:00Z" },
    });
    // the tag schema index is a real OCI index in the registry, readable by other tools
    const tag = `sha256-${subject.digest.slice(7)}`;
    expect(await listTags(target, repo)).toEqual(["app", tag].sort());
    const idx = await getManifest(target, repo, tag);
    expect(idx.mediaType).toBe(MT.ociIndex);
    expect(createHash("sha256").update(idx.bytes).digest("hex")).toBe(idx.digest.slice(7));
  });

  it("honours an aborted signal", async () => {
    const c = newClient();
    const store = registryRepository(c, host, uniqueRepo("push-abort"));
    const ac = new AbortController();
    ac.abort(new Error("stop now"));
    const data = randomBytes(10);
    await expect(store.push(blob(data), Readable.from([data]), ac.signal)).rejects.toThrow("stop now");
    await expect(store.resolve("x", ac.signal)).rejects.toThrow("stop now");
  });
});
