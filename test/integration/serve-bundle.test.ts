/**
 * `bundle serve`: a verified bundle answers as a read-only OCI registry that skopeo pulls from with
 * digests unchanged; a tampered bundle is refused before anything is served.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, runCli } from "../helpers/cli.js";
import { closeFixtures, type PushedImage, plainTarget, pushImage, uniqueRepo } from "../helpers/fixtures.js";

const target = plainTarget();
const ns = uniqueRepo("serve");
let work: string;
let image: PushedImage;
let bundle: string;
let server: ChildProcess | undefined;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} did not answer`);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-serve-"));
  image = await pushImage(target, `${ns}/app`, "1", { layerSizes: [200_000, 1000] });
  const cfg = join(work, "c.yaml");
  writeFileSync(
    cfg,
    `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: serve, version: 1.0.0 }
registries: [{ host: "${target.host}", plainHTTP: true }]
images:
  - ref: ${target.host}/${ns}/app:1
`,
  );
  bundle = join(work, "b.tar");
  const r = await runCli(["bundle", "create", "-c", cfg, "-o", bundle, "--cache", join(work, "cache")]);
  expect(r.code, r.stderr).toBe(0);
});

afterAll(async () => {
  server?.kill("SIGTERM");
  await closeFixtures();
});

describe("bundle serve", () => {
  it("serves manifests, blobs and tags read-only; skopeo copies out with the same digest", async () => {
    const port = await freePort();
    server = spawn(process.execPath, [CLI, "bundle", "serve", bundle, "--listen", `127.0.0.1:${port}`], {
      stdio: "ignore",
    });
    const base = `http://127.0.0.1:${port}`;
    await waitFor(`${base}/v2/`);
    const repo = `${target.host}/${ns}/app`;
    const tags = (await (await fetch(`${base}/v2/${repo}/tags/list`)).json()) as { tags: string[] };
    expect(tags.tags).toEqual(["1"]);
    const manifest = await fetch(`${base}/v2/${repo}/manifests/1`);
    expect(manifest.headers.get("docker-content-digest")).toBe(image.digest);
    expect(Buffer.from(await manifest.arrayBuffer()).equals(image.manifestBytes)).toBe(true);
    const put = await fetch(`${base}/v2/${repo}/manifests/2`, { method: "PUT", body: "{}" });
    expect(put.status).toBe(405);
    const dest = `${target.host}/${ns}/copied:1`;
    execFileSync("skopeo", [
      "copy",
      "--quiet",
      "--preserve-digests",
      "--src-tls-verify=false",
      "--dest-tls-verify=false",
      // the source host is not a valid path component: a unique suffix of the repository works
      `docker://127.0.0.1:${port}/${ns}/app:1`,
      `docker://${dest}`,
    ]);
    const raw = execFileSync("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${dest}`]);
    expect(raw.equals(image.manifestBytes)).toBe(true);
  });

  it("refuses to serve a bundle that does not verify (exit 3)", async () => {
    const bad = join(work, "bad.tar");
    const bytes = readFileSync(bundle);
    bytes[bytes.length - 4096] = (bytes[bytes.length - 4096] ?? 0) ^ 0xff;
    writeFileSync(bad, bytes);
    const port = await freePort();
    const r = await runCli(["bundle", "serve", bad, "--listen", `127.0.0.1:${port}`], {
      killAfterMs: 20_000,
    });
    expect(r.code).toBe(3);
  });
});
