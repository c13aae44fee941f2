/**
 * HTTPS_PROXY / HTTP_PROXY / NO_PROXY through real tinyproxy instances (scripts/servers/proxy.sh):
 * one wants Basic proxy credentials, one refuses every CONNECT. Each client is shown to go through
 * the proxy by succeeding with the right proxy credentials and failing with a 407 with wrong ones.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RemoteError } from "../../src/errors.js";
import { bypassesProxy, proxyFromEnv } from "../../src/net/proxy.js";
import { RegistryClient } from "../../src/oci/registry/client.js";
import { pinRef } from "../../src/sources/profiles/git.js";
import { download } from "../../src/sources/profiles/http.js";
import { openArtifactRepository } from "../../src/store/open-artifacts.js";
import { registryRepository } from "../../src/store/registry.js";
import { needEnv } from "../helpers/env.js";
import { closeFixtures, type PushedImage, pushImage, tlsTarget, uniqueRepo } from "../helpers/fixtures.js";
import { makeGitRepo, type TestGitRepo } from "../helpers/git.js";

const PROXY_VARS = ["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"];
const saved = new Map(PROXY_VARS.map((k) => [k, process.env[k]]));
const proxy = needEnv("AIRGAP_TEST_PROXY_URL");
const refusing = needEnv("AIRGAP_TEST_PROXY_REFUSING");
const wrongProxy = (() => {
  const u = new URL(proxy);
  u.password = "wrong";
  return u.toString();
})();
const tls = tlsTarget();
const repo = uniqueRepo("proxy");
const bucket = `airgap-proxy-${process.pid}-${Date.now().toString(36)}`;
let image: PushedImage;
let work: string;
let gitRepo: TestGitRepo;
const clients: RegistryClient[] = [];

function useProxy(vars: Record<string, string>): void {
  for (const k of PROXY_VARS) delete process.env[k];
  Object.assign(process.env, vars);
}

function registryClient(): RegistryClient {
  const dir = path.join(work, "docker");
  const c = new RegistryClient({ caFiles: [tls.ca!], certsDirs: [], retries: 0, dockerConfigDir: dir });
  clients.push(c);
  return c;
}

const errorOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e as Error,
  );

beforeAll(async () => {
  useProxy({});
  work = await mkdtemp(path.join(tmpdir(), "airgap-proxy-"));
  image = await pushImage(tls, repo, "v1", { layerSizes: [2000] });
  await mkdir(path.join(work, "docker"));
  await writeFile(
    path.join(work, "docker", "config.json"),
    JSON.stringify({ auths: { [tls.host]: { username: tls.auth!.user, password: tls.auth!.password } } }),
  );
  await closeFixtures();
  gitRepo = await makeGitRepo(uniqueRepo("proxy-git"), [{ files: { "inspec.yml": "name: p\n" } }]);
  await writeFile(path.join(needEnv("AIRGAP_TEST_HTTP_ROOT"), `${repo}.txt`), "through the proxy\n");
  const raw = new S3Client({
    endpoint: needEnv("AIRGAP_TEST_S3_ENDPOINT"),
    forcePathStyle: true,
    region: process.env.AWS_REGION ?? "us-east-1",
  });
  await raw.send(new CreateBucketCommand({ Bucket: bucket }));
  raw.destroy();
});

afterEach(() => useProxy({}));

afterAll(async () => {
  for (const [k, v] of saved) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await Promise.all(clients.map((c) => c.close()));
  await rm(work, { recursive: true, force: true });
});

describe("proxy settings", () => {
  it("are read from the environment, lower case first; NO_PROXY matches hosts, domains, ports and *", () => {
    expect(proxyFromEnv({ HTTPS_PROXY: "http://a:1", https_proxy: "http://b:2", NO_PROXY: "x" })).toEqual({
      httpsProxy: "http://b:2",
      noProxy: "x",
    });
    expect(bypassesProxy("reg.example.com", "443", "example.com")).toBe(true);
    expect(bypassesProxy("reg.example.com", "443", ".example.com")).toBe(true);
    expect(bypassesProxy("badexample.com", "443", "example.com")).toBe(false);
    expect(bypassesProxy("127.0.0.1", "5000", "127.0.0.1:5000")).toBe(true);
    expect(bypassesProxy("127.0.0.1", "5001", "127.0.0.1:5000")).toBe(false);
    expect(bypassesProxy("anything", "1", "*")).toBe(true);
  });
});

describe("registries through HTTPS_PROXY", () => {
  it("pull through an authenticating proxy; wrong proxy credentials are a clear error", async () => {
    useProxy({ HTTPS_PROXY: proxy });
    const c = registryClient();
    expect((await registryRepository(c, tls.host, repo).resolve(image.digest)).digest).toBe(image.digest);

    useProxy({ HTTPS_PROXY: wrongProxy });
    const err = await errorOf(registryRepository(registryClient(), tls.host, repo).resolve(image.digest));
    expect(err).toBeInstanceOf(RemoteError);
    expect(err?.message).toContain("refused the credentials in the proxy URL");
    expect(err?.message).not.toContain("wrong");
    expect(err?.message).toContain(`proxy ${new URL(proxy).origin}`);
  });

  it("NO_PROXY sends a host directly", async () => {
    useProxy({ HTTPS_PROXY: wrongProxy, NO_PROXY: "localhost,127.0.0.1" });
    const c = registryClient();
    expect((await registryRepository(c, tls.host, repo).resolve(image.digest)).digest).toBe(image.digest);
  });

  it("a proxy that refuses CONNECT gives an error naming the proxy and the target", async () => {
    useProxy({ HTTPS_PROXY: refusing });
    const err = await errorOf(registryRepository(registryClient(), tls.host, repo).resolve(image.digest));
    expect(err).toBeInstanceOf(RemoteError);
    expect(err?.message).toContain(
      `proxy ${refusing} refused to open a tunnel (CONNECT) to ${tls.host}: HTTP 403`,
    );
  });
});

describe("other clients through HTTP_PROXY", () => {
  it("profile downloads", async () => {
    const url = `${needEnv("AIRGAP_TEST_HTTP_URL")}/${repo}.txt`;
    useProxy({ HTTP_PROXY: proxy });
    const got = await download(url, path.join(work, "a.txt"));
    expect(got.sha256).toBe(createHash("sha256").update("through the proxy\n").digest("hex"));
    useProxy({ HTTP_PROXY: wrongProxy });
    const err = await errorOf(download(url, path.join(work, "b.txt")));
    expect(err?.message).toContain("refused the credentials in the proxy URL");
  });

  it("git", async () => {
    useProxy({ HTTP_PROXY: proxy });
    expect(await pinRef(gitRepo.url, { branch: "main" })).toBe(gitRepo.commits[0]);
    useProxy({ HTTP_PROXY: wrongProxy });
    const err = await errorOf(pinRef(gitRepo.url, { branch: "main" }));
    // curl sends a plain-http request to the proxy (no tunnel); tinyproxy's refusal reaches git as a 401.
    expect(err?.message).toMatch(/407|401|could not read Username/);
  });

  it("S3 artifact repositories", async () => {
    const data = randomBytes(5000);
    const sha256 = createHash("sha256").update(data).digest("hex");
    const endpoint = needEnv("AIRGAP_TEST_S3_ENDPOINT");
    useProxy({ HTTP_PROXY: proxy });
    const repoS3 = await openArtifactRepository(`s3://${bucket}/p`, { endpoint });
    await repoS3.put("x.bin", Readable.from([data]), { sha256, size: data.length });
    expect(await repoS3.exists("x.bin", sha256, data.length)).toBe(true);
    useProxy({ HTTP_PROXY: wrongProxy });
    const bad = await openArtifactRepository(`s3://${bucket}/p`, { endpoint });
    const err = await errorOf(bad.exists("x.bin", sha256, data.length));
    expect(err?.message).toContain("refused the credentials in the proxy URL");
  });

  it("HTTP artifact repositories", async () => {
    const base = `${needEnv("AIRGAP_TEST_DAV_URL")}/${repo}/`;
    const env = {
      AIRGAP_ARTIFACTS_USER: needEnv("AIRGAP_TEST_DAV_USER"),
      AIRGAP_ARTIFACTS_PASSWORD: needEnv("AIRGAP_TEST_DAV_PASSWORD"),
    };
    const data = randomBytes(3000);
    const sha256 = createHash("sha256").update(data).digest("hex");
    useProxy({ HTTP_PROXY: proxy });
    const dav = await openArtifactRepository(base, { env });
    await dav.put("y.bin", Readable.from([data]), { sha256, size: data.length });
    expect(await dav.exists("y.bin", sha256, data.length)).toBe(true);
    useProxy({ HTTP_PROXY: wrongProxy });
    const bad = await openArtifactRepository(base, { env });
    const err = await errorOf(bad.exists("y.bin", sha256, data.length));
    expect(err?.message).toContain("refused the credentials in the proxy URL");
  });
});
