/**
 * S3 over TLS with a private CA, and with mutual TLS, through the CLI: `bundle import --artifacts
 * s3://…` publishes a profile and a file to Ceph RGW behind nginx terminating TLS with the test CA's
 * certificate. The CA reaches airgap the ways a user gives it (--ca-file, the import config's
 * `registries:` entry for the S3 host, AWS_CA_BUNDLE), and the client certificate from that entry.
 * Without them the import fails (exit 1) with an error naming the endpoint and how to trust it, and
 * publishes nothing. Objects are read back from RGW directly and hashed.
 *
 * This machine exports NODE_EXTRA_CA_CERTS, AWS_CA_BUNDLE and the like globally: every CLI run here
 * sets them all, so what a test proves is the product's own option, not the machine's trust.
 */
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, RemoteError } from "../../src/errors.js";
import { openArtifactRepository } from "../../src/store/open-artifacts.js";
import { type CliResult, runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import { closeFixtures, plainTarget } from "../helpers/fixtures.js";

const uid = `${process.pid}-${Date.now().toString(36)}`;
const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
const registry = plainTarget().host;
const bucket = `s3tls-${uid}`
  .toLowerCase()
  .replace(/[^a-z0-9-]/g, "-")
  .slice(0, 40);

let work: string;
let bundleDir: string;
let raw: S3Client;
let tlsEndpoint: string;
let mtlsEndpoint: string;
const notes = Buffer.from(`release notes ${uid}\n`);

/** No CA from the machine: every variable that could make the test CA trusted is set empty. */
const NO_MACHINE_TRUST: NodeJS.ProcessEnv = {
  NODE_EXTRA_CA_CERTS: "",
  SSL_CERT_FILE: "",
  SSL_CERT_DIR: "",
  CURL_CA_BUNDLE: "",
  AWS_CA_BUNDLE: "",
  REQUESTS_CA_BUNDLE: "",
  AWS_ENDPOINT_URL: "",
  AWS_ENDPOINT_URL_S3: "",
};

interface ImportJson {
  profiles: { name: string; url: string; uploaded: boolean; sha256: string }[];
  files: { name: string; url: string; uploaded: boolean; sha256: string }[];
}

async function importTo(
  endpoint: string,
  prefix: string,
  opts: { extra?: string[]; config?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  const config = path.join(work, `import-${prefix}.yaml`);
  await writeFile(
    config,
    `apiVersion: cinc-airgap/v1\nkind: Import\nregistries:\n  - host: "${registry}"\n    plainHTTP: true\n${opts.config ?? ""}`,
  );
  return await runCli(
    [
      "bundle",
      "import",
      bundleDir,
      "--registry",
      `${registry}/s3tls-${uid}`,
      "--config",
      config,
      "--artifacts",
      `s3://${bucket}/${prefix}`,
      "--s3-endpoint",
      endpoint,
      "--out",
      path.join(work, `out-${prefix}`),
      "--json",
      ...(opts.extra ?? []),
    ],
    { env: { ...NO_MACHINE_TRUST, ...opts.env } },
  );
}

/** The objects behind the URLs the import reported, read from RGW itself, match their sha256. */
async function expectPublished(r: CliResult, endpoint: string, prefix: string): Promise<void> {
  expect(r.code, r.stderr).toBe(0);
  const result = JSON.parse(r.stdout) as ImportJson;
  const published = [...result.profiles, ...result.files];
  expect(published.map((p) => p.name).sort()).toEqual(["notes.txt", "scanner"]);
  for (const p of published) {
    expect(p.uploaded).toBe(true);
    expect(p.url.startsWith(`${endpoint}/${bucket}/${prefix}/`), p.url).toBe(true);
    const key = decodeURIComponent(p.url.slice(`${endpoint}/${bucket}/`.length));
    const obj = await raw.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    expect(sha256(Buffer.from(await obj.Body!.transformToByteArray()))).toBe(p.sha256);
  }
  expect(result.files[0]!.sha256).toBe(sha256(notes));
}

async function keysUnder(prefix: string): Promise<string[]> {
  const res = await raw.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/` }));
  return (res.Contents ?? []).map((o) => o.Key!);
}

function hostOf(endpoint: string): string {
  return new URL(endpoint).host;
}

beforeAll(async () => {
  tlsEndpoint = needEnv("AIRGAP_TEST_S3_TLS_ENDPOINT");
  mtlsEndpoint = needEnv("AIRGAP_TEST_S3_MTLS_ENDPOINT");
  raw = new S3Client({
    endpoint: needEnv("AIRGAP_TEST_S3_ENDPOINT"),
    forcePathStyle: true,
    region: "us-east-1",
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  for (let i = 0; ; i++) {
    try {
      await raw.send(new CreateBucketCommand({ Bucket: bucket }));
      break;
    } catch (err) {
      if (i > 5) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  work = await mkdtemp(path.join(tmpdir(), "airgap-s3tls-"));
  const profile = path.join(work, "profiles", "scanner");
  await mkdir(path.join(profile, "controls"), { recursive: true });
  await writeFile(path.join(profile, "inspec.yml"), "name: scanner\nversion: 1.0.0\n");
  await writeFile(
    path.join(profile, "controls", "c.rb"),
    'control "c-1" do\n  describe true do\n    it { should eq true }\n  end\nend\n',
  );
  const httpDir = path.join(needEnv("AIRGAP_TEST_HTTP_ROOT"), `s3tls-${uid}`);
  await mkdir(httpDir, { recursive: true });
  await writeFile(path.join(httpDir, "notes.txt"), notes);
  const bundleConfig = path.join(work, "bundle.yaml");
  await writeFile(
    bundleConfig,
    `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: s3tls, version: 1.0.0 }
profiles:
  - path: profiles/scanner
files:
  - name: notes.txt
    url: ${needEnv("AIRGAP_TEST_HTTP_URL")}/s3tls-${uid}/notes.txt
    sha256: ${sha256(notes)}
`,
  );
  bundleDir = path.join(work, "bundle");
  const r = await runCli([
    "bundle",
    "create",
    "-c",
    bundleConfig,
    "-o",
    bundleDir,
    "--cache",
    path.join(work, "cache"),
  ]);
  expect(r.code, r.stderr).toBe(0);
});

afterAll(async () => {
  await closeFixtures();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("S3 over TLS with a private CA", () => {
  it("publishes with the CA from --ca-file", async () => {
    const r = await importTo(tlsEndpoint, "ca-file", { extra: ["--ca-file", needEnv("AIRGAP_TEST_CA")] });
    await expectPublished(r, tlsEndpoint, "ca-file");
  });

  it("publishes with the CA from the import config's entry for the S3 host", async () => {
    const r = await importTo(tlsEndpoint, "config-ca", {
      config: `  - host: "${hostOf(tlsEndpoint)}"\n    ca: "${needEnv("AIRGAP_TEST_CA")}"\n`,
    });
    await expectPublished(r, tlsEndpoint, "config-ca");
  });

  it("publishes with the CA from AWS_CA_BUNDLE, as the aws CLI reads it", async () => {
    const r = await importTo(tlsEndpoint, "aws-ca-bundle", {
      env: { AWS_CA_BUNDLE: needEnv("AIRGAP_TEST_CA") },
    });
    await expectPublished(r, tlsEndpoint, "aws-ca-bundle");
  });

  it("without the CA fails naming the endpoint and how to trust it, and publishes nothing", async () => {
    // the machine's own roots (NODE_EXTRA_CA_CERTS, AWS_CA_BUNDLE) do not include a private CA
    const systemRoots = "/etc/ssl/certs/ca-certificates.crt";
    const r = await importTo(tlsEndpoint, "no-ca", {
      env: { NODE_EXTRA_CA_CERTS: systemRoots, AWS_CA_BUNDLE: systemRoots },
    });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`S3 endpoint ${tlsEndpoint} is not trusted`);
    expect(r.stderr).toContain("--ca-file");
    expect(r.stderr).toContain(`host: "${hostOf(tlsEndpoint)}"`);
    expect(r.stderr).toContain("AWS_CA_BUNDLE");
    expect(await keysUnder("no-ca")).toEqual([]);
  });
});

describe("AWS_CA_BUNDLE", () => {
  it("an unreadable one is a config error naming the variable (https endpoints only)", async () => {
    const missing = path.join(work, "no-such-ca.pem");
    const err = await openArtifactRepository(`s3://${bucket}/x`, {
      endpoint: tlsEndpoint,
      env: { AWS_CA_BUNDLE: missing },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(`AWS_CA_BUNDLE names ${missing}`);
    // plain http needs no CA: the variable is not read
    await openArtifactRepository(`s3://${bucket}/x`, {
      endpoint: needEnv("AIRGAP_TEST_S3_ENDPOINT"),
      env: { AWS_CA_BUNDLE: missing },
    });
  });
});

describe("S3 over TLS through a proxy", () => {
  it("streams a multipart upload through the TLS front; the object reads back whole", async () => {
    const repo = await openArtifactRepository(`s3://${bucket}/big`, {
      endpoint: tlsEndpoint,
      caFile: needEnv("AIRGAP_TEST_CA"),
      env: {},
      multipartThreshold: 8 * 1024 * 1024,
      partSize: 5 * 1024 * 1024,
    });
    const data = randomBytes(12 * 1024 * 1024 + 321);
    // in slices, as a bundle streams
    const slices = Array.from({ length: 13 }, (_, i) =>
      data.subarray(i * 1024 * 1024, (i + 1) * 1024 * 1024),
    );
    await repo.put("blob.bin", Readable.from(slices), { sha256: sha256(data), size: data.length });
    const obj = await raw.send(new GetObjectCommand({ Bucket: bucket, Key: "big/blob.bin" }));
    expect(obj.ETag).toMatch(/-3"$/);
    expect(sha256(Buffer.from(await obj.Body!.transformToByteArray()))).toBe(sha256(data));
    expect(await repo.exists("blob.bin", sha256(data), data.length)).toBe(true);
  });
});

describe("S3 over mutual TLS", () => {
  it("publishes with the client certificate from the import config's entry for the S3 host", async () => {
    const r = await importTo(mtlsEndpoint, "mtls", {
      config: [
        `  - host: "${hostOf(mtlsEndpoint)}"`,
        `    ca: "${needEnv("AIRGAP_TEST_CA")}"`,
        `    cert: "${needEnv("AIRGAP_TEST_CLIENT_CERT")}"`,
        `    key: "${needEnv("AIRGAP_TEST_CLIENT_KEY")}"`,
        "",
      ].join("\n"),
    });
    await expectPublished(r, mtlsEndpoint, "mtls");
  });

  it("without a client certificate fails saying the endpoint requires one, and publishes nothing", async () => {
    const r = await importTo(mtlsEndpoint, "mtls-none", {
      config: `  - host: "${hostOf(mtlsEndpoint)}"\n    ca: "${needEnv("AIRGAP_TEST_CA")}"\n`,
    });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(
      `S3 endpoint ${mtlsEndpoint} requires a client certificate and none was configured`,
    );
    expect(r.stderr).toContain("`cert:` and `key:`");
    expect(await keysUnder("mtls-none")).toEqual([]);
  });

  it("explains a refused HEAD too (no body to read), and passes with the client certificate", async () => {
    // publishing files starts with HEAD (exists), whose 400 from the TLS proxy carries no page
    const base = { endpoint: mtlsEndpoint, caFile: needEnv("AIRGAP_TEST_CA"), env: {} };
    const without = await openArtifactRepository(`s3://${bucket}/head`, base);
    const err = await without.exists("files/x", sha256("x"), 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as RemoteError).code).toBe("TLS_CLIENT_CERT");
    expect((err as Error).message).toContain(`HEAD s3://${bucket}/head/files/x`);
    const withCert = await openArtifactRepository(`s3://${bucket}/head`, {
      ...base,
      hosts: [
        {
          host: hostOf(mtlsEndpoint),
          cert: needEnv("AIRGAP_TEST_CLIENT_CERT"),
          key: needEnv("AIRGAP_TEST_CLIENT_KEY"),
        },
      ],
    });
    expect(await withCert.exists("files/x", sha256("x"), 1)).toBe(false);
  });

  it("a client certificate the endpoint does not accept is named as refused", async () => {
    // signed by a CA of its own, not by the one the endpoint trusts
    const dir = path.join(work, "stranger");
    await mkdir(dir, { recursive: true });
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=stranger",
        "-addext",
        "extendedKeyUsage=clientAuth",
        "-keyout",
        path.join(dir, "client.key"),
        "-out",
        path.join(dir, "client.crt"),
      ],
      { stdio: "ignore" },
    );
    const r = await importTo(mtlsEndpoint, "mtls-stranger", {
      config: [
        `  - host: "${hostOf(mtlsEndpoint)}"`,
        `    ca: "${needEnv("AIRGAP_TEST_CA")}"`,
        `    cert: "${path.join(dir, "client.crt")}"`,
        `    key: "${path.join(dir, "client.key")}"`,
        "",
      ].join("\n"),
    });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(
      `S3 endpoint ${mtlsEndpoint} requires a client certificate and refused the one given`,
    );
    expect(r.stderr).toContain(`client certificate ${path.join(dir, "client.crt")}`);
    expect(await keysUnder("mtls-stranger")).toEqual([]);
  });
});
