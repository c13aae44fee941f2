import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RemoteError } from "../../src/errors.js";
import { sha256Digest } from "../../src/oci/digest.js";
import { RegistryClient, type RegistryClientOptions } from "../../src/oci/registry/client.js";
import { registryRepository } from "../../src/store/registry.js";
import { needEnv } from "../helpers/env.js";
import {
  closeFixtures,
  getBlob,
  MT,
  mtlsTarget,
  type PushedImage,
  pushImage,
  tlsTarget,
  uniqueRepo,
} from "../helpers/fixtures.js";

const tls = tlsTarget();
const mtls = mtlsTarget();
const caFile = needEnv("AIRGAP_TEST_CA");
const clientCert = needEnv("AIRGAP_TEST_CLIENT_CERT");
const clientKey = needEnv("AIRGAP_TEST_CLIENT_KEY");
const user = needEnv("AIRGAP_TEST_REGISTRY_USER");
const password = needEnv("AIRGAP_TEST_REGISTRY_PASSWORD");

const ENV_KEYS = ["DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "PATH"] as const;
const savedEnv: Partial<Record<(typeof ENV_KEYS)[number], string | undefined>> = {};
let tmp: string;
let emptyDockerConfig: string;
let image: PushedImage;
let mtlsImage: PushedImage;
const repo = uniqueRepo("tls");
const clients: RegistryClient[] = [];

function client(opts: RegistryClientOptions): RegistryClient {
  // An empty certs.d list unless a test names one: the machine's /etc/docker/certs.d must not help.
  const c = new RegistryClient({ certsDirs: [], retries: 0, ...opts });
  clients.push(c);
  return c;
}

function dockerConfig(auths: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmp, "docker-"));
  writeFileSync(join(dir, "config.json"), JSON.stringify({ auths, ...extra }));
  return dir;
}

const basic = (u: string, p: string) => Buffer.from(`${u}:${p}`).toString("base64");

beforeAll(async () => {
  for (const k of ENV_KEYS) savedEnv[k] = process.env[k];
  tmp = mkdtempSync(join(tmpdir(), "airgap-registry-tls-"));
  emptyDockerConfig = mkdtempSync(join(tmp, "empty-"));
  image = await pushImage(tls, repo, "v1", { layerSizes: [5000] });
  mtlsImage = await pushImage(mtls, repo, "v1", { layerSizes: [100] });
});

afterEach(() => {
  for (const k of ENV_KEYS) {
    if (savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = savedEnv[k];
  }
  // Only the credentials a test writes may count.
  process.env.DOCKER_CONFIG = emptyDockerConfig;
  delete process.env.REGISTRY_AUTH_FILE;
  delete process.env.XDG_RUNTIME_DIR;
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await closeFixtures();
  rmSync(tmp, { recursive: true, force: true });
});

describe("TLS trust is explicit", () => {
  it("the test CA is not trusted through the environment (so the tests below prove our options)", () => {
    const ca = readFileSync(caFile, "utf8").trim();
    const extra = process.env.NODE_EXTRA_CA_CERTS;
    if (extra) expect(readFileSync(extra, "utf8")).not.toContain(ca);
  });

  it("an unknown CA fails with a message that says the certificate is not trusted and how to trust it", async () => {
    process.env.DOCKER_CONFIG = emptyDockerConfig;
    const err = (await registryRepository(client({}), tls.host, repo)
      .resolve("v1")
      .catch((e: unknown) => e)) as RemoteError;
    expect(err).toBeInstanceOf(RemoteError);
    expect(err.code).toBe("TLS_UNTRUSTED");
    expect(err.message).toContain(`certificate of ${tls.host} is not trusted`);
    expect(err.message).toContain("--ca-file");
    expect(err.message).toContain(`/etc/docker/certs.d/${tls.host}/`);
  });

  it("localhost addresses are not implicitly insecure, and plain HTTP is not tried", async () => {
    process.env.DOCKER_CONFIG = emptyDockerConfig;
    const err = (await registryRepository(client({ hosts: [{ host: tls.host }] }), tls.host, repo)
      .exists(image.layers[0]!)
      .catch((e: unknown) => e)) as RemoteError;
    expect(err.code).toBe("TLS_UNTRUSTED");
  });

  it("`insecure: true` for the host skips verification for that host only", async () => {
    const cfg = dockerConfig({ [tls.host]: { auth: basic(user, password) } });
    const c = client({ hosts: [{ host: tls.host, insecure: true }], dockerConfigDir: cfg });
    expect((await registryRepository(c, tls.host, repo).resolve("v1")).digest).toBe(image.digest);
    const err = (await registryRepository(c, mtls.host, repo)
      .resolve("v1")
      .catch((e: unknown) => e)) as RemoteError;
    expect(err.code).toBe("TLS_UNTRUSTED");
  });
});

describe("Basic auth on the TLS registry", () => {
  it("works with the CA from caFiles and credentials from $DOCKER_CONFIG/config.json", async () => {
    process.env.DOCKER_CONFIG = dockerConfig({ [tls.host]: { auth: basic(user, password) } });
    const c = client({ caFiles: [caFile] });
    const store = registryRepository(c, tls.host, repo);
    expect(await store.resolve("v1")).toEqual({
      mediaType: MT.ociManifest,
      digest: image.digest,
      size: image.size,
    });
    const data = Buffer.from(`pushed through TLS ${Date.now()}`);
    const d = { mediaType: MT.ociLayer, digest: sha256Digest(data), size: data.length };
    await store.push(d, Readable.from([data]));
    expect((await getBlob(tls, repo, d.digest)).equals(data)).toBe(true);
  });

  it("works with the CA from the host's `ca` and an https:// keyed entry of REGISTRY_AUTH_FILE", async () => {
    const authFile = join(tmp, "auth.json");
    writeFileSync(
      authFile,
      JSON.stringify({ auths: { [`https://${tls.host}`]: { username: user, password } } }),
    );
    process.env.REGISTRY_AUTH_FILE = authFile;
    const c = client({ hosts: [{ host: tls.host, ca: caFile }] });
    expect((await registryRepository(c, tls.host, repo).resolve("v1")).digest).toBe(image.digest);
  });

  it("works with the CA from a certs.d folder (<host:port>/ca.crt)", async () => {
    const certsD = join(tmp, "certs.d");
    mkdirSync(join(certsD, tls.host), { recursive: true });
    copyFileSync(caFile, join(certsD, tls.host, "ca.crt"));
    const c = client({
      certsDirs: [join(tmp, "no-such-dir"), certsD],
      authFile: join(dockerConfig({ [tls.host]: { auth: basic(user, password) } }), "config.json"),
    });
    expect((await registryRepository(c, tls.host, repo).resolve("v1")).digest).toBe(image.digest);
  });

  it("a wrong password fails with 401: authentication failed for the host, naming where credentials came from", async () => {
    const cfgDir = dockerConfig({ [tls.host]: { auth: basic(user, "wrong-password") } });
    const c = client({ caFiles: [caFile], dockerConfigDir: cfgDir });
    const err = (await registryRepository(c, tls.host, repo)
      .resolve("v1")
      .catch((e: unknown) => e)) as RemoteError;
    expect(err).toBeInstanceOf(RemoteError);
    expect(err.status).toBe(401);
    expect(err.message).toContain(`authentication failed for ${tls.host}`);
    expect(err.message).toContain(join(cfgDir, "config.json"));
    expect(err.message).not.toContain("wrong-password");
  });

  it("no credentials fails with 401 listing the places looked in", async () => {
    const c = client({ caFiles: [caFile] });
    const err = (await registryRepository(c, tls.host, repo)
      .fetch(image.layers[0]!)
      .catch((e: unknown) => e)) as RemoteError;
    expect(err.status).toBe(401);
    expect(err.message).toContain(`no credentials were found for ${tls.host}`);
    expect(err.message).toContain(join(emptyDockerConfig, "config.json"));
  });

  it("asks a credential helper (credHelpers) with the host on stdin", async () => {
    const bin = mkdtempSync(join(tmp, "bin-"));
    const helper = join(bin, "docker-credential-airgaptest");
    const seen = join(bin, "seen");
    writeFileSync(
      helper,
      `#!/bin/sh\n[ "$1" = get ] || exit 1\nread host\necho "$host" > ${seen}\n` +
        `printf '{"ServerURL":"%s","Username":"${user}","Secret":"${password}"}' "$host"\n`,
    );
    chmodSync(helper, 0o755);
    process.env.PATH = `${bin}${delimiter}${process.env.PATH}`;
    const cfgDir = dockerConfig({}, { credHelpers: { [tls.host]: "airgaptest" } });
    const c = client({ caFiles: [caFile], dockerConfigDir: cfgDir });
    expect((await registryRepository(c, tls.host, repo).resolve("v1")).digest).toBe(image.digest);
    expect(readFileSync(seen, "utf8").trim()).toBe(tls.host);
  });
});

describe("mTLS", () => {
  it("works with the client certificate and key from the host config", async () => {
    const c = client({ hosts: [{ host: mtls.host, ca: caFile, cert: clientCert, key: clientKey }] });
    expect((await registryRepository(c, mtls.host, repo).resolve("v1")).digest).toBe(mtlsImage.digest);
  });

  it("works with a certs.d folder holding ca.crt, client.cert and client.key", async () => {
    const certsD = join(tmp, "mtls.d");
    mkdirSync(join(certsD, mtls.host), { recursive: true });
    copyFileSync(caFile, join(certsD, mtls.host, "ca.crt"));
    copyFileSync(clientCert, join(certsD, mtls.host, "client.cert"));
    copyFileSync(clientKey, join(certsD, mtls.host, "client.key"));
    const c = client({ certsDirs: [certsD] });
    expect((await registryRepository(c, mtls.host, repo).resolve("v1")).digest).toBe(mtlsImage.digest);
  });

  it("fails clearly without a client certificate", async () => {
    const c = client({ caFiles: [caFile] });
    const err = (await registryRepository(c, mtls.host, repo)
      .resolve("v1")
      .catch((e: unknown) => e)) as RemoteError;
    expect(err).toBeInstanceOf(RemoteError);
    expect(err.code).toBe("TLS_CLIENT_CERT");
    expect(err.message).toContain("client certificate");
    expect(err.message).toContain(mtls.host);
  });
});
