/**
 * The Bearer token flow against a real distribution registry configured for token auth
 * (test/helpers/token-registry.ts). The registry verifies every token's signature, issuer, audience,
 * expiry and granted actions; the token service is a small issuer that checks Basic credentials or a
 * refresh token and grants what is asked.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RemoteError } from "../../src/errors.js";
import { sha256Digest } from "../../src/oci/digest.js";
import { RegistryClient, type RegistryClientOptions } from "../../src/oci/registry/client.js";
import { registryRepository } from "../../src/store/registry.js";
import { type IssuedToken, startTokenRegistry, type TokenRegistry } from "../helpers/token-registry.js";

const USER = "robot";
const PASSWORD = randomBytes(9).toString("hex");
const REFRESH = randomBytes(9).toString("hex");

let tmp: string;
let tokenRegistry: TokenRegistry;
let registry: string;
/** A front for the registry that redirects blob GETs to a storage host on another origin. */
let front: string;
let frontServer: Server;
let storageServer: Server;
const storageSaw: Array<{ url: string; authorization?: string }> = [];
/** The token service's log of what it granted (the helper's array: emptied between steps). */
let issued: IssuedToken[];
const clients: RegistryClient[] = [];
let tokenUrl: string;
/** Servers the redirect and realm tests start; closed after all tests. */
const extraServers: Server[] = [];

/** A token the registry accepts, signed as its token service signs them. */
function jwt(scopes: string[], account: string): string {
  return tokenRegistry.sign(scopes, account);
}

function client(opts: RegistryClientOptions = {}): RegistryClient {
  const c = new RegistryClient({
    hosts: [{ host: registry, plainHTTP: true }],
    certsDirs: [],
    retries: 0,
    ...opts,
  });
  clients.push(c);
  return c;
}

function configWith(entry: Record<string, string>): string {
  const dir = mkdtempSync(join(tmp, "cfg-"));
  writeFileSync(join(dir, "config.json"), JSON.stringify({ auths: { [registry]: entry } }));
  return dir;
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "airgap-token-"));
  tokenRegistry = await startTokenRegistry(
    tmp,
    { user: USER, password: PASSWORD },
    { refreshToken: REFRESH },
  );
  registry = tokenRegistry.host;
  tokenUrl = tokenRegistry.realm;
  issued = tokenRegistry.issued;

  // Storage on another origin: it must never see the registry's Authorization. It serves blobs by
  // fetching them from the registry with a token of its own.
  storageServer = createServer(async (req, res) => {
    storageSaw.push({
      url: req.url ?? "",
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
    });
    const m = /^\/store\/(.+)\/blobs\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? "");
    if (!m) {
      res.writeHead(404).end();
      return;
    }
    const up = await fetch(`http://${registry}/v2/${m[1]}/blobs/${m[2]}`, {
      headers: { authorization: `Bearer ${jwt([`repository:${m[1]}:pull`], "storage")}` },
    });
    res.writeHead(up.status, { "content-length": up.headers.get("content-length") ?? undefined });
    res.end(Buffer.from(await up.arrayBuffer()));
  });
  await new Promise<void>((r) => storageServer.listen(0, "127.0.0.1", () => r()));
  const storageOrigin = `http://127.0.0.1:${(storageServer.address() as AddressInfo).port}`;
  frontServer = createServer((req, res) => {
    const url = req.url ?? "";
    const blob = /^\/v2\/(.+)\/blobs\/(sha256:[a-f0-9]{64})$/.exec(url);
    if (req.method === "GET" && blob && req.headers.authorization) {
      req.resume();
      if (blob[1] === "loop/forever") {
        res.writeHead(307, { location: url }).end();
        return;
      }
      res.writeHead(307, { location: `${storageOrigin}/store/${blob[1]}/blobs/${blob[2]}` }).end();
      return;
    }
    const up = httpRequest(
      {
        host: "127.0.0.1",
        port: Number(registry.split(":")[1]),
        method: req.method,
        path: url,
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
  await new Promise<void>((r) => frontServer.listen(0, "127.0.0.1", () => r()));
  front = `127.0.0.1:${(frontServer.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  for (const srv of [frontServer, storageServer, ...extraServers]) {
    srv?.closeAllConnections();
    await new Promise((r) => srv?.close(r));
  }
  await tokenRegistry?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function pushSmallImage(c: RegistryClient, repo: string, tag: string, layer: Buffer) {
  const store = registryRepository(c, registry, repo);
  const cfg = Buffer.from('{"os":"linux","architecture":"amd64"}');
  const ld = {
    mediaType: "application/vnd.oci.image.layer.v1.tar",
    digest: sha256Digest(layer),
    size: layer.length,
  };
  const cd = {
    mediaType: "application/vnd.oci.image.config.v1+json",
    digest: sha256Digest(cfg),
    size: cfg.length,
  };
  await store.push(ld, Readable.from([layer]));
  await store.push(cd, Readable.from([cfg]));
  const m = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: cd,
      layers: [ld],
    }),
  );
  const md = {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: sha256Digest(m),
    size: m.length,
  };
  await store.push(md, Readable.from([m]));
  await store.tag(md, tag);
  return { ld, md };
}

describe("Bearer token flow (distribution with token auth)", () => {
  it("gets a pull,push token with Basic credentials, reuses it, and pulls with a pull token", async () => {
    const cfg = configWith({ auth: Buffer.from(`${USER}:${PASSWORD}`).toString("base64") });
    const c = client({ dockerConfigDir: cfg });
    issued.length = 0;
    const { md } = await pushSmallImage(c, "team/app", "v1", randomBytes(1000));
    expect(issued.length).toBeGreaterThan(0);
    expect(issued.every((t) => t.account === USER && t.method === "GET")).toBe(true);
    expect(issued.map((t) => t.scopes.join(" "))).toContain("repository:team/app:pull,push");
    const pushTokens = issued.length;
    // One token per scope set: a dozen pushes and tags above needed at most a couple.
    expect(pushTokens).toBeLessThanOrEqual(2);

    const reader = client({ dockerConfigDir: cfg });
    issued.length = 0;
    const store = registryRepository(reader, registry, "team/app");
    expect((await store.resolve("v1")).digest).toBe(md.digest);
    expect((await store.resolve(md.digest)).digest).toBe(md.digest);
    expect(await store.listTags()).toEqual(["v1"]);
    expect(issued).toEqual([{ method: "GET", account: USER, scopes: ["repository:team/app:pull"] }]);
  });

  it("asks for `repository:<from>:pull` when mounting across repositories", async () => {
    const cfg = configWith({ username: USER, password: PASSWORD });
    const c = client({ dockerConfigDir: cfg });
    const layer = randomBytes(5000);
    const { ld } = await pushSmallImage(c, "team/base", "v1", layer);
    issued.length = 0;
    await registryRepository(c, registry, "team/derived").push(ld, Readable.from([layer]));
    expect(c.stats.blobsMounted).toBe(1);
    expect(
      issued.some(
        (t) =>
          t.scopes.includes("repository:team/base:pull") &&
          t.scopes.includes("repository:team/derived:pull,push"),
      ),
    ).toBe(true);
  });

  it("exchanges an identity token with a refresh_token grant (POST)", async () => {
    const cfg = configWith({ identitytoken: REFRESH });
    const c = client({ dockerConfigDir: cfg });
    issued.length = 0;
    await pushSmallImage(c, "team/idt", "v1", randomBytes(100));
    expect(issued.length).toBeGreaterThan(0);
    expect(issued.every((t) => t.method === "POST" && t.grant === "refresh_token")).toBe(true);
  });

  it("anonymous access that the registry refuses is a clear authentication error", async () => {
    const c = client({ dockerConfigDir: mkdtempSync(join(tmp, "none-")) });
    const err = (await registryRepository(c, registry, "team/app")
      .resolve("v1")
      .catch((e: unknown) => e)) as RemoteError;
    expect(err).toBeInstanceOf(RemoteError);
    expect(err.status).toBe(401);
    expect(err.message).toContain(`authentication failed for ${registry}`);
    expect(err.message).toContain("no credentials were found");
  });

  it("a wrong password refused by the token service names the host and the credential file", async () => {
    const cfg = configWith({ auth: Buffer.from(`${USER}:nope`).toString("base64") });
    const c = client({ dockerConfigDir: cfg });
    const err = (await registryRepository(c, registry, "team/app")
      .resolve("v1")
      .catch((e: unknown) => e)) as RemoteError;
    expect(err).toBeInstanceOf(RemoteError);
    expect(err.status).toBe(401);
    expect(err.message).toContain(`authentication failed for ${registry}`);
    expect(err.message).toContain(join(cfg, "config.json"));
  });

  it("follows a blob redirect to another host without sending it the registry's credentials", async () => {
    const cfg = configWith({ username: USER, password: PASSWORD });
    const writer = client({ dockerConfigDir: cfg });
    const layer = randomBytes(20_000);
    const { ld } = await pushSmallImage(writer, "team/redirect", "v1", layer);
    const dir = mkdtempSync(join(tmp, "front-"));
    writeFileSync(
      join(dir, "config.json"),
      JSON.stringify({ auths: { [front]: { username: USER, password: PASSWORD } } }),
    );
    const c = new RegistryClient({
      hosts: [{ host: front, plainHTTP: true }],
      certsDirs: [],
      retries: 0,
      dockerConfigDir: dir,
    });
    clients.push(c);
    storageSaw.length = 0;
    const chunks: Buffer[] = [];
    for await (const ch of await registryRepository(c, front, "team/redirect").fetch(ld))
      chunks.push(ch as Buffer);
    expect(Buffer.concat(chunks).equals(layer)).toBe(true);
    expect(storageSaw).toEqual([{ url: `/store/team/redirect/blobs/${ld.digest}` }]);

    const err = (await registryRepository(c, front, "loop/forever")
      .fetch(ld)
      .catch((e: unknown) => e)) as RemoteError;
    expect(err).toBeInstanceOf(RemoteError);
    expect(err.message).toContain("more than 5 redirects");
  });
});

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

/** A server on its own port (its own origin); `tls` makes it https with the throwaway certificate. */
async function listen(handler: Handler, tls = false): Promise<string> {
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    req.on("data", (d) => {
      body += d;
    });
    req.on("end", () => handler(req, res, body));
  };
  const srv = tls
    ? createHttpsServer(
        { key: readFileSync(join(tmp, "front.key")), cert: readFileSync(join(tmp, "front.crt")) },
        onRequest,
      )
    : createServer(onRequest);
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  extraServers.push(srv as Server);
  return `${tls ? "https" : "http"}://127.0.0.1:${(srv.address() as AddressInfo).port}`;
}

/** A front for the token registry whose challenges name `realm` as the token service. */
async function realmFront(realm: string, tls = false): Promise<string> {
  const origin = await listen((req, res, body) => {
    const up = httpRequest(
      {
        host: "127.0.0.1",
        port: Number(registry.split(":")[1]),
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (ur) => {
        const headers = { ...ur.headers };
        const wa = headers["www-authenticate"];
        if (typeof wa === "string")
          headers["www-authenticate"] = wa.replace(/realm="[^"]*"/, `realm="${realm}"`);
        res.writeHead(ur.statusCode ?? 502, headers);
        ur.pipe(res);
      },
    );
    up.on("error", () => res.destroy());
    up.end(body);
  }, tls);
  return new URL(origin).host;
}

interface Seen {
  method: string;
  url: string;
  authorization?: string;
  body: string;
}

/** Another origin that records what reaches it and hands out anonymous tokens. */
async function recorder(): Promise<{ origin: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const origin = await listen((req, res, body) => {
    seen.push({
      method: req.method ?? "",
      url: req.url ?? "",
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
      body,
    });
    const token = jwt([], "");
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token }));
  });
  return { origin, seen };
}

/** A token endpoint that answers every request with a redirect to `target` (same path and query). */
async function redirector(status: number, target: string, tls = false): Promise<string> {
  return listen((req, res) => {
    res.writeHead(status, { location: `${target}${req.url ?? "/"}` }).end();
  }, tls);
}

describe("where registry credentials may go", () => {
  beforeAll(() => {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        join(tmp, "front.key"),
        "-out",
        join(tmp, "front.crt"),
      ],
      { stdio: "ignore" },
    );
  });

  const errorOf = (p: Promise<unknown>) =>
    p.then(
      () => undefined,
      (e: unknown) => e as Error,
    );

  it("a token endpoint redirecting to another origin never passes on the Basic credentials", async () => {
    const evil = await recorder();
    const host = await realmFront(`${await redirector(302, evil.origin)}/token`);
    const dir = mkdtempSync(join(tmp, "redir-"));
    writeFileSync(
      join(dir, "config.json"),
      JSON.stringify({ auths: { [host]: { username: USER, password: PASSWORD } } }),
    );
    const c = client({ hosts: [{ host, plainHTTP: true }], dockerConfigDir: dir });
    const err = await errorOf(registryRepository(c, host, "team/app").resolve("v1"));
    // The redirect was followed (the other origin was asked), without credentials: its anonymous
    // token then gets nothing from the registry.
    expect(evil.seen.length).toBeGreaterThan(0);
    expect(evil.seen.map((s) => s.authorization)).toEqual(evil.seen.map(() => undefined));
    expect(evil.seen.every((s) => !s.body.includes(PASSWORD))).toBe(true);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as RemoteError).status).toBe(401);
  });

  it("an identity-token refresh POST is not redirected to another origin", async () => {
    const evil = await recorder();
    const host = await realmFront(`${await redirector(307, evil.origin)}/token`);
    const dir = mkdtempSync(join(tmp, "redir-idt-"));
    writeFileSync(
      join(dir, "config.json"),
      JSON.stringify({ auths: { [host]: { identitytoken: REFRESH } } }),
    );
    const c = client({ hosts: [{ host, plainHTTP: true }], dockerConfigDir: dir });
    const err = await errorOf(registryRepository(c, host, "team/app").resolve("v1"));
    expect(err).toBeInstanceOf(RemoteError);
    expect(err?.message).toContain("redirected to another origin");
    expect(err?.message).toContain("carries a credential");
    expect(evil.seen).toEqual([]);
  });

  it("an https registry naming an http:// token realm is refused before anything is sent", async () => {
    issued.length = 0;
    const host = await realmFront(tokenUrl, true);
    const dir = mkdtempSync(join(tmp, "realm-http-"));
    writeFileSync(
      join(dir, "config.json"),
      JSON.stringify({ auths: { [host]: { username: USER, password: PASSWORD } } }),
    );
    const c = client({ hosts: [], caFiles: [join(tmp, "front.crt")], dockerConfigDir: dir });
    const err = await errorOf(registryRepository(c, host, "team/app").resolve("v1"));
    expect(err).toBeInstanceOf(RemoteError);
    expect(err?.message).toContain("over plain http; refused");
    expect(issued).toEqual([]);

    // Named plain-HTTP by the user, the same token service is used (and the pull gets through).
    const writer = client({ dockerConfigDir: configWith({ username: USER, password: PASSWORD }) });
    const { md } = await pushSmallImage(writer, "team/realm", "v1", randomBytes(100));
    const tokenHost = new URL(tokenUrl).host;
    const allowed = client({
      hosts: [{ host: tokenHost, plainHTTP: true }],
      caFiles: [join(tmp, "front.crt")],
      dockerConfigDir: dir,
    });
    expect((await registryRepository(allowed, host, "team/realm").resolve("v1")).digest).toBe(md.digest);
    expect(issued.some((t) => t.account === USER)).toBe(true);
  });

  it("a token endpoint redirecting from https to http is refused", async () => {
    const evil = await recorder();
    const host = await realmFront(`${await redirector(302, evil.origin, true)}/token`, true);
    const dir = mkdtempSync(join(tmp, "downgrade-"));
    writeFileSync(
      join(dir, "config.json"),
      JSON.stringify({ auths: { [host]: { username: USER, password: PASSWORD } } }),
    );
    const c = client({ hosts: [], caFiles: [join(tmp, "front.crt")], dockerConfigDir: dir });
    const err = await errorOf(registryRepository(c, host, "team/app").resolve("v1"));
    expect(err).toBeInstanceOf(RemoteError);
    expect(err?.message).toContain("from https to plain http");
    expect(evil.seen).toEqual([]);
  });

  it("an oversized token answer is refused", async () => {
    const huge = await listen((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(`{"token":"${"a".repeat(2 * 1024 * 1024)}"}`);
    });
    const host = await realmFront(`${huge}/token`);
    const c = client({ hosts: [{ host, plainHTTP: true }], dockerConfigDir: configWith({}) });
    const err = await errorOf(registryRepository(c, host, "team/app").resolve("v1"));
    expect(err).toBeInstanceOf(RemoteError);
    expect(err?.message).toMatch(
      /token answer of http:\/\/127\.0\.0\.1:\d+\/token .* is larger than 1048576 bytes; refused/,
    );
  });
});
