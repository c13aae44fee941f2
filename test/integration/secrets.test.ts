/**
 * Secrets never leave the process: the registry password (and its Basic form), a token-auth
 * registry's password and every Bearer token its service issued, the signing key's password, the S3
 * secret key and credentials written into a file source's URL are used, but appear in no output
 * stream (with and without --json, in successful and failing runs of key generate, create, verify
 * and import) and in no file written (the bundles, their gzip members, the caches, import's --out
 * folders). The private key is written 0600.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliResult, runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import { closeFixtures, pushImage, tlsTarget, uniqueRepo } from "../helpers/fixtures.js";
import { startTokenRegistry, type TokenRegistry } from "../helpers/token-registry.js";
import { closeAgents, isolatedEnv } from "./import-helpers.js";

const tls = tlsTarget();
const ns = uniqueRepo("secrets");
const tag = randomBytes(6).toString("hex");
const USER = needEnv("AIRGAP_TEST_REGISTRY_USER");
const secrets = {
  "registry password": needEnv("AIRGAP_TEST_REGISTRY_PASSWORD"),
  "registry Basic credentials": Buffer.from(`${USER}:${needEnv("AIRGAP_TEST_REGISTRY_PASSWORD")}`).toString(
    "base64",
  ),
  "key password": `keyPW${tag}`,
  "wrong key password": `wrongKeyPW${tag}`,
  "S3 secret key": needEnv("AWS_SECRET_ACCESS_KEY"),
  "wrong S3 secret key": `wrongS3${tag}${tag}`,
  "URL password": `urlPW${tag}`,
  "URL token": `urlTOKEN${tag}`,
  "wrong registry password": `wrongRegPW${tag}`,
  "wrong registry Basic credentials": Buffer.from(`${USER}:wrongRegPW${tag}`).toString("base64"),
  "token registry password": `tokenPW${tag}`,
  "token registry Basic credentials": Buffer.from(`robot:tokenPW${tag}`).toString("base64"),
  "wrong token registry password": `wrongTokenPW${tag}`,
};

let work: string;
let env: NodeJS.ProcessEnv;
let config: string;
let bucket: string;
let tokenRegistry: TokenRegistry | undefined;
const written: string[] = [];
const runs: { what: string; r: CliResult }[] = [];

function expectNoSecret(where: string, text: string): void {
  for (const [name, value] of Object.entries(secrets)) {
    expect(text.includes(value), `${where} holds the ${name}`).toBe(false);
  }
  for (const token of tokenRegistry?.tokens ?? []) {
    expect(text.includes(token), `${where} holds a Bearer token of the token registry`).toBe(false);
  }
}

/** Run the CLI, keep its output for the final sweep, and check it right away. */
async function run(what: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const r = await runCli(args, { env: { ...env, ...extraEnv } });
  runs.push({ what, r });
  expectNoSecret(`${what}: stdout`, r.stdout);
  expectNoSecret(`${what}: stderr`, r.stderr);
  return r;
}

/** Every file below `dir`, and the unpacked content of gzip files, as text. */
function filesBelow(dir: string): { file: string; text: string }[] {
  const out: { file: string; text: string }[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const bytes = readFileSync(p);
        out.push({ file: p, text: bytes.toString("latin1") });
        if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
          try {
            out.push({ file: `${p} (gunzip)`, text: gunzipSync(bytes).toString("latin1") });
          } catch {
            // not a whole gzip stream: its raw bytes were checked
          }
        }
      }
    }
  };
  walk(dir);
  return out;
}

function createArgs(out: string, extra: string[] = []): string[] {
  return ["bundle", "create", "-c", config, "-o", out, "--cache", join(work, "cache"), ...extra];
}

function importArgs(bundle: string, out: string, extra: string[] = []): string[] {
  return [
    "bundle",
    "import",
    bundle,
    "--registry",
    `${tls.host}/${uniqueRepo("sec-in")}`,
    "--ca-file",
    needEnv("AIRGAP_TEST_CA"),
    "--key",
    join(work, "cosign.pub"),
    "--artifacts",
    `s3://${bucket}/airgap`,
    "--out",
    out,
    ...extra,
  ];
}

/** A DOCKER_CONFIG with these passwords for the TLS registry and the token registry. */
function dockerConfig(
  name: string,
  password: string,
  tokenPassword = secrets["token registry password"],
): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  const auth = (user: string, pw: string) => ({ auth: Buffer.from(`${user}:${pw}`).toString("base64") });
  const auths: Record<string, { auth: string }> = { [tls.host]: auth(USER, password) };
  if (tokenRegistry) auths[tokenRegistry.host] = auth("robot", tokenPassword);
  writeFileSync(join(dir, "config.json"), JSON.stringify({ auths }));
  return dir;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-secrets-"));
  const tokenDir = join(work, "token-registry");
  mkdirSync(tokenDir);
  tokenRegistry = await startTokenRegistry(tokenDir, {
    user: "robot",
    password: secrets["token registry password"],
  });
  env = {
    ...isolatedEnv(work),
    DOCKER_CONFIG: dockerConfig("docker-good", secrets["registry password"]),
    COSIGN_PASSWORD: secrets["key password"],
    AWS_ENDPOINT_URL_S3: needEnv("AIRGAP_TEST_S3_ENDPOINT"),
  };
  await pushImage(tls, `${ns}/app`, "1", { layerSizes: [50_000] });
  const httpDir = join(needEnv("AIRGAP_TEST_HTTP_ROOT"), `secrets-${tag}`);
  mkdirSync(httpDir, { recursive: true });
  const tool = randomBytes(30_000);
  writeFileSync(join(httpDir, "tool"), tool);
  const toolUrl = needEnv("AIRGAP_TEST_HTTP_URL").replace("://", `://deploy:${secrets["URL password"]}@`);
  config = join(work, "bundle.config.yaml");
  writeFileSync(
    config,
    `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: secrets, version: 1.0.0 }
platforms: [linux/amd64]
registries:
  - host: ${tls.host}
    ca: ${needEnv("AIRGAP_TEST_CA")}
images:
  - ref: ${tls.host}/${ns}/app:1
files:
  - name: tool
    url: "${toolUrl}/secrets-${tag}/tool?access_token=${secrets["URL token"]}"
    sha256: ${createHash("sha256").update(tool).digest("hex")}
`,
  );
  bucket = `sec-${tag}`;
  const s3 = new S3Client({
    endpoint: needEnv("AIRGAP_TEST_S3_ENDPOINT"),
    forcePathStyle: true,
    region: "us-east-1",
    requestChecksumCalculation: "WHEN_REQUIRED",
  });
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  s3.destroy();
}, 120_000);

afterAll(async () => {
  await tokenRegistry?.close();
  await closeFixtures();
  await closeAgents();
  rmSync(work, { recursive: true, force: true });
});

describe("secrets", () => {
  it("key generate: the password encrypts the key, which is written 0600, and is never shown", async () => {
    for (const name of ["cosign", "other"]) {
      const prefix = join(work, name);
      const r = await run(`key generate ${name}`, ["key", "generate", "--output-prefix", prefix]);
      expect(r.code, r.stderr).toBe(0);
      expect(statSync(`${prefix}.key`).mode & 0o777).toBe(0o600);
      expectNoSecret(`${prefix}.key`, readFileSync(`${prefix}.key`, "latin1"));
      written.push(`${prefix}.key`, `${prefix}.pub`);
    }
  });

  it("create (registry credentials, encrypted key, URL credentials), verify and import (S3 secret)", async () => {
    for (const json of [false, true]) {
      const j = json ? ["--json"] : [];
      const bundle = join(work, json ? "bundle-json" : "bundle");
      const c = await run(
        `create${json ? " --json" : ""}`,
        createArgs(bundle, ["--key", join(work, "cosign.key"), ...j]),
      );
      expect(c.code, c.stderr).toBe(0);
      written.push(bundle);
      const v = await run(`verify${json ? " --json" : ""}`, [
        "bundle",
        "verify",
        bundle,
        "--key",
        join(work, "cosign.pub"),
        ...j,
      ]);
      expect(v.code, v.stderr).toBe(0);
      const out = join(work, json ? "out-json" : "out");
      const i = await run(`import${json ? " --json" : ""}`, importArgs(bundle, out, j));
      expect(i.code, i.stderr).toBe(0);
      // the file really went to S3 (so the secret key was used)
      expect(`${i.stdout}${i.stderr}`).toContain(`/${bucket}/airgap/files/tool/any/tool`);
      written.push(out);
    }
    written.push(join(work, "cache"));
  });

  it("a token-auth registry: import into it and create from it; a wrong password fails", async () => {
    const registry = tokenRegistry!.host;
    const prefix = uniqueRepo("sec-token");
    const into = (out: string, extra: string[]) => [
      "bundle",
      "import",
      join(work, "bundle"),
      "--registry",
      `${registry}/${prefix}`,
      "--plain-http",
      "--out",
      out,
      ...extra,
    ];
    for (const json of [false, true]) {
      const j = json ? ["--json"] : [];
      const i = await run(
        `import into the token registry${json ? " --json" : ""}`,
        into(join(work, `out-token-${json}`), j),
      );
      expect(i.code, i.stderr).toBe(0);
      written.push(join(work, `out-token-${json}`));
    }
    const cfg = join(work, "token.config.yaml");
    writeFileSync(
      cfg,
      `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: secrets-token, version: 1.0.0 }
platforms: [linux/amd64]
registries: [{ host: "${registry}", plainHTTP: true }]
images:
  - ref: ${registry}/${prefix}/${ns}/app:1
`,
    );
    for (const json of [false, true]) {
      const out = join(work, `bundle-token-${json}`);
      const c = await run(`create from the token registry${json ? " --json" : ""}`, [
        "bundle",
        "create",
        "-c",
        cfg,
        "-o",
        out,
        "--cache",
        join(work, "cache-token"),
        ...(json ? ["--json"] : []),
      ]);
      expect(c.code, c.stderr).toBe(0);
      written.push(out);
      const wrong = await run(
        `import into the token registry with a wrong password${json ? " --json" : ""}`,
        into(join(work, "out-token-wrong"), json ? ["--json"] : []),
        {
          DOCKER_CONFIG: dockerConfig(
            "docker-token-wrong",
            secrets["registry password"],
            secrets["wrong token registry password"],
          ),
        },
      );
      expect(wrong.code).not.toBe(0);
      expect(wrong.stderr).toMatch(/401|unauthori[sz]ed|credentials/i);
    }
    written.push(join(work, "cache-token"));
    expect(tokenRegistry!.tokens.length).toBeGreaterThan(0);
  });

  it("failing runs name what failed and hold no secret", async () => {
    const bundle = join(work, "bundle");
    for (const json of [false, true]) {
      const j = json ? ["--json"] : [];
      const badKey = await run(
        "create with a wrong key password",
        createArgs(join(work, "never-1"), ["--key", join(work, "cosign.key"), ...j]),
        { COSIGN_PASSWORD: secrets["wrong key password"] },
      );
      expect(badKey.code).not.toBe(0);
      expect(badKey.stderr).toMatch(/password|decrypt/i);

      const badRegistry = await run(
        "create with a wrong registry password",
        createArgs(join(work, "never-2"), j),
        {
          DOCKER_CONFIG: dockerConfig("docker-wrong", secrets["wrong registry password"]),
        },
      );
      expect(badRegistry.code).not.toBe(0);
      expect(badRegistry.stderr).toMatch(/401|unauthori[sz]ed|credentials/i);

      const badVerify = await run("verify against another key", [
        "bundle",
        "verify",
        bundle,
        "--key",
        join(work, "other.pub"),
        ...j,
      ]);
      expect(badVerify.code).toBe(3);

      const badS3 = await run(
        "import with a wrong S3 secret",
        importArgs(bundle, join(work, "out-bad-s3"), j),
        {
          AWS_SECRET_ACCESS_KEY: secrets["wrong S3 secret key"],
        },
      );
      expect(badS3.code).not.toBe(0);

      const badImport = await run(
        "import with a wrong registry password",
        importArgs(bundle, join(work, "out-bad-reg"), j),
        { DOCKER_CONFIG: dockerConfig("docker-wrong", secrets["wrong registry password"]) },
      );
      expect(badImport.code).not.toBe(0);
      expect(badImport.stderr).toMatch(/401|unauthori[sz]ed|credentials/i);
    }
  });

  it("no file written by any run holds a secret", () => {
    expect(written.length).toBeGreaterThan(4);
    let files = 0;
    for (const path of written) {
      const found = statSync(path).isDirectory()
        ? filesBelow(path)
        : [{ file: path, text: readFileSync(path, "latin1") }];
      for (const { file, text } of found) {
        files++;
        expectNoSecret(file, text);
      }
    }
    expect(files).toBeGreaterThan(20);
    // and every run was checked (create, verify and import, with and without --json, and failing)
    expect(runs.length).toBeGreaterThanOrEqual(24);
  });
});
