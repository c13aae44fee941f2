/**
 * The real test servers' coordinates, as `scripts/test-servers.sh start` writes them to
 * `.test-state/env` and test/helpers/global-setup.ts loads them into process.env.
 * Certificate and key values are file paths (PEM), so they can be handed to child processes as-is.
 */
import { readFileSync } from "node:fs";

export const ENV_NAMES = [
  "AIRGAP_TEST_STATE",
  "AIRGAP_TEST_REGISTRY_PLAIN",
  "AIRGAP_TEST_REGISTRY_TLS",
  "AIRGAP_TEST_REGISTRY_MTLS",
  "AIRGAP_TEST_REGISTRY_USER",
  "AIRGAP_TEST_REGISTRY_PASSWORD",
  "AIRGAP_TEST_REGISTRY_TLS_STORAGE",
  "AIRGAP_TEST_CA",
  "AIRGAP_TEST_CA_BUNDLE",
  "AIRGAP_TEST_CLIENT_CERT",
  "AIRGAP_TEST_CLIENT_KEY",
  "AIRGAP_TEST_S3_ENDPOINT",
  "AIRGAP_TEST_S3_TLS_ENDPOINT",
  "AIRGAP_TEST_S3_MTLS_ENDPOINT",
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_REGION",
  "AIRGAP_TEST_GIT_ROOT",
  "AIRGAP_TEST_GIT_URL",
  "AIRGAP_TEST_HTTP_ROOT",
  "AIRGAP_TEST_HTTP_URL",
  "AIRGAP_TEST_DAV_URL",
  "AIRGAP_TEST_DAV_USER",
  "AIRGAP_TEST_DAV_PASSWORD",
] as const;

export type EnvName = (typeof ENV_NAMES)[number];

export const START_HINT = "start the test servers first: bash scripts/test-servers.sh start";

export interface TestEnv {
  /** Folder holding the servers' state, logs and certificates (.test-state). */
  state: string;
  /** host:port of the plain-HTTP, anonymous registry. */
  registryPlain: string;
  /** host:port of the HTTPS registry with Basic auth (registryUser / registryPassword). */
  registryTls: string;
  /** host:port of the HTTPS registry that requires a client certificate (clientCert / clientKey). */
  registryMtls: string;
  registryUser: string;
  registryPassword: string;
  /** Storage root of the TLS registry (docker/registry/v2/... below it). */
  registryTlsStorage: string;
  /** Path of the test CA certificate (PEM). */
  ca: string;
  /** Path of the system roots plus the test CA (PEM), for tools that read one bundle. */
  caBundle: string;
  /** Paths of the client certificate and key (PEM) the mTLS registry accepts. */
  clientCert: string;
  clientKey: string;
  /** http://127.0.0.1:port of Ceph RGW; path-style addressing; buckets are created by tests. */
  s3Endpoint: string;
  /** https://127.0.0.1:port: nginx terminating TLS (test CA's server certificate) in front of the same RGW. */
  s3TlsEndpoint: string;
  /** https://127.0.0.1:port: the same, requiring a client certificate signed by the test CA (clientCert / clientKey). */
  s3MtlsEndpoint: string;
  awsAccessKeyId: string;
  awsSecretAccessKey: string;
  awsRegion: string;
  /** Folder of bare repositories, served read-only at gitUrl/<name>.git */
  gitRoot: string;
  /** http://127.0.0.1:port, no trailing slash. */
  gitUrl: string;
  /** Folder served as static files at httpUrl/<path>. */
  httpRoot: string;
  /** http://127.0.0.1:port, no trailing slash. */
  httpUrl: string;
  /** http://127.0.0.1:port of the raw repository: GET/HEAD/PUT/DELETE with Basic auth. */
  davUrl: string;
  davUser: string;
  davPassword: string;
}

/** One variable, or an error that says how to get it. */
export function needEnv(name: EnvName | string): string {
  const value = process.env[name];
  if (value === undefined || value === "") {
    throw new Error(`${name} is not set: ${START_HINT}`);
  }
  return value;
}

/** All the test servers' coordinates; throws naming every missing variable. */
export function testEnv(): TestEnv {
  const missing = ENV_NAMES.filter((n) => !process.env[n]);
  if (missing.length > 0) {
    throw new Error(`missing ${missing.join(", ")}: ${START_HINT}`);
  }
  const e = (n: EnvName) => process.env[n] as string;
  return {
    state: e("AIRGAP_TEST_STATE"),
    registryPlain: e("AIRGAP_TEST_REGISTRY_PLAIN"),
    registryTls: e("AIRGAP_TEST_REGISTRY_TLS"),
    registryMtls: e("AIRGAP_TEST_REGISTRY_MTLS"),
    registryUser: e("AIRGAP_TEST_REGISTRY_USER"),
    registryPassword: e("AIRGAP_TEST_REGISTRY_PASSWORD"),
    registryTlsStorage: e("AIRGAP_TEST_REGISTRY_TLS_STORAGE"),
    ca: e("AIRGAP_TEST_CA"),
    caBundle: e("AIRGAP_TEST_CA_BUNDLE"),
    clientCert: e("AIRGAP_TEST_CLIENT_CERT"),
    clientKey: e("AIRGAP_TEST_CLIENT_KEY"),
    s3Endpoint: e("AIRGAP_TEST_S3_ENDPOINT"),
    s3TlsEndpoint: e("AIRGAP_TEST_S3_TLS_ENDPOINT"),
    s3MtlsEndpoint: e("AIRGAP_TEST_S3_MTLS_ENDPOINT"),
    awsAccessKeyId: e("AWS_ACCESS_KEY_ID"),
    awsSecretAccessKey: e("AWS_SECRET_ACCESS_KEY"),
    awsRegion: e("AWS_REGION"),
    gitRoot: e("AIRGAP_TEST_GIT_ROOT"),
    gitUrl: e("AIRGAP_TEST_GIT_URL"),
    httpRoot: e("AIRGAP_TEST_HTTP_ROOT"),
    httpUrl: e("AIRGAP_TEST_HTTP_URL"),
    davUrl: e("AIRGAP_TEST_DAV_URL"),
    davUser: e("AIRGAP_TEST_DAV_USER"),
    davPassword: e("AIRGAP_TEST_DAV_PASSWORD"),
  };
}

/** PEM text of a file named by a variable (AIRGAP_TEST_CA, AIRGAP_TEST_CLIENT_CERT, ...). */
export function readPem(
  name: "AIRGAP_TEST_CA" | "AIRGAP_TEST_CLIENT_CERT" | "AIRGAP_TEST_CLIENT_KEY",
): string {
  return readFileSync(needEnv(name), "utf8");
}

/**
 * Environment for a child process (git, skopeo, curl, the CLI) that trusts the system roots plus the
 * test CA. This machine exports CA variables globally and they beat per-command flags, so a TLS test
 * that does not want to prove a --ca flag should set them all.
 */
export function childEnvTrustingTestCa(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const bundle = needEnv("AIRGAP_TEST_CA_BUNDLE");
  return {
    ...base,
    NODE_EXTRA_CA_CERTS: bundle,
    SSL_CERT_FILE: bundle,
    CURL_CA_BUNDLE: bundle,
    GIT_SSL_CAINFO: bundle,
    AWS_CA_BUNDLE: bundle,
    REQUESTS_CA_BUNDLE: bundle,
  };
}
