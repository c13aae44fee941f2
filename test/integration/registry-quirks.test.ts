/**
 * The registry client against registries that depart from the distribution spec the way Harbor,
 * Nexus, Artifactory, Quay, ECR, ACR, Gitea and token services with one scope per request do:
 * the real plain registry behind the quirk-emulating proxy (test/helpers/registry-quirks-proxy.ts).
 * Every test reads the result back from the real registry, not through the proxy.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import type { Descriptor } from "../../src/oci/descriptor.js";
import { sha256Digest } from "../../src/oci/digest.js";
import { RegistryClient, type RegistryClientOptions } from "../../src/oci/registry/client.js";
import { NO_REGISTRY_API, RegistryError } from "../../src/oci/registry/errors.js";
import { registryRepository } from "../../src/store/registry.js";
import {
  blobExists,
  closeFixtures,
  getBlob,
  getManifest,
  MT,
  plainTarget,
  uniqueRepo,
} from "../helpers/fixtures.js";
import {
  ARTIFACTORY_PATH_PREFIX,
  profile,
  type Quirks,
  RegistryQuirksProxy,
} from "../helpers/registry-quirks-proxy.js";

const upstream = plainTarget();
const MiB = 1024 * 1024;
const clients: RegistryClient[] = [];
const proxies: RegistryQuirksProxy[] = [];

async function proxyWith(quirks: Quirks): Promise<RegistryQuirksProxy> {
  const p = await RegistryQuirksProxy.start(upstream.host, quirks);
  proxies.push(p);
  return p;
}

function clientFor(p: RegistryQuirksProxy, opts: RegistryClientOptions = {}): RegistryClient {
  const c = new RegistryClient({ hosts: [{ host: p.host, plainHTTP: true }], retryBaseDelayMs: 10, ...opts });
  clients.push(c);
  return c;
}

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(proxies.map((p) => p.close()));
  await closeFixtures();
});

function blob(data: Buffer, mediaType: string = MT.ociLayer): Descriptor {
  return { mediaType, digest: sha256Digest(data), size: data.length };
}

function pieces(data: Buffer, piece = 64 * 1024): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += piece) parts.push(data.subarray(i, i + piece));
  return Readable.from(parts);
}

/** A refill that hands out the same bytes again, counting how often it was asked. */
function refillOf(data: Map<string, Buffer>) {
  const calls: string[] = [];
  return {
    calls,
    refill: async (d: Descriptor) => {
      calls.push(d.digest);
      return pieces(data.get(d.digest)!);
    },
  };
}

describe("upload forms a registry refuses are learnt and replaced", () => {
  it("ECR: a part under 5 MiB is refused, parts of 5 MiB pass, PATCH answers 201", async () => {
    const proxy = await proxyWith(profile("ecr"));
    const repo = uniqueRepo("q-ecr");
    proxy.quirks.repositories!.add(repo);
    const c = clientFor(proxy, { chunkThreshold: 256 * 1024, chunkSize: 256 * 1024 });
    const data = randomBytes(6 * MiB + 123);
    const d = blob(data);
    const { refill, calls } = refillOf(new Map([[d.digest, data]]));
    await registryRepository(c, proxy.host, repo, { refill }).push(d, pieces(data));

    expect((await getBlob(upstream, repo, d.digest)).equals(data)).toBe(true);
    expect(proxy.counts.applied["chunk-too-small"]).toBe(1);
    expect(proxy.counts.applied["patch-201"]).toBeGreaterThanOrEqual(3);
    expect(calls).toEqual([d.digest]);
    expect(c.stats.blobsUploaded).toBe(1);

    // learnt for the host: the next blob goes in 5 MiB parts at once
    const more = randomBytes(5 * MiB + 1);
    await registryRepository(c, proxy.host, repo).push(blob(more), pieces(more));
    expect(proxy.counts.applied["chunk-too-small"]).toBe(1);
    expect(await blobExists(upstream, repo, blob(more).digest)).toBe(true);
  });

  it("ECR: a repository that does not exist answers NAME_UNKNOWN and nothing is written", async () => {
    const proxy = await proxyWith(profile("ecr"));
    const repo = uniqueRepo("q-ecr-missing");
    const c = clientFor(proxy);
    const data = randomBytes(1000);
    await expect(registryRepository(c, proxy.host, repo).push(blob(data), pieces(data))).rejects.toThrow(
      /does not exist/,
    );
    expect(await blobExists(upstream, repo, blob(data).digest)).toBe(false);
  });

  it("Gitea: a second PATCH is refused; after the part floor does not help, one PATCH carries the blob", async () => {
    const proxy = await proxyWith(profile("gitea"));
    const repo = uniqueRepo("q-gitea");
    const c = clientFor(proxy, { chunkThreshold: 256 * 1024, chunkSize: 256 * 1024 });
    const data = randomBytes(6 * MiB);
    const d = blob(data);
    const { refill, calls } = refillOf(new Map([[d.digest, data]]));
    await registryRepository(c, proxy.host, repo, { refill }).push(d, pieces(data));

    expect((await getBlob(upstream, repo, d.digest)).equals(data)).toBe(true);
    expect(proxy.counts.applied["second-patch-refused"]).toBe(2);
    expect(calls).toHaveLength(2);

    const more = randomBytes(700_000);
    await registryRepository(c, proxy.host, repo).push(blob(more), pieces(more));
    expect(proxy.counts.applied["second-patch-refused"]).toBe(2);
    expect((await getBlob(upstream, repo, blob(more).digest)).equals(more)).toBe(true);
  });

  it("without a way to read the blob again, the refusal is reported and the next upload adapts", async () => {
    const proxy = await proxyWith(profile("gitea"));
    const repo = uniqueRepo("q-gitea-norefill");
    const c = clientFor(proxy, { chunkThreshold: 1024, chunkSize: 6 * MiB });
    const data = randomBytes(7 * MiB);
    const store = registryRepository(c, proxy.host, repo);
    await expect(store.push(blob(data), pieces(data))).rejects.toThrow(
      /Stream uploads after first write are not allowed.*could not be sent again in another form/s,
    );
    expect(await blobExists(upstream, repo, blob(data).digest)).toBe(false);
    await store.push(blob(data), pieces(data));
    expect((await getBlob(upstream, repo, blob(data).digest)).equals(data)).toBe(true);
  });

  it("Nexus: Basic auth with an upper-case BASIC challenge; the single-POST form is never relied on", async () => {
    const quirks = profile("nexus");
    const proxy = await proxyWith(quirks);
    const dir = mkdtempSync(join(tmpdir(), "airgap-quirks-"));
    const auth = Buffer.from(`${quirks.basicAuth!.user}:${quirks.basicAuth!.password}`).toString("base64");
    writeFileSync(join(dir, "auth.json"), JSON.stringify({ auths: { [proxy.host]: { auth } } }));
    const c = clientFor(proxy, { authFile: join(dir, "auth.json") });
    const repo = uniqueRepo("q-nexus");
    const data = randomBytes(50_000);
    await registryRepository(c, proxy.host, repo).push(blob(data), pieces(data));
    expect((await getBlob(upstream, repo, blob(data).digest)).equals(data)).toBe(true);
    expect(proxy.counts.applied.unauthorized).toBeGreaterThanOrEqual(1);
    expect(proxy.counts.applied["single-post-ignored"]).toBeUndefined();
  });
});

describe("mounts a registry refuses fall back to an upload", () => {
  it("Harbor: a mount answered 401 becomes an upload, and the host is not asked to mount again", async () => {
    const proxy = await proxyWith(profile("harbor"));
    const project = uniqueRepo("q-harbor");
    proxy.quirks.projects!.add(project);
    const c = clientFor(proxy);
    const data = randomBytes(40_000);
    const d = blob(data);
    const refusals: number[] = [];
    for (const name of ["a", "b", "c"]) {
      await registryRepository(c, proxy.host, `${project}/${name}`).push(d, pieces(data));
      expect((await getBlob(upstream, `${project}/${name}`, d.digest)).equals(data)).toBe(true);
      refusals.push(proxy.counts.applied["mount-401"] ?? 0);
    }
    // b tried to mount and was refused (with a token and without); c did not try
    expect(refusals[0]).toBe(0);
    expect(refusals[1]).toBeGreaterThanOrEqual(1);
    expect(refusals[2]).toBe(refusals[1]);
    expect(c.stats.blobsUploaded).toBe(3);
    expect(c.stats.blobsMounted).toBe(0);
  });

  it("Harbor: a push into a project that does not exist is refused (401)", async () => {
    const proxy = await proxyWith(profile("harbor"));
    const c = clientFor(proxy);
    const repo = `${uniqueRepo("q-noproject")}/app`;
    const data = randomBytes(1000);
    await expect(
      registryRepository(c, proxy.host, repo).push(blob(data), pieces(data)),
    ).rejects.toMatchObject({
      status: 401,
    });
    expect(await blobExists(upstream, repo, blob(data).digest)).toBe(false);
  });

  for (const mode of ["refuse", "first"] as const) {
    it(`a token service that ${mode === "refuse" ? "refuses" : "ignores all but the first of"} several scopes: one scope per request, the mount becomes an upload`, async () => {
      const proxy = await proxyWith({ oneScopePerToken: mode });
      const c = clientFor(proxy);
      const data = randomBytes(30_000);
      const d = blob(data);
      const a = uniqueRepo("q-scope-a");
      const b = uniqueRepo("q-scope-b");
      await registryRepository(c, proxy.host, a).push(d, pieces(data));
      await registryRepository(c, proxy.host, b).push(d, pieces(data));
      expect((await getBlob(upstream, b, d.digest)).equals(data)).toBe(true);
      // the mount asked for two scopes (push on b, pull on a)
      expect(Math.max(...proxy.counts.tokenScopes)).toBe(2);
      if (mode === "refuse") expect(proxy.counts.applied["multi-scope-refused"]).toBe(1);
      else expect(proxy.counts.applied.unauthorized).toBeGreaterThanOrEqual(1);
      expect(c.stats.blobsUploaded).toBe(2);
      expect(c.stats.blobsMounted).toBe(0);
    });
  }
});

describe("a blob HEAD that lies (Artifactory)", () => {
  it("is caught at the manifest PUT (MANIFEST_BLOB_UNKNOWN), healed by uploading the named blobs, and not trusted again", async () => {
    const proxy = await proxyWith(profile("artifactory"));
    const c = clientFor(proxy);
    const layer = randomBytes(70_000);
    const cfg = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
    const ld = blob(layer);
    const cd = blob(cfg, MT.ociConfig);
    const manifest = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MT.ociManifest, config: cd, layers: [ld] }),
    );
    const md = blob(manifest, MT.ociManifest);
    const content = new Map([
      [ld.digest, layer],
      [cd.digest, cfg],
    ]);
    const a = uniqueRepo("q-art-a");
    const b = uniqueRepo("q-art-b");
    const storeA = registryRepository(c, proxy.host, a);
    await storeA.push(ld, pieces(layer));
    await storeA.push(cd, pieces(cfg));
    await storeA.push(md, Readable.from([manifest]));

    // a second client: no memory of where the blobs are, so it asks HEAD in b and is lied to
    const c2 = clientFor(proxy);
    const { refill, calls } = refillOf(content);
    const storeB = registryRepository(c2, proxy.host, b, { refill });
    await storeB.push(ld, pieces(layer));
    await storeB.push(cd, pieces(cfg));
    expect(c2.stats.blobsUploaded).toBe(0);
    expect(proxy.counts.applied["lying-head"]).toBe(2);
    await storeB.push(md, Readable.from([manifest]));

    expect((await getManifest(upstream, b, md.digest)).bytes.equals(manifest)).toBe(true);
    expect((await getBlob(upstream, b, ld.digest)).equals(layer)).toBe(true);
    expect((await getBlob(upstream, b, cd.digest)).equals(cfg)).toBe(true);
    expect(calls.sort()).toEqual([ld.digest, cd.digest].sort());
    // from now on existence is asked with GET: another lie is not believed
    const other = uniqueRepo("q-art-c");
    expect(await registryRepository(c2, proxy.host, other).exists(ld)).toBe(false);
    expect(proxy.counts.applied["lying-head"]).toBe(2);
  });
});

describe("tag lists paged by the registry, whatever n asks", () => {
  it("Quay pages by 50 and ACR by 100 (Link, next_page=): every tag is listed", async () => {
    const direct = new RegistryClient({ hosts: [{ host: upstream.host, plainHTTP: true }] });
    clients.push(direct);
    const repo = uniqueRepo("q-tags");
    const store = registryRepository(direct, upstream.host, repo);
    const cfg = Buffer.from("{}");
    const cd = blob(cfg, MT.ociConfig);
    await store.push(cd, Readable.from([cfg]));
    const m = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MT.ociManifest, config: cd, layers: [] }),
    );
    const md = blob(m, MT.ociManifest);
    await store.push(md, Readable.from([m]));
    const tags = Array.from({ length: 123 }, (_, i) => `t${String(i).padStart(3, "0")}`);
    for (const t of tags) await store.tag(md, t);

    for (const [name, pages] of [
      ["quay", 3],
      ["acr", 2],
    ] as const) {
      const proxy = await proxyWith(profile(name));
      const listed = await registryRepository(clientFor(proxy), proxy.host, repo).listTags();
      expect(listed.sort(), name).toEqual(tags);
      expect(proxy.counts.applied["tag-page"], name).toBe(pages - 1);
    }

    // under a path prefix (Artifactory's repository path), the Link pages stay under it
    const prefixed = await proxyWith({ ...profile("artifactory-path"), tagPageSize: 50 });
    const lost = registryRepository(clientFor(prefixed), prefixed.host, repo);
    // without the prefix, the 404 says why: the base endpoint is missing too, so pathPrefix is the fix
    const missing = (await lost.resolve("t000").catch((e: unknown) => e)) as RegistryError;
    expect(missing).toBeInstanceOf(RegistryError);
    expect(missing.status).toBe(404);
    expect(missing.code).toBe(NO_REGISTRY_API);
    expect(missing.message).toMatch(/not found/);
    expect(missing.message).toContain("answers 404 at its API base /v2/ too");
    expect(missing.message).toContain(
      `\`pathPrefix:\` on the \`registries:\` entry of host ${prefixed.host}`,
    );
    expect(prefixed.counts.applied["unprefixed-404"]).toBeGreaterThanOrEqual(2);
    // a tag that is missing from a registry at the root is just missing
    const absent = (await registryRepository(
      clientFor(prefixed, { hosts: [{ host: upstream.host, plainHTTP: true }] }),
      upstream.host,
      repo,
    )
      .resolve("no-such-tag")
      .catch((e: unknown) => e)) as RegistryError;
    expect(absent.status).toBe(404);
    expect(absent.code).toBe("NOT_FOUND");
    expect(absent.message).not.toContain("pathPrefix");
    const c = clientFor(prefixed, {
      hosts: [{ host: prefixed.host, plainHTTP: true, pathPrefix: ARTIFACTORY_PATH_PREFIX }],
    });
    const under = registryRepository(c, prefixed.host, repo);
    expect((await under.listTags()).sort()).toEqual(tags);
    expect(prefixed.counts.applied["tag-page"]).toBe(2);
    expect((await under.resolve("t122")).digest).toBe(md.digest);
  });
});
