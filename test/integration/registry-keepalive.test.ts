/**
 * Connection reuse against the real TLS registry (private CA, Basic auth): existence checks (HEAD)
 * and uploads share kept-alive connections, so copying a graph of many small blobs opens about as
 * many TLS connections as transfers run at once, not one per request. And a blob copied into a
 * registry is checked for once: the upload does not ask again what copyGraph just asked.
 */
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pLimit from "p-limit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryClient } from "../../src/oci/registry/client.js";
import { MAX_CONNECTIONS_PER_HOST } from "../../src/oci/registry/host.js";
import { copyGraph } from "../../src/store/copy.js";
import { registryRepository } from "../../src/store/registry.js";
import {
  blobExists,
  closeFixtures,
  type PushedImage,
  pushImage,
  tlsTarget,
  uniqueRepo,
} from "../helpers/fixtures.js";

const target = tlsTarget();
const source = uniqueRepo("keepalive-src");
const LAYERS = 60;
const CONCURRENCY = 8;
let image: PushedImage;
let tmp: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "airgap-keepalive-"));
  image = await pushImage(target, source, "v1", {
    layerSizes: Array.from({ length: LAYERS }, (_, i) => 2000 + i),
  });
  writeFileSync(
    join(tmp, "config.json"),
    JSON.stringify({
      auths: { [target.host]: { username: target.auth!.user, password: target.auth!.password } },
    }),
  );
}, 120_000);

afterAll(async () => {
  await closeFixtures();
  rmSync(tmp, { recursive: true, force: true });
});

/**
 * Counts the TLS connections undici opens while `fn` runs, and the HEAD requests the registry
 * answered (a 401 that only asks for credentials is not counted: the request is repeated with them).
 */
async function counting<T>(fn: () => Promise<T>): Promise<{ result: T; connections: number; heads: number }> {
  let connections = 0;
  let heads = 0;
  const onConnected = () => {
    connections++;
  };
  const onRequest = (m: unknown) => {
    const { request, response } = m as { request: { method: string }; response: { statusCode: number } };
    if (request.method === "HEAD" && response.statusCode !== 401) heads++;
  };
  subscribe("undici:client:connected", onConnected);
  subscribe("undici:request:headers", onRequest);
  try {
    const result = await fn();
    return { result, connections, heads };
  } finally {
    unsubscribe("undici:client:connected", onConnected);
    unsubscribe("undici:request:headers", onRequest);
  }
}

function newClient(): RegistryClient {
  return new RegistryClient({ caFiles: [target.ca!], certsDirs: [], dockerConfigDir: tmp, retries: 0 });
}

describe("kept-alive registry connections", () => {
  it("existence checks reuse connections: 3 rounds of HEADs over 61 blobs open no more connections than the per-host cap", async () => {
    const client = newClient();
    try {
      const store = registryRepository(client, target.host, source);
      const limit = pLimit(CONCURRENCY);
      const blobs = [image.config, ...image.layers];
      const { result, connections, heads } = await counting(async () => {
        const rounds: boolean[][] = [];
        for (let round = 0; round < 3; round++) {
          rounds.push(await Promise.all(blobs.map((b) => limit(() => store.exists(b)))));
        }
        return rounds;
      });
      expect(result.flat().every(Boolean)).toBe(true);
      expect(heads).toBe(3 * blobs.length);
      // One connection per HEAD (undici's default) would be 183 (plus the first round's 401s).
      expect(connections).toBeGreaterThan(0);
      expect(connections).toBeLessThanOrEqual(MAX_CONNECTIONS_PER_HOST);
    } finally {
      await client.close();
    }
  });

  it("copyGraph into an empty repository: one existence check per blob, connections within the per-host cap", async () => {
    const client = newClient();
    const target2 = uniqueRepo("keepalive-dst");
    try {
      const src = registryRepository(client, target.host, source);
      const dst = registryRepository(client, target.host, target2);
      const { connections, heads } = await counting(() =>
        copyGraph(
          src,
          dst,
          { mediaType: image.mediaType, digest: image.digest, size: image.size },
          {
            limit: pLimit(CONCURRENCY),
          },
        ),
      );
      // Every blob arrived (mounted or uploaded), and the manifest with them.
      for (const b of [image.config, ...image.layers])
        expect(await blobExists(target, target2, b.digest)).toBe(true);
      expect(await dst.exists({ mediaType: image.mediaType, digest: image.digest, size: image.size })).toBe(
        true,
      );
      // copyGraph asks once per blob and once for the root manifest; the upload does not ask again.
      expect(heads).toBe(LAYERS + 1 + 1);
      expect(connections).toBeLessThanOrEqual(MAX_CONNECTIONS_PER_HOST);
    } finally {
      await client.close();
    }
  });
});
