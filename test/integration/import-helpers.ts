/**
 * Shared steps of the `bundle verify` / `bundle import` end-to-end tests: keys and bundles made with the
 * CLI itself, an isolated credential/CA environment for the child process, and read-back of the TLS
 * registry over raw HTTP (never through the product's client).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Agent, type Dispatcher, request } from "undici";
import { type CliResult, runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";

export const PASSWORD = "correct horse battery staple";

/** `airgap key generate`: returns the paths of PREFIX.key and PREFIX.pub. */
export async function generateKey(dir: string, name: string): Promise<{ key: string; pub: string }> {
  const prefix = join(dir, name);
  const r = await runCli(["key", "generate", "--output-prefix", prefix], {
    env: { COSIGN_PASSWORD: PASSWORD },
  });
  if (r.code !== 0) throw new Error(`key generate failed: ${r.stderr}`);
  return { key: `${prefix}.key`, pub: `${prefix}.pub` };
}

/** A bundle config over images of the plain test registry (linux/amd64 only). */
export function writeBundleConfig(dir: string, name: string, refs: string[]): string {
  const host = needEnv("AIRGAP_TEST_REGISTRY_PLAIN");
  const file = join(dir, `${name}.config.yaml`);
  writeFileSync(
    file,
    `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: ${name}, version: 1.0.0 }
platforms: [linux/amd64]
registries:
  - host: ${host}
    plainHTTP: true
images:
${refs.map((r) => `  - ref: ${r}`).join("\n")}
`,
  );
  return file;
}

/** `airgap bundle create`; throws with the CLI's stderr on failure. */
export async function createBundle(
  config: string,
  out: string,
  opts: { key?: string; cache: string },
): Promise<CliResult> {
  const args = ["bundle", "create", "-c", config, "-o", out, "--cache", opts.cache];
  if (opts.key) args.push("--key", opts.key);
  const r = await runCli(args, { env: { COSIGN_PASSWORD: PASSWORD } });
  if (r.code !== 0) throw new Error(`bundle create ${out} failed (${r.code}): ${r.stderr}`);
  return r;
}

/**
 * Environment of an import run: credentials only from a DOCKER_CONFIG written here, and no CA that
 * trusts the test registries, so TLS trust can only come from the option under test.
 */
export function isolatedEnv(dir: string, withCredentials = true): NodeJS.ProcessEnv {
  const dockerConfig = join(dir, `docker-config-${withCredentials ? "auth" : "none"}`);
  mkdirSync(dockerConfig, { recursive: true });
  const auths: Record<string, { auth: string }> = {};
  if (withCredentials) {
    auths[needEnv("AIRGAP_TEST_REGISTRY_TLS")] = {
      auth: Buffer.from(
        `${needEnv("AIRGAP_TEST_REGISTRY_USER")}:${needEnv("AIRGAP_TEST_REGISTRY_PASSWORD")}`,
      ).toString("base64"),
    };
  }
  writeFileSync(join(dockerConfig, "config.json"), JSON.stringify({ auths }));
  return {
    DOCKER_CONFIG: dockerConfig,
    REGISTRY_AUTH_FILE: join(dockerConfig, "absent-auth.json"),
    XDG_RUNTIME_DIR: join(dockerConfig, "runtime"),
    HOME: dir,
    NODE_EXTRA_CA_CERTS: "/dev/null",
    SSL_CERT_FILE: "/dev/null",
    SSL_CERT_DIR: "/nonexistent",
    AIRGAP_REQUIRE_SIGNATURE: undefined,
  };
}

const agents = new Map<string, Agent>();

function agentFor(mtls: boolean): Agent {
  const key = mtls ? "mtls" : "tls";
  let a = agents.get(key);
  if (!a) {
    a = new Agent({
      connect: {
        ca: readFileSync(needEnv("AIRGAP_TEST_CA"), "utf8"),
        ...(mtls
          ? {
              cert: readFileSync(needEnv("AIRGAP_TEST_CLIENT_CERT"), "utf8"),
              key: readFileSync(needEnv("AIRGAP_TEST_CLIENT_KEY"), "utf8"),
            }
          : {}),
      },
    });
    agents.set(key, a);
  }
  return a;
}

export async function closeAgents(): Promise<void> {
  const all = [...agents.values()];
  agents.clear();
  await Promise.all(all.map((a) => a.close()));
}

/** Every repository of the TLS registry (or the mTLS one), from /v2/_catalog, following pagination. */
export async function catalog(which: "tls" | "mtls" = "tls"): Promise<string[]> {
  const host = needEnv(which === "tls" ? "AIRGAP_TEST_REGISTRY_TLS" : "AIRGAP_TEST_REGISTRY_MTLS");
  const headers: Record<string, string> =
    which === "tls"
      ? {
          authorization: `Basic ${Buffer.from(
            `${needEnv("AIRGAP_TEST_REGISTRY_USER")}:${needEnv("AIRGAP_TEST_REGISTRY_PASSWORD")}`,
          ).toString("base64")}`,
        }
      : {};
  const out: string[] = [];
  let url: string | undefined = `https://${host}/v2/_catalog?n=1000`;
  while (url) {
    const res: Dispatcher.ResponseData = await request(url, {
      headers,
      dispatcher: agentFor(which === "mtls"),
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`catalog of ${host}: HTTP ${res.statusCode} ${text}`);
    out.push(...((JSON.parse(text) as { repositories: string[] | null }).repositories ?? []));
    const link: string | string[] | undefined = res.headers.link;
    const m: RegExpExecArray | null = typeof link === "string" ? /<([^>]+)>/.exec(link) : null;
    url = m ? new URL(m[1]!, `https://${host}`).toString() : undefined;
  }
  return out.sort();
}

/** Flip one byte of a file in place (at `offset`, default the middle). */
export function flipByte(file: string, offset?: number): void {
  const bytes = readFileSync(file);
  const at = offset ?? Math.floor(bytes.length / 2);
  bytes[at] = (bytes[at] ?? 0) ^ 0xff;
  writeFileSync(file, bytes);
}

/** Copy a directory tree (cp -a keeps it simple and exact). */
export function copyTree(from: string, to: string): void {
  execFileSync("cp", ["-a", from, to]);
}

interface IndexJson {
  manifests: { digest: string; mediaType: string; size: number; annotations?: Record<string, string> }[];
}

/** Roots of a directory bundle by `org.opencontainers.image.ref.name`. */
export function bundleRoots(dir: string): Map<string, { digest: string; mediaType: string; size: number }> {
  const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8")) as IndexJson;
  const out = new Map<string, { digest: string; mediaType: string; size: number }>();
  for (const m of index.manifests) {
    const name = m.annotations?.["org.opencontainers.image.ref.name"];
    if (name) out.set(name, { digest: m.digest, mediaType: m.mediaType, size: m.size });
  }
  return out;
}

/** Every blob file name (hex) of a directory bundle. */
export function bundleBlobHexes(dir: string): string[] {
  return readFileSync(join(dir, "SHA256SUMS"), "utf8")
    .trim()
    .split("\n")
    .map((l) => l.split(/\s+\*?/)[1] ?? "")
    .filter((p) => p.startsWith("blobs/sha256/"))
    .map((p) => p.slice("blobs/sha256/".length));
}

/** Byte offset and size of a file's data inside an (uncompressed, ustar/pax) tar. */
export function tarEntry(tarFile: string, wanted: string): { offset: number; size: number } {
  const bytes = readFileSync(tarFile);
  let pos = 0;
  let paxPath: string | undefined;
  while (pos + 512 <= bytes.length) {
    const h = bytes.subarray(pos, pos + 512);
    if (h.every((b) => b === 0)) break;
    const str = (a: number, b: number) => h.subarray(a, b).toString("utf8").replace(/\0.*$/s, "");
    const size = Number.parseInt(str(124, 136).trim() || "0", 8);
    const type = str(156, 157);
    const prefix = str(345, 500);
    const name = paxPath ?? (prefix ? `${prefix}/${str(0, 100)}` : str(0, 100));
    const data = pos + 512;
    paxPath = undefined;
    if (type === "x") {
      const m = /\d+ path=([^\n]*)\n/.exec(bytes.subarray(data, data + size).toString("utf8"));
      paxPath = m?.[1];
    } else if (name.replace(/^\.\//, "") === wanted) {
      return { offset: data, size };
    }
    pos = data + Math.ceil(size / 512) * 512;
  }
  throw new Error(`${wanted} is not in ${tarFile}`);
}
