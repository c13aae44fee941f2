/**
 * Importing an incremental bundle whose new image shares layers with an image of its base: the
 * left-out layers sit in the target under the base image's repository, and import mounts them from
 * there, or (when the registry refuses the mount) copies them inside the registry. Base then delta
 * must equal importing the full new bundle, digest for digest, tag for tag.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliResult, runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import { FaultProxy } from "../helpers/fault-proxy.js";
import {
  blobExists,
  closeFixtures,
  listBlobs,
  listTags,
  manifestDigest,
  type PushedImage,
  plainTarget,
  pushImage,
  type Target,
  tlsTarget,
  uniqueRepo,
} from "../helpers/fixtures.js";
import { closeAgents, isolatedEnv, writeBundleConfig } from "./import-helpers.js";

const source = plainTarget();
const ns = uniqueRepo("delta");
const names = ["a", "b", "c"] as const;
let work: string;
let images: Record<(typeof names)[number], PushedImage>;
const bundles = { base: "", delta: "", deltaC: "", full: "" };
const proxies: FaultProxy[] = [];

interface ImportJson {
  images: { source: string; target: string; digest: string }[];
  stats: { blobsUploaded: number; blobsMounted: number; blobsSkipped: number; retries: number };
}

async function create(name: string, refs: string[], since?: string): Promise<string> {
  const out = join(work, name);
  const args = ["bundle", "create", "-c", writeBundleConfig(work, name, refs), "-o", out];
  const r = await runCli([...args, "--cache", join(work, "cache"), ...(since ? ["--since", since] : [])]);
  expect(r.code, r.stderr).toBe(0);
  return out;
}

async function importInto(
  bundle: string,
  registry: string,
  opts: { tls?: boolean; pipe?: boolean } = {},
): Promise<CliResult & { json?: ImportJson }> {
  const args = [
    "bundle",
    "import",
    opts.pipe ? "-" : bundle,
    "--registry",
    registry,
    "--out",
    join(work, `out-${Math.random().toString(36).slice(2)}`),
    "--json",
    ...(opts.tls ? ["--ca-file", needEnv("AIRGAP_TEST_CA")] : ["--plain-http"]),
  ];
  const r = await runCli(args, {
    ...(opts.tls ? { env: isolatedEnv(work) } : {}),
    ...(opts.pipe ? { input: readFileSync(bundle) } : {}),
  });
  return r.code === 0 ? { ...r, json: JSON.parse(r.stdout) as ImportJson } : r;
}

/** Tags, manifest digests and every blob of the three images, as a registry holds them under `prefix`. */
async function holdings(t: Target, prefix: string) {
  const out: Record<string, { digest?: string; tags: string[]; blobs: string[] }> = {};
  for (const n of names) {
    const repo = `${prefix}/${ns}/${n}`;
    const blobs = await listBlobs(t, repo, "1");
    for (const b of blobs) expect(await blobExists(t, repo, b), `${b} in ${repo}`).toBe(true);
    out[n] = { digest: await manifestDigest(t, repo, "1"), tags: await listTags(t, repo), blobs };
  }
  return out;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-delta-"));
  const a = await pushImage(source, `${ns}/a`, "1", { layerSizes: [400_000, 300_000] });
  const b = await pushImage(source, `${ns}/b`, "1", { layerSizes: [200_000] });
  // c is new in the delta and shares both of a's layers
  const c = await pushImage(source, `${ns}/c`, "1", { layerSizes: [100_000], sharedLayers: a.layers });
  images = { a, b, c };
  const ref = (n: string) => `${source.host}/${ns}/${n}:1`;
  bundles.base = await create("base", [ref("a"), ref("b")]);
  bundles.delta = await create("delta.tar", [ref("a"), ref("b"), ref("c")], bundles.base);
  // only the new image: the base's item list alone says where a's layers went
  bundles.deltaC = await create("delta-c.tar", [ref("c")], bundles.base);
  bundles.full = await create("full", [ref("a"), ref("b"), ref("c")]);
}, 180_000);

afterAll(async () => {
  for (const p of proxies) await p.close();
  await closeFixtures();
  await closeAgents();
});

describe("import of an incremental bundle whose new image shares layers with the base", () => {
  it("records where the left-out layers came from in bundle.json", () => {
    const members = execFileSync("tar", ["-tf", bundles.deltaC], { encoding: "utf8" });
    for (const l of images.a.layers) expect(members).not.toContain(l.digest.slice(7));
    const inv = JSON.parse(
      execFileSync("tar", ["-xOf", bundles.deltaC, "bundle.json"], { encoding: "utf8" }),
    ) as {
      since: { omittedBlobs: string[]; holders: { name: string; blobs: string[] }[] };
    };
    const layers = images.a.layers.map((l) => l.digest);
    expect(inv.since.omittedBlobs).toEqual(expect.arrayContaining(layers));
    expect(inv.since.holders).toEqual([
      { name: `${source.host}/${ns}/a:1`, blobs: expect.arrayContaining(layers) },
    ]);
  });

  it("base then delta into registry X equals the full bundle into registry Y (every digest and tag)", async () => {
    const x = `${source.host}/${uniqueRepo("dx")}`;
    expect((await importInto(bundles.base, x)).code).toBe(0);
    const delta = await importInto(bundles.delta, x);
    expect(delta.code, delta.stderr).toBe(0);
    // a's two layers were not in the bundle and not in c's repository: mounted from a's
    expect(delta.json!.stats.blobsMounted).toBeGreaterThanOrEqual(2);

    const tls = tlsTarget();
    const y = `${tls.host}/${uniqueRepo("dy")}`;
    const full = await importInto(bundles.full, y, { tls: true });
    expect(full.code, full.stderr).toBe(0);

    const inX = await holdings(source, x.slice(source.host.length + 1));
    const inY = await holdings(tls, y.slice(tls.host.length + 1));
    expect(inX).toEqual(inY);
    for (const n of names) expect(inX[n]!.digest).toBe(images[n].digest);
    expect(inX.c!.blobs).toEqual(expect.arrayContaining(images.a.layers.map((l) => l.digest)));
  });

  it("finds the layers through the base's items when the delta carries only the new image", async () => {
    const x = `${source.host}/${uniqueRepo("dc")}`;
    expect((await importInto(bundles.base, x)).code).toBe(0);
    const r = await importInto(bundles.deltaC, x);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json!.stats.blobsMounted).toBe(2);
    const repo = `${x.slice(source.host.length + 1)}/${ns}/c`;
    expect(await manifestDigest(source, repo, "1")).toBe(images.c.digest);
    for (const b of await listBlobs(source, repo, "1")) expect(await blobExists(source, repo, b)).toBe(true);
  });

  it("copies the layers inside the registry when it refuses to mount (202, 401 or 403), from a file and from a pipe", async () => {
    for (const [mount, pipe] of [
      [false, false],
      [false, true],
      [401, false],
      [403, false],
    ] as const) {
      const proxy = await FaultProxy.start({ upstream: source.host, mount });
      proxies.push(proxy);
      const prefix = uniqueRepo(pipe ? "dpipe" : "dfile");
      const x = `${proxy.host}/${prefix}`;
      expect((await importInto(bundles.base, x)).code).toBe(0);
      proxy.counts.seen.length = 0;
      const refusedBefore = proxy.counts.mountsRefused;
      const r = await importInto(bundles.deltaC, x, { pipe });
      expect(r.code, r.stderr).toBe(0);
      expect(r.json!.stats.blobsMounted).toBe(0);
      // A 202 is asked for each shared layer; after a 401 or 403 the host is not asked to mount
      // again in the run, so a second refusal happens only when both copies had already asked.
      expect(proxy.counts.mountsRefused - refusedBefore).toBeGreaterThanOrEqual(mount === false ? 2 : 1);
      // each shared layer was read from a's repository and uploaded to c's
      for (const l of images.a.layers) {
        expect(proxy.counts.seen).toContain(`GET /v2/${prefix}/${ns}/a/blobs/${l.digest}`);
      }
      expect(r.json!.stats.blobsUploaded).toBeGreaterThanOrEqual(2);
      const repo = `${prefix}/${ns}/c`;
      expect(await manifestDigest(source, repo, "1")).toBe(images.c.digest);
      for (const b of await listBlobs(source, repo, "1"))
        expect(await blobExists(source, repo, b)).toBe(true);
    }
  });

  it("refuses, before pushing anything, when the target holds a left-out layer nowhere the base put it", async () => {
    const prefix = uniqueRepo("dnone");
    const x = `${source.host}/${prefix}`;
    const r = await importInto(bundles.deltaC, x);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("incremental on top of base");
    expect(r.stderr).toContain(images.a.layers[0]!.digest);
    expect(r.stderr).toContain(`looked in ${x}/${ns}/c, ${x}/${ns}/a`);
    expect(await manifestDigest(source, `${prefix}/${ns}/c`, "1")).toBeUndefined();
  });
});
