/**
 * Publishing profiles to the HTTP raw repository test server (nginx WebDAV, Basic auth): objects
 * read back and hashed, sha256 sidecars, a re-import that uploads nothing, credentials refused clearly.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IntegrityError, RemoteError } from "../../src/errors.js";
import { publishProfiles } from "../../src/profiles/publish.js";
import { parseNetrc } from "../../src/store/http-artifacts.js";
import { openArtifactRepository } from "../../src/store/open-artifacts.js";
import { needEnv } from "../helpers/env.js";

const prefix = `site-${process.pid}-${Date.now().toString(36)}`;
let base: string;
let env: NodeJS.ProcessEnv;
let dir: string;
const files: { name: string; version: string; tarPath: string; sha256: string; size: number }[] = [];

function sha256(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

async function getRaw(url: string): Promise<{ status: number; body: Buffer }> {
  const auth = Buffer.from(
    `${needEnv("AIRGAP_TEST_DAV_USER")}:${needEnv("AIRGAP_TEST_DAV_PASSWORD")}`,
  ).toString("base64");
  const res = await fetch(url, { headers: { authorization: `Basic ${auth}` } });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}

beforeAll(async () => {
  base = `${needEnv("AIRGAP_TEST_DAV_URL")}/${prefix}/`;
  env = {
    AIRGAP_ARTIFACTS_USER: needEnv("AIRGAP_TEST_DAV_USER"),
    AIRGAP_ARTIFACTS_PASSWORD: needEnv("AIRGAP_TEST_DAV_PASSWORD"),
  };
  dir = await mkdtemp(path.join(tmpdir(), "airgap-http-"));
  for (const [name, version, size] of [
    ["ssh-baseline", "2.8.0", 30_000],
    ["k8s-profile", "0.4.1", 3 * 1024 * 1024 + 7],
  ] as const) {
    const data = randomBytes(size);
    const tarPath = path.join(dir, `${name}-${version}.tar.gz`);
    await writeFile(tarPath, data);
    files.push({ name, version, tarPath, sha256: sha256(data), size });
  }
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("HTTP artifact repository", () => {
  it("publishes profiles with sha256 sidecars and index.json, and re-import uploads nothing", async () => {
    const repo = await openArtifactRepository(base, { env });
    const res = await publishProfiles(files, repo);
    expect(res.uploaded).toHaveLength(3);
    for (const f of files) {
      const key = `profiles/${f.name}/${f.version}/${f.name}-${f.version}.tar.gz`;
      const url = `${base}${key}`;
      expect(res.urls[key]).toBe(url);
      const got = await getRaw(url);
      expect(got.status).toBe(200);
      expect(sha256(got.body)).toBe(f.sha256);
      const side = await getRaw(`${url}.sha256`);
      expect(side.body.toString("utf8")).toBe(`${f.sha256}  ${f.name}-${f.version}.tar.gz\n`);
    }
    const index = JSON.parse((await getRaw(`${base}profiles/index.json`)).body.toString("utf8"));
    expect(index.profiles.map((p: { name: string }) => p.name)).toEqual(["k8s-profile", "ssh-baseline"]);
    expect(index.profiles[1]).toEqual({
      name: "ssh-baseline",
      version: "2.8.0",
      sha256: files[0]!.sha256,
      url: `${base}profiles/ssh-baseline/2.8.0/ssh-baseline-2.8.0.tar.gz`,
    });

    const again = await publishProfiles(files, repo);
    expect(again.uploaded).toEqual([]);
    expect(again.skipped).toHaveLength(3);

    // a later import of one more profile keeps the earlier entries in the index
    const extra = randomBytes(100);
    const more = await publishProfiles(
      [{ name: "extra", version: "1.0.0", sha256: sha256(extra), size: 100, stream: Readable.from([extra]) }],
      repo,
    );
    expect(more.uploaded).toEqual(["profiles/extra/1.0.0/extra-1.0.0.tar.gz", "profiles/index.json"]);
    const index2 = JSON.parse((await getRaw(`${base}profiles/index.json`)).body.toString("utf8"));
    expect(index2.profiles.map((p: { name: string }) => p.name)).toEqual([
      "extra",
      "k8s-profile",
      "ssh-baseline",
    ]);
  });

  it("takes credentials from a netrc file", async () => {
    const netrc = path.join(dir, "netrc");
    const host = new URL(base).hostname;
    await writeFile(
      netrc,
      `machine ${host}\n  login ${needEnv("AIRGAP_TEST_DAV_USER")}\n  password ${needEnv("AIRGAP_TEST_DAV_PASSWORD")}\n`,
    );
    expect(parseNetrc(`machine a login u password p\ndefault login d password q`).get("a")).toEqual({
      login: "u",
      password: "p",
    });
    const repo = await openArtifactRepository(`${base}netrc/`, { netrcFile: netrc, env: {} });
    const data = randomBytes(64);
    await repo.put("x.bin", Readable.from([data]), { sha256: sha256(data), size: 64 });
    expect(await repo.exists("x.bin", sha256(data), 64)).toBe(true);
  });

  it("names the URL and the credentials to set when the server refuses them", async () => {
    const repo = await openArtifactRepository(base, {
      env: { AIRGAP_ARTIFACTS_USER: "nobody", AIRGAP_ARTIFACTS_PASSWORD: "wrong" },
    });
    const err = await repo.exists("profiles/index.json", "0".repeat(64), 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as RemoteError).status).toBe(401);
    expect((err as Error).message).toContain(`${base}profiles/index.json`);
    expect((err as Error).message).toContain("AIRGAP_ARTIFACTS_USER");
  });

  it("refuses content whose sha256 differs and leaves nothing that exists() trusts", async () => {
    const repo = await openArtifactRepository(base, { env });
    const data = randomBytes(2000);
    const err = await repo
      .put("bad/x.bin", Readable.from([data]), { sha256: "cd".repeat(32), size: data.length })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((await getRaw(`${base}bad/x.bin`)).status).toBe(404);
    expect((await getRaw(`${base}bad/x.bin.sha256`)).status).toBe(404);
  });
});
