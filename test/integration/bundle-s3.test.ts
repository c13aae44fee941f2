/**
 * Bundles in object storage, on the real Ceph RGW: `bundle create -o s3://…` (tar, tar.zst, split
 * parts), then verify, inspect, diff, report, import and serve reading `s3://…` directly; a tampered
 * or truncated object is refused with exit 3 naming what failed; a failed upload leaves no object.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openBundle } from "../../src/bundle/archive/reader.js";
import { writeBundle } from "../../src/bundle/archive/writer.js";
import { verifyBundle } from "../../src/bundle/verify.js";
import { CLI, runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import { FaultProxy } from "../helpers/fault-proxy.js";
import {
  closeFixtures,
  manifestDigest,
  plainTarget,
  pushImage,
  pushIndex,
  uniqueRepo,
} from "../helpers/fixtures.js";
import { generateKey, PASSWORD, writeBundleConfig } from "./import-helpers.js";

const target = plainTarget();
const ns = uniqueRepo("s3-bundle");
const bucket = `airgap-bundles-${process.pid}-${Date.now().toString(36)}`;
let endpoint: string;
let raw: S3Client;
let work: string;
let cfg: string;
let cache: string;
let keys: { key: string; pub: string };
let single: { digest: string };
let multiImported: string | undefined;

/** The child's S3 settings: only the endpoint and credentials of the test RGW. */
function s3Env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    AWS_ENDPOINT_URL_S3: endpoint,
    AWS_ENDPOINT_URL: undefined,
    AWS_CA_BUNDLE: undefined,
    AWS_PROFILE: undefined,
    COSIGN_PASSWORD: PASSWORD,
    AIRGAP_REQUIRE_SIGNATURE: undefined,
    ...extra,
  };
}

async function keysUnder(prefix: string): Promise<string[]> {
  const r = await raw.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (r.Contents ?? []).map((o) => o.Key!).sort();
}

async function openUploads(): Promise<string[]> {
  const r = await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return (r.Uploads ?? []).map((u) => u.Key!);
}

async function getObject(key: string): Promise<Buffer> {
  const r = await raw.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await r.Body!.transformToByteArray());
}

async function putObject(key: string, body: Buffer): Promise<void> {
  await raw.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: body.length }));
}

beforeAll(async () => {
  endpoint = needEnv("AIRGAP_TEST_S3_ENDPOINT");
  raw = new S3Client({
    endpoint,
    forcePathStyle: true,
    region: process.env.AWS_REGION ?? "us-east-1",
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
  work = mkdtempSync(join(tmpdir(), "airgap-s3-bundle-"));
  // a layer of 3 MiB, so that --split 1M makes several parts and a blob spans two of them
  single = await pushImage(target, `${ns}/single`, "1.0", { layerSizes: [3 * 1024 * 1024 + 777, 30_000] });
  await pushIndex(target, `${ns}/multi`, "2", { layerSizes: [20_000] });
  keys = await generateKey(work, "cosign");
  cfg = writeBundleConfig(work, "s3", [`${target.host}/${ns}/single:1.0`, `${target.host}/${ns}/multi:2`]);
  cache = join(work, "cache");
});

afterAll(async () => {
  server?.kill("SIGTERM");
  await closeFixtures();
  if (work) rmSync(work, { recursive: true, force: true });
});

let server: ChildProcess | undefined;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

async function create(out: string, ...more: string[]) {
  return runCli(["bundle", "create", "-c", cfg, "-o", out, "--cache", cache, "--key", keys.key, ...more], {
    env: s3Env(),
  });
}

async function importInto(input: string, prefix: string) {
  const r = await runCli(
    [
      "bundle",
      "import",
      input,
      "--registry",
      `${target.host}/${prefix}`,
      "--plain-http",
      "--key",
      keys.pub,
      "--out",
      join(work, `out-${prefix}`),
    ],
    { env: s3Env() },
  );
  expect(r.code, r.stderr).toBe(0);
  expect(await manifestDigest(target, `${prefix}/${ns}/single`, "1.0")).toBe(single.digest);
  // the index is filtered to linux/amd64 by the config, so its digest is the bundle's own: every
  // form of the bundle must import the same one
  const m = await manifestDigest(target, `${prefix}/${ns}/multi`, "2");
  expect(m).toMatch(/^sha256:/);
  multiImported ??= m;
  expect(m).toBe(multiImported);
}

describe("bundles in S3 (Ceph RGW)", () => {
  it("create -o s3://BUCKET/KEY.tar uploads one object, no upload left open; verify, inspect, report and import read it", async () => {
    const c = await create(`s3://${bucket}/drop/b1.tar`);
    expect(c.code, c.stderr).toBe(0);
    expect(await keysUnder("drop/")).toEqual(["drop/b1.tar"]);
    expect(await openUploads()).toEqual([]);

    // the object is the bundle a local create writes: a local copy verifies too
    const local = join(work, "b1-copy.tar");
    writeFileSync(local, await getObject("drop/b1.tar"));
    const lv = await runCli(["bundle", "verify", local, "--key", keys.pub], { env: s3Env() });
    expect(lv.code, lv.stderr).toBe(0);

    const v = await runCli(["bundle", "verify", `s3://${bucket}/drop/b1.tar`, "--key", keys.pub, "--json"], {
      env: s3Env(),
    });
    expect(v.code, v.stderr).toBe(0);
    const report = JSON.parse(v.stdout) as { ok: boolean; signature: string; blobs: number; bytes: number };
    expect(report).toMatchObject({ ok: true, signature: "verified" });
    expect(report.bytes).toBeGreaterThan(3 * 1024 * 1024);

    const i = await runCli(["bundle", "inspect", `s3://${bucket}/drop/b1.tar`, "--json"], { env: s3Env() });
    expect(i.code, i.stderr).toBe(0);
    expect(i.stdout).toContain(`${ns}/single:1.0`);

    const rep = await runCli(["bundle", "report", `s3://${bucket}/drop/b1.tar`, "--key", keys.pub], {
      env: s3Env(),
    });
    expect(rep.code, rep.stderr).toBe(0);
    expect(rep.stdout).toContain(single.digest);

    await importInto(`s3://${bucket}/drop/b1.tar`, `${ns}-imp-tar`);

    // a second create to the same key is refused before any work, and --force replaces it
    const again = await create(`s3://${bucket}/drop/b1.tar`);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already exists.*--force/);
    const forced = await create(`s3://${bucket}/drop/b1.tar`, "--force");
    expect(forced.code, forced.stderr).toBe(0);
  });

  it("a .tar.zst in S3 is streamed: verify and import", async () => {
    const c = await create(`s3://${bucket}/drop/b2.tar.zst`);
    expect(c.code, c.stderr).toBe(0);
    expect((await getObject("drop/b2.tar.zst")).subarray(0, 4)).toEqual(
      Buffer.from([0x28, 0xb5, 0x2f, 0xfd]),
    );
    const v = await runCli(["bundle", "verify", `s3://${bucket}/drop/b2.tar.zst`, "--key", keys.pub], {
      env: s3Env(),
    });
    expect(v.code, v.stderr).toBe(0);
    await importInto(`s3://${bucket}/drop/b2.tar.zst`, `${ns}-imp-zst`);
  });

  it("two --shard I/2 imports started together from one s3:// object push each item once and give the unsharded digests", async () => {
    const prefix = `${ns}-imp-shards`;
    const shard = (spec: string) =>
      runCli(
        [
          "bundle",
          "import",
          `s3://${bucket}/drop/b1.tar`,
          "--registry",
          `${target.host}/${prefix}`,
          "--plain-http",
          "--key",
          keys.pub,
          "--shard",
          spec,
          "--out",
          join(work, `out-shard-${spec.replace("/", "-")}`),
          "--json",
        ],
        { env: s3Env() },
      );
    const runs = await Promise.all([shard("0/2"), shard("1/2")]);
    const owned: string[] = [];
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { shard: { index: number; items: string[] } };
      owned.push(...out.shard.items);
    }
    expect(owned.sort()).toEqual([`${target.host}/${ns}/multi:2`, `${target.host}/${ns}/single:1.0`].sort());
    expect(await manifestDigest(target, `${prefix}/${ns}/single`, "1.0")).toBe(single.digest);
    const m = await manifestDigest(target, `${prefix}/${ns}/multi`, "2");
    multiImported ??= m;
    expect(m).toBe(multiImported);
  });

  it("--split writes parts as objects with their parts manifest; verify, diff and import read them through it", async () => {
    const c = await create(`s3://${bucket}/split/b3.tar`, "--split", "1M");
    expect(c.code, c.stderr).toBe(0);
    const names = await keysUnder("split/");
    expect(names).toContain("split/b3.tar.parts.json");
    const parts = names.filter((n) => /\.part-\d{4}$/.test(n));
    expect(parts.length).toBeGreaterThanOrEqual(4);
    expect(parts[0]).toBe("split/b3.tar.part-0001");
    const manifest = JSON.parse((await getObject("split/b3.tar.parts.json")).toString("utf8")) as {
      parts: { name: string; size: number }[];
    };
    expect(manifest.parts.map((p) => `split/${p.name}`)).toEqual(parts);
    expect(await openUploads()).toEqual([]);

    for (const input of [`s3://${bucket}/split/b3.tar`, `s3://${bucket}/split/b3.tar.parts.json`]) {
      const v = await runCli(["bundle", "verify", input, "--key", keys.pub], { env: s3Env() });
      expect(v.code, `${input}: ${v.stderr}`).toBe(0);
    }
    const d = await runCli(
      ["bundle", "diff", `s3://${bucket}/drop/b1.tar`, `s3://${bucket}/split/b3.tar`, "--json"],
      {
        env: s3Env(),
      },
    );
    expect(d.code, d.stderr).toBe(0);
    const diff = JSON.parse(d.stdout) as { added: unknown[]; removed: unknown[]; changed: unknown[] };
    expect([diff.added, diff.removed, diff.changed]).toEqual([[], [], []]);
    await importInto(`s3://${bucket}/split/b3.tar`, `${ns}-imp-split`);

    // a damaged part is refused (exit 3) and named
    const second = await getObject("split/b3.tar.part-0002");
    second[1000] = second[1000]! ^ 0xff;
    await putObject("split/b3.tar.part-0002", second);
    const bad = await runCli(["bundle", "verify", `s3://${bucket}/split/b3.tar`, "--key", keys.pub], {
      env: s3Env(),
    });
    expect(bad.code, bad.stderr).toBe(3);
    expect(bad.stdout + bad.stderr).toMatch(/b3\.tar\.part-0002/);
  });

  it("a tampered object is refused with exit 3 naming the blob, by verify and by import; a truncated one too", async () => {
    const good = await getObject("drop/b1.tar");
    const local = join(work, "b1-for-offsets.tar");
    writeFileSync(local, good);
    const reader = await openBundle(local);
    const layerPath = (await reader.list())
      .filter((f) => f.path.startsWith("blobs/"))
      .sort((a, b) => b.size - a.size)[0]!.path;
    const [range] = await (reader as unknown as { ranges(p: string): Promise<{ start: number }[]> }).ranges(
      layerPath,
    );
    await reader.close();
    const bad = Buffer.from(good);
    bad[range!.start + 4096] = bad[range!.start + 4096]! ^ 0x01;
    await putObject("drop/tampered.tar", bad);

    const v = await runCli(["bundle", "verify", `s3://${bucket}/drop/tampered.tar`, "--key", keys.pub], {
      env: s3Env(),
    });
    expect(v.code, v.stderr).toBe(3);
    expect(v.stdout + v.stderr).toContain(layerPath);

    const imp = await runCli(
      [
        "bundle",
        "import",
        `s3://${bucket}/drop/tampered.tar`,
        "--registry",
        `${target.host}/${ns}-imp-bad`,
        "--plain-http",
        "--key",
        keys.pub,
        "--out",
        join(work, "out-bad"),
      ],
      { env: s3Env() },
    );
    expect(imp.code, imp.stderr).toBe(3);
    expect(await manifestDigest(target, `${ns}-imp-bad/${ns}/single`, "1.0")).toBeUndefined();

    await putObject("drop/truncated.tar", good.subarray(0, Math.floor(good.length / 2)));
    const t = await runCli(["bundle", "verify", `s3://${bucket}/drop/truncated.tar`], { env: s3Env() });
    expect(t.code, t.stderr).toBe(3);
    expect(t.stdout + t.stderr).toMatch(/TRUNCATED/);
  });

  it("a missing object, a missing bucket and refused credentials are clear errors", async () => {
    const missing = await runCli(["bundle", "verify", `s3://${bucket}/nothing/here.tar`], { env: s3Env() });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`bundle s3://${bucket}/nothing/here.tar does not exist`);

    await putObject("unpacked/oci-layout", Buffer.from("{}"));
    const prefix = await runCli(["bundle", "verify", `s3://${bucket}/unpacked`], { env: s3Env() });
    expect(prefix.code).toBe(2);
    expect(prefix.stderr).toMatch(/is a prefix holding objects, not a bundle/);

    const noBucket = await runCli(["bundle", "inspect", "s3://no-such-bucket-airgap/b.tar"], {
      env: s3Env(),
    });
    expect(noBucket.code).toBe(2);
    expect(noBucket.stderr).toMatch(/bucket no-such-bucket-airgap does not exist/);

    const denied = await runCli(["bundle", "verify", `s3://${bucket}/drop/b1.tar`], {
      env: s3Env({ AWS_ACCESS_KEY_ID: "NOSUCHKEY", AWS_SECRET_ACCESS_KEY: "wrong" }),
    });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/access denied.*credentials/);

    const noCreate = await create("s3://no-such-bucket-airgap/b.tar");
    expect(noCreate.code).toBe(2);
    expect(noCreate.stderr).toMatch(/bucket no-such-bucket-airgap does not exist/);
  });

  it("an S3 name that is not BUCKET/KEY, and an endpoint that does not answer, are named as given", async () => {
    for (const args of [
      ["bundle", "verify", "s3://ab"],
      ["bundle", "create", "-c", cfg, "-o", "s3://ab", "--dry-run", "--offline"],
    ]) {
      const r = await runCli(args, { env: s3Env() });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.trim()).toBe(
        "airgap: s3://ab is not s3://BUCKET/KEY (a bucket of 3+ characters and an object key, not a prefix)",
      );
    }
    // a port nothing listens on
    const closed = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, "127.0.0.1", () => {
        const { port } = srv.address() as AddressInfo;
        srv.close(() => resolve(port));
      });
    });
    const down = await runCli(["bundle", "verify", `s3://${bucket}/drop/b1.tar`], {
      env: s3Env({ AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${closed}` }),
    });
    expect(down.code).toBe(1);
    expect(down.stderr).toContain(`cannot reach the S3 endpoint http://127.0.0.1:${closed} (ECONNREFUSED)`);
    expect(down.stderr).toContain("--s3-endpoint or AWS_ENDPOINT_URL_S3");
  });

  it("reads through the TLS front with the CA from AWS_CA_BUNDLE, and says how to trust it without", async () => {
    const tls = needEnv("AIRGAP_TEST_S3_TLS_ENDPOINT");
    const ok = await runCli(["bundle", "verify", `s3://${bucket}/drop/b1.tar`, "--key", keys.pub], {
      env: s3Env({ AWS_ENDPOINT_URL_S3: tls, AWS_CA_BUNDLE: needEnv("AIRGAP_TEST_CA") }),
    });
    expect(ok.code, ok.stderr).toBe(0);
    const flag = await runCli(
      [
        "bundle",
        "inspect",
        `s3://${bucket}/drop/b1.tar`,
        "--s3-endpoint",
        tls,
        "--ca-file",
        needEnv("AIRGAP_TEST_CA"),
      ],
      { env: s3Env({ AWS_ENDPOINT_URL_S3: undefined }) },
    );
    expect(flag.code, flag.stderr).toBe(0);
    const untrusted = await runCli(["bundle", "verify", `s3://${bucket}/drop/b1.tar`], {
      env: s3Env({ AWS_ENDPOINT_URL_S3: tls, NODE_EXTRA_CA_CERTS: "/dev/null", SSL_CERT_FILE: "/dev/null" }),
    });
    expect(untrusted.code).not.toBe(0);
    expect(untrusted.stderr).toMatch(/not trusted.*--ca-file/);
  });

  it("a failed upload leaves no object and no open multipart upload; a failed split leaves no part", async () => {
    // a file that is shorter than declared makes the tar writer fail after 20 MiB were streamed
    const big = join(work, "big.bin");
    writeFileSync(big, Buffer.alloc(20 * 1024 * 1024, 7));
    const files = [
      { path: "oci-layout", size: 2, source: { bytes: Buffer.from("{}") } },
      { path: "blobs/sha256/aa", size: 40 * 1024 * 1024, source: { file: big } },
    ];
    const s3 = { endpoint };
    await expect(
      writeBundle(files, { path: `s3://${bucket}/fail/one.tar`, format: "tar", compress: "none" }, { s3 }),
    ).rejects.toThrow(/has 20971520 bytes, expected 41943040/);
    await expect(
      writeBundle(
        files,
        {
          path: `s3://${bucket}/fail/split.tar`,
          format: "tar",
          compress: "none",
          splitSize: 6 * 1024 * 1024,
        },
        { s3 },
      ),
    ).rejects.toThrow(/expected 41943040/);
    expect(await keysUnder("fail/")).toEqual([]);
    expect(await openUploads()).toEqual([]);
    expect(readFileSync(big).length).toBe(20 * 1024 * 1024);
  });

  it("serve reads an s3:// tar on demand and answers with the image's digest", async () => {
    const port = await freePort();
    server = spawn(
      process.execPath,
      [
        CLI,
        "bundle",
        "serve",
        `s3://${bucket}/drop/b1.tar`,
        "--key",
        keys.pub,
        "--listen",
        `127.0.0.1:${port}`,
      ],
      { stdio: "ignore", env: { ...process.env, ...s3Env() } as NodeJS.ProcessEnv },
    );
    const base = `http://127.0.0.1:${port}`;
    let up = false;
    for (let i = 0; i < 200 && !up; i++) {
      up = await fetch(`${base}/v2/`).then(
        (r) => r.ok,
        () => false,
      );
      if (!up) await new Promise((r) => setTimeout(r, 100));
    }
    expect(up).toBe(true);
    const manifest = await fetch(`${base}/v2/${target.host}/${ns}/single/manifests/1.0`);
    expect(manifest.status).toBe(200);
    expect(manifest.headers.get("docker-content-digest")).toBe(single.digest);
    server.kill("SIGTERM");
    server = undefined;
  });

  it("an interrupted create -o s3:// aborts its multipart upload: no object, no open upload (exit 130)", async () => {
    const big = await pushImage(target, `${ns}/big`, "1", { layerSizes: [160 * 1024 * 1024] });
    const bigCfg = writeBundleConfig(work, "s3-big", [`${target.host}/${ns}/big:1`]);
    const bigCache = join(work, "cache-big");
    // pull first, so that the interrupted run spends its time uploading
    const warm = await runCli([
      "bundle",
      "create",
      "-c",
      bigCfg,
      "-o",
      join(work, "big.tar"),
      "--cache",
      bigCache,
    ]);
    expect(warm.code, warm.stderr).toBe(0);
    let child: ChildProcess | undefined;
    const run = runCli(
      ["bundle", "create", "-c", bigCfg, "-o", `s3://${bucket}/int/big.tar`, "--cache", bigCache],
      {
        env: s3Env(),
        onSpawn: (c) => {
          child = c;
        },
      },
    );
    // interrupt once the multipart upload exists on the server
    let seen = false;
    for (let i = 0; i < 300 && !seen; i++) {
      seen = (await openUploads()).includes("int/big.tar");
      if (!seen) await new Promise((r) => setTimeout(r, 50));
    }
    expect(seen).toBe(true);
    child!.kill("SIGINT");
    const r = await run;
    expect(r.code, r.stderr).toBe(130);
    expect(await keysUnder("int/")).toEqual([]);
    expect(await openUploads()).toEqual([]);
    expect(big.digest).toMatch(/^sha256:/);
  });

  it("a ranged read cut off mid-object (reset, close, short body) resumes where it stopped", async () => {
    for (const kind of ["reset", "truncate", "wrong-length"] as const) {
      let faulted = false;
      const proxy = await FaultProxy.start({
        upstream: new URL(endpoint).host,
        // the first GET of the big layer (a range of 2 MiB or more) is cut at half
        schedule: (r) => {
          const m = /^bytes=(\d+)-(\d+)$/.exec(r.range ?? "");
          if (faulted || r.method !== "GET" || !m || Number(m[2]) - Number(m[1]) < 2 * 1024 * 1024)
            return undefined;
          faulted = true;
          return { kind, at: 0.5 };
        },
      });
      try {
        const report = await verifyBundle(`s3://${bucket}/drop/b1.tar`, {
          s3: { endpoint: `http://${proxy.host}` },
        });
        expect(report.problems, kind).toEqual([]);
        expect(report.ok).toBe(true);
        expect(proxy.counts.faults[kind], kind).toBe(1);
      } finally {
        await proxy.close();
      }
    }
  });
});
