/**
 * Retries against the real registry behind a small HTTP relay that answers 503/429 or drops the
 * connection on demand (no real server fails on demand), then forwards everything else unchanged.
 */
import { randomBytes } from "node:crypto";
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IntegrityError, RemoteError } from "../../src/errors.js";
import { sha256Digest } from "../../src/oci/digest.js";
import { RegistryClient } from "../../src/oci/registry/client.js";
import { registryRepository } from "../../src/store/registry.js";
import { blobExists, closeFixtures, MT, plainTarget, pushImage, uniqueRepo } from "../helpers/fixtures.js";

const upstream = plainTarget().host;
type Fault = {
  match: (req: IncomingMessage) => boolean;
  times: number;
  act: (res: ServerResponse, req: IncomingMessage) => void;
};
let faults: Fault[] = [];
const log: Array<{ method: string; url: string; at: number; faulted: boolean }> = [];
let server: Server;
let relay: string;
const clients: RegistryClient[] = [];

function relayClient(retries = 3): RegistryClient {
  const c = new RegistryClient({ hosts: [{ host: relay, plainHTTP: true }], retries, retryBaseDelayMs: 20 });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const f = faults.find((x) => x.times > 0 && x.match(req));
    log.push({ method: req.method ?? "", url: req.url ?? "", at: Date.now(), faulted: !!f });
    if (f) {
      f.times--;
      req.resume();
      f.act(res, req);
      return;
    }
    const up = httpRequest(
      {
        host: upstream.split(":")[0],
        port: Number(upstream.split(":")[1]),
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      },
    );
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  relay = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await closeFixtures();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const is = (method: string, part: string) => (req: IncomingMessage) =>
  req.method === method && (req.url ?? "").includes(part);

describe("retries", () => {
  it("retries a GET on 503 and on a dropped connection, then succeeds", async () => {
    const repo = uniqueRepo("retry");
    const img = await pushImage(plainTarget(), repo, "v1", { layerSizes: [1000] });
    faults = [
      { match: is("HEAD", "/manifests/v1"), times: 2, act: (res) => res.writeHead(503).end() },
      { match: is("GET", "/blobs/"), times: 1, act: (res) => res.socket?.destroy() },
    ];
    const c = relayClient();
    const store = registryRepository(c, relay, repo);
    log.length = 0;
    expect((await store.resolve("v1")).digest).toBe(img.digest);
    expect(log.filter((l) => l.method === "HEAD").map((l) => l.faulted)).toEqual([true, true, false]);
    const chunks: Buffer[] = [];
    for await (const ch of await store.fetch(img.layers[0]!)) chunks.push(ch as Buffer);
    expect(Buffer.concat(chunks).length).toBe(img.layers[0]!.size);
  });

  it("honours Retry-After on 429 (seconds)", async () => {
    const repo = uniqueRepo("retry-429");
    await pushImage(plainTarget(), repo, "v1", { layerSizes: [10] });
    faults = [
      {
        match: is("HEAD", "/manifests/v1"),
        times: 1,
        act: (res) => res.writeHead(429, { "retry-after": "1" }).end(),
      },
    ];
    const store = registryRepository(relayClient(), relay, repo);
    log.length = 0;
    await store.resolve("v1");
    const heads = log.filter((l) => l.method === "HEAD");
    expect(heads.length).toBe(2);
    expect(heads[1]!.at - heads[0]!.at).toBeGreaterThanOrEqual(950);
  });

  it("gives up after the configured retries with an error naming the status and the registry's message", async () => {
    const repo = uniqueRepo("retry-give-up");
    faults = [
      {
        match: is("GET", "/manifests/v1"),
        times: 10,
        act: (res) =>
          res
            .writeHead(503, { "content-type": "application/json" })
            .end(JSON.stringify({ errors: [{ code: "UNAVAILABLE", message: "storage is down" }] })),
      },
    ];
    const store = registryRepository(relayClient(2), relay, repo);
    log.length = 0;
    const err = (await store.fetchManifest("v1").catch((e: unknown) => e)) as RemoteError;
    expect(err).toBeInstanceOf(RemoteError);
    expect(err.status).toBe(503);
    expect(err.message).toContain("GET");
    expect(err.message).toContain("UNAVAILABLE: storage is down");
    expect(err.message).toContain(`registry ${relay}`);
    expect(err.message).toContain(`repository ${repo}`);
    expect(err.message).toContain("(3 attempts)");
    expect(log.length).toBe(3);
    faults = [];
  });

  it("does not replay a streamed upload body: the caller retries the whole blob", async () => {
    const repo = uniqueRepo("retry-put");
    faults = [{ match: is("PUT", "/blobs/uploads/"), times: 1, act: (res) => res.writeHead(503).end() }];
    const c = relayClient();
    const store = registryRepository(c, relay, repo);
    const data = randomBytes(20_000);
    const d = { mediaType: MT.ociLayer, digest: sha256Digest(data), size: data.length };
    log.length = 0;
    const err = (await store.push(d, Readable.from([data])).catch((e: unknown) => e)) as RemoteError;
    expect(err).toBeInstanceOf(RemoteError);
    expect(err.status).toBe(503);
    expect(err.message).toContain(d.digest);
    expect(log.filter((l) => l.method === "PUT").length).toBe(1);
    expect(await blobExists(plainTarget(), repo, d.digest)).toBe(false);
    // the whole blob again, with a fresh stream, succeeds
    await store.push(d, Readable.from([data]));
    expect(await blobExists(plainTarget(), repo, d.digest)).toBe(true);
  });

  it("an abort during the backoff stops at once", async () => {
    const repo = uniqueRepo("retry-abort");
    faults = [
      {
        match: is("HEAD", "/manifests/v1"),
        times: 5,
        act: (res) => res.writeHead(429, { "retry-after": "30" }).end(),
      },
    ];
    const store = registryRepository(relayClient(), relay, repo);
    const ac = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ac.abort(new Error("user pressed ^C")), 200);
    await expect(store.resolve("v1", ac.signal)).rejects.toThrow("user pressed ^C");
    expect(Date.now() - t0).toBeLessThan(5000);
    faults = [];
  });

  it("stops reading a manifest at 4 MiB, with or without a Content-Length", async () => {
    const big = Buffer.alloc(4 * 1024 * 1024 + 10, 0x20);
    faults = [
      {
        match: is("GET", "/manifests/huge-chunked"),
        times: 1,
        act: (res) => {
          res.writeHead(200, { "content-type": MT.ociManifest });
          res.write(big.subarray(0, 3 * 1024 * 1024));
          res.end(big.subarray(3 * 1024 * 1024));
        },
      },
      {
        match: is("GET", "/manifests/huge-declared"),
        times: 1,
        act: (res) =>
          res
            .writeHead(200, { "content-type": MT.ociManifest, "content-length": String(big.length) })
            .end(big),
      },
    ];
    const store = registryRepository(relayClient(0), relay, uniqueRepo("huge"));
    for (const tag of ["huge-chunked", "huge-declared"]) {
      const err = (await store.fetchManifest(tag).catch((e: unknown) => e)) as IntegrityError;
      expect(err).toBeInstanceOf(IntegrityError);
      expect(err.message).toContain(tag);
      expect(err.message).toContain("4 MiB");
    }
    faults = [];
  });
});
