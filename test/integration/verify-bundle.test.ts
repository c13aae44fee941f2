import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign } from "node:crypto";
import {
  createReadStream,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { cp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openBundle } from "../../src/bundle/archive/reader.js";
import { type BundleFile, writeBundle } from "../../src/bundle/archive/writer.js";
import { formatChecksums } from "../../src/bundle/checksums.js";
import { SequentialVerifier, type VerifyReport, verifyBundle } from "../../src/bundle/verify.js";
import { UsageError } from "../../src/errors.js";

const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

interface Fixture {
  files: BundleFile[];
  layers: string[];
  config: string;
  manifest: string;
}

let work: string;
let key: { privateKey: KeyObject; publicPem: string };
let otherPublicPem: string;
let fx: Fixture;

function keyPair() {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { privateKey, publicPem: publicKey.export({ type: "spki", format: "pem" }).toString() };
}

/** SHA256SUMS.sig as cosign writes it, and a Sigstore bundle v0.3 with the same signature. */
function signatures(sums: Buffer, privateKey: KeyObject): { sig: Buffer; sigstore: Buffer } {
  const der = sign("sha256", sums, { key: privateKey, dsaEncoding: "der" });
  const sigstore = {
    mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
    verificationMaterial: { publicKey: { hint: "test" } },
    messageSignature: {
      messageDigest: { algorithm: "SHA2_256", digest: createHash("sha256").update(sums).digest("base64") },
      signature: der.toString("base64"),
    },
  };
  return { sig: Buffer.from(der.toString("base64")), sigstore: Buffer.from(JSON.stringify(sigstore)) };
}

/**
 * A small synthetic bundle: three random layers, a config, an image manifest and index.json,
 * with SHA256SUMS over them and a signature, in the order a tar bundle stores them.
 */
function buildBundle(opts: { signed?: boolean; extraRef?: string; misname?: boolean } = {}): Fixture {
  const blob = (b: Buffer) => ({ path: `blobs/sha256/${sha(b)}`, size: b.length, source: { bytes: b } });
  const layers = [randomBytes(300_000), randomBytes(5000), randomBytes(1)];
  const config = Buffer.from(
    JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }),
  );
  const desc = (mediaType: string, b: Buffer) => ({ mediaType, digest: `sha256:${sha(b)}`, size: b.length });
  const layerDescs = layers.map((l) => desc("application/vnd.oci.image.layer.v1.tar+gzip", l));
  if (opts.extraRef)
    layerDescs.push({
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest: opts.extraRef,
      size: 10,
    });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: desc("application/vnd.oci.image.config.v1+json", config),
      layers: layerDescs,
      // A referrer's subject need not be in the bundle.
      subject: {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: `sha256:${"0".repeat(64)}`,
        size: 2,
      },
    }),
  );
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          ...desc("application/vnd.oci.image.manifest.v1+json", manifest),
          annotations: { "org.opencontainers.image.ref.name": "example.test/app:1" },
        },
      ],
    }),
  );
  const meta: [string, Buffer][] = [
    ["bundle.json", Buffer.from(JSON.stringify({ format: "cinc-airgap/v1", items: [] }))],
    ["oci-layout", Buffer.from('{"imageLayoutVersion":"1.0.0"}')],
    ["index.json", index],
  ];
  const blobs = [...layers.map(blob), blob(config), blob(manifest)];
  if (opts.misname) {
    const b = randomBytes(100);
    blobs.push({ path: `blobs/sha256/${"f".repeat(64)}`, size: 100, source: { bytes: b } });
  }
  const body: BundleFile[] = [
    ...meta.map(([p, b]) => ({ path: p, size: b.length, source: { bytes: b } })),
    ...blobs,
  ];
  const sums = Buffer.from(
    formatChecksums(body.map((f) => ({ path: f.path, sha256: sha((f.source as { bytes: Buffer }).bytes) }))),
  );
  const head: BundleFile[] = [];
  if (opts.signed !== false) {
    const { sig, sigstore } = signatures(sums, key.privateKey);
    head.push({ path: "SHA256SUMS.sig", size: sig.length, source: { bytes: sig } });
    head.push({ path: "SHA256SUMS.sigstore.json", size: sigstore.length, source: { bytes: sigstore } });
  }
  head.push({ path: "SHA256SUMS", size: sums.length, source: { bytes: sums } });
  return {
    files: [...head, ...body],
    layers: layers.map((l) => `blobs/sha256/${sha(l)}`),
    config: `blobs/sha256/${sha(config)}`,
    manifest: `blobs/sha256/${sha(manifest)}`,
  };
}

let n = 0;
async function materialize(f: Fixture, form: "dir" | "tar" | "tar.zst" | "parts" = "dir"): Promise<string> {
  const path = join(work, `b${n++}${form === "dir" ? "" : form === "tar.zst" ? ".tar.zst" : ".tar"}`);
  await writeBundle(f.files, {
    path,
    format: form === "dir" ? "dir" : "tar",
    compress: form === "tar.zst" ? "zstd" : "none",
    ...(form === "parts" && { splitSize: 64 * 1024 }),
  });
  return path;
}

function codes(r: VerifyReport): [string, string][] {
  return r.problems.map((p) => [p.code, p.item]);
}

function flip(file: string, at?: number): void {
  const b = readFileSync(file);
  const i = at ?? Math.floor(b.length / 2);
  b[i] = b[i]! ^ 1;
  writeFileSync(file, b);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "verify-"));
  key = keyPair();
  otherPublicPem = keyPair().publicPem;
  fx = buildBundle();
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("verifyBundle on a good bundle", () => {
  it("verifies every form with the key", async () => {
    for (const form of ["dir", "tar", "tar.zst", "parts"] as const) {
      const path = await materialize(fx, form);
      const r = await verifyBundle(path, { publicKeyPem: key.publicPem });
      expect([form, r.ok, r.problems]).toEqual([form, true, []]);
      expect(r.signature).toBe("verified");
      expect(r.signed).toBe(true);
      expect(r.files).toBe(fx.files.length - 3);
      expect(r.blobs).toBe(5);
      expect(r.warnings).toEqual([]);
    }
    const tar = await materialize(fx, "tar.zst");
    const r = await verifyBundle(await openBundle("-", { stdin: createReadStream(tar) }), {
      publicKeyPem: key.publicPem,
    });
    expect([r.ok, r.signature, r.files]).toEqual([true, "verified", fx.files.length - 3]);
  });

  it("without a key checks integrity only and says whether a signature is carried", async () => {
    const dir = await materialize(fx);
    const r = await verifyBundle(dir, {});
    expect([r.ok, r.signature, r.signed]).toEqual([true, "not-checked", true]);
    expect(r.warnings.join()).toMatch(/authenticity not checked.*carries a signature/);
    const unsigned = await materialize(buildBundle({ signed: false }), "tar.zst");
    const u = await verifyBundle(unsigned, {});
    expect([u.ok, u.signature, u.signed]).toEqual([true, "not-checked", false]);
    expect(u.warnings.join()).toMatch(/carries no signature/);
    await expect(verifyBundle(dir, { requireSignature: true })).rejects.toBeInstanceOf(UsageError);
  });

  it("reports progress up to the total", async () => {
    const dir = await materialize(fx);
    let last: { bytes: number; totalBytes?: number } = { bytes: 0 };
    const r = await verifyBundle(dir, { concurrency: 2, onProgress: (e) => (last = e) });
    expect(r.ok).toBe(true);
    expect(last.bytes).toBe(r.bytes);
    expect(last.totalBytes).toBe(r.bytes);
  });
});

describe("verifyBundle tamper cases (directory)", () => {
  const pem = () => ({ publicKeyPem: key.publicPem });

  it("a flipped byte in a blob", async () => {
    const dir = await materialize(fx);
    flip(join(dir, fx.layers[0]!));
    const r = await verifyBundle(dir, pem());
    expect(codes(r)).toEqual([["CHECKSUM_MISMATCH", fx.layers[0]]]);
    expect(r.problems[0]!.message).toContain(fx.layers[0]!.slice(13, 25));
  });

  it("edited index.json and bundle.json", async () => {
    for (const file of ["index.json", "bundle.json"]) {
      const dir = await materialize(fx);
      writeFileSync(join(dir, file), readFileSync(join(dir, file), "utf8").replace("{", "{ "));
      expect(codes(await verifyBundle(dir, pem()))).toEqual([["CHECKSUM_MISMATCH", file]]);
    }
  });

  it("edited SHA256SUMS", async () => {
    const dir = await materialize(fx);
    const s = readFileSync(join(dir, "SHA256SUMS"), "utf8").split("\n");
    s[0] = (s[0]![0] === "0" ? "1" : "0") + s[0]!.slice(1);
    writeFileSync(join(dir, "SHA256SUMS"), s.join("\n"));
    const edited = s[0]!.slice(66);
    const withKey = await verifyBundle(dir, pem());
    expect(codes(withKey)).toEqual([
      ["SIGNATURE_INVALID", "SHA256SUMS.sig"],
      ["CHECKSUM_MISMATCH", edited],
    ]);
    expect(withKey.signature).toBe("invalid");
    expect(codes(await verifyBundle(dir, {}))).toEqual([["CHECKSUM_MISMATCH", edited]]);
  });

  it("a missing blob, which also leaves the manifest dangling", async () => {
    const dir = await materialize(fx);
    unlinkSync(join(dir, fx.layers[1]!));
    const r = await verifyBundle(dir, pem());
    expect(codes(r).sort()).toEqual(
      [
        ["MISSING_FILE", fx.layers[1]!],
        ["DANGLING_REFERENCE", fx.manifest],
      ].sort(),
    );
  });

  it("an extra file", async () => {
    const dir = await materialize(fx);
    writeFileSync(join(dir, "blobs/sha256/extra"), "junk\n");
    expect(codes(await verifyBundle(dir, pem()))).toEqual([["UNLISTED_FILE", "blobs/sha256/extra"]]);
  });

  it("a swapped signature, the wrong key, an unsigned bundle with a key", async () => {
    const dir = await materialize(fx);
    const other = buildBundle();
    const otherDir = await materialize(other);
    await cp(join(otherDir, "SHA256SUMS.sig"), join(dir, "SHA256SUMS.sig"));
    let r = await verifyBundle(dir, pem());
    expect(codes(r)).toEqual([["SIGNATURE_INVALID", "SHA256SUMS.sig"]]);
    r = await verifyBundle(otherDir, { publicKeyPem: otherPublicPem });
    expect([r.signature, codes(r)]).toEqual(["invalid", [["SIGNATURE_INVALID", "SHA256SUMS.sig"]]]);
    const unsigned = await materialize(buildBundle({ signed: false }));
    r = await verifyBundle(unsigned, pem());
    expect([r.signature, codes(r)]).toEqual(["absent", [["SIGNATURE_MISSING", "SHA256SUMS.sig"]]]);
  });

  it("a tampered Sigstore bundle alone", async () => {
    const dir = await materialize(fx);
    const j = JSON.parse(readFileSync(join(dir, "SHA256SUMS.sigstore.json"), "utf8"));
    j.messageSignature.messageDigest.digest = createHash("sha256").update("x").digest("base64");
    writeFileSync(join(dir, "SHA256SUMS.sigstore.json"), JSON.stringify(j));
    expect(codes(await verifyBundle(dir, pem()))).toEqual([
      ["SIGNATURE_INVALID", "SHA256SUMS.sigstore.json"],
    ]);
  });

  it("a dangling reference with consistent checksums, and a blob named for other content", async () => {
    const missing = `sha256:${sha("not here")}`;
    const f = buildBundle({ extraRef: missing, misname: true });
    const dir = await materialize(f);
    const r = await verifyBundle(dir, pem());
    expect(codes(r).sort()).toEqual([
      ["DANGLING_REFERENCE", f.manifest],
      ["DIGEST_MISMATCH", `blobs/sha256/${"f".repeat(64)}`],
    ]);
    expect(r.problems.find((p) => p.code === "DANGLING_REFERENCE")!.message).toContain(missing);
    const t = await materialize(f, "tar.zst");
    expect(codes(await verifyBundle(t, pem())).sort()).toEqual(codes(r).sort());
  });

  it("stops when aborted", async () => {
    const dir = await materialize(fx);
    const ac = new AbortController();
    ac.abort();
    await expect(verifyBundle(dir, { signal: ac.signal })).rejects.toThrow();
  });

  it("collects every problem instead of stopping at the first", async () => {
    const dir = await materialize(fx);
    flip(join(dir, fx.layers[0]!));
    flip(join(dir, fx.config), 0);
    writeFileSync(join(dir, "stray"), "x");
    writeFileSync(join(dir, "bundle.json"), "{}");
    const r = await verifyBundle(dir, pem());
    expect(codes(r).sort()).toEqual(
      [
        ["CHECKSUM_MISMATCH", fx.layers[0]],
        ["CHECKSUM_MISMATCH", fx.config],
        ["CHECKSUM_MISMATCH", "bundle.json"],
        ["UNLISTED_FILE", "stray"],
      ].sort(),
    );
  });
});

describe("verifyBundle tamper cases (archives and streams)", () => {
  const pem = () => ({ publicKeyPem: key.publicPem });

  it("a truncated tar, file and stream", async () => {
    const tar = await materialize(fx, "tar");
    const size = readFileSync(tar).length;
    truncateSync(tar, Math.floor((size * 2) / 3));
    const r = await verifyBundle(tar, pem());
    expect(r.ok).toBe(false);
    expect(r.problems.map((p) => p.code)).toEqual(["TRUNCATED"]);
    const s = await verifyBundle(await openBundle("-", { stdin: createReadStream(tar) }), pem());
    expect(s.problems.map((p) => p.code)).toEqual(["TRUNCATED"]);
  });

  it("a flipped byte in a blob inside tar.zst names the blob", async () => {
    const dir = await materialize(fx);
    flip(join(dir, fx.layers[1]!));
    const files = fx.files.map((f) =>
      f.path === fx.layers[1] ? { ...f, source: { file: join(dir, fx.layers[1]!) } } : f,
    );
    const t = await materialize({ ...fx, files }, "tar.zst");
    const r = await verifyBundle(t, pem());
    expect(codes(r)).toEqual([["CHECKSUM_MISMATCH", fx.layers[1]]]);
  });

  it("a damaged part of a compressed split bundle is named", async () => {
    const path = join(work, "pz.tar.zst");
    await writeBundle(fx.files, { path, format: "tar", compress: "zstd", splitSize: 64 * 1024 });
    flip(`${path}.part-0002`, 1000);
    const r = await verifyBundle(path, pem());
    expect(r.ok).toBe(false);
    expect(r.problems.map((p) => p.item)).toContain("pz.tar.zst.part-0002");
  });

  it("a damaged or missing part is named", async () => {
    const parts = await materialize(fx, "parts");
    flip(`${parts}.part-0002`, 100);
    const r = await verifyBundle(parts, pem());
    expect(r.ok).toBe(false);
    expect(r.problems.map((p) => p.item)).toContain(`${parts.split("/").pop()}.part-0002`);
    unlinkSync(`${parts}.part-0003`);
    const m = await verifyBundle(parts, pem());
    expect(codes(m)).toEqual([["TRUNCATED", `${parts.split("/").pop()}.part-0003`]]);
  });
});

describe("SequentialVerifier", () => {
  it("passes bytes through, and refuses entries before SHA256SUMS", async () => {
    const v = new SequentialVerifier({ publicKeyPem: key.publicPem });
    const blob = fx.files.find((f) => f.path === fx.layers[0])!;
    const { Readable } = await import("node:stream");
    expect(() =>
      v.accept({
        path: blob.path,
        size: blob.size,
        stream: Readable.from([(blob.source as { bytes: Buffer }).bytes]),
      }),
    ).toThrow(/before SHA256SUMS/);
  });

  it("throws at once after a bad signature", async () => {
    const { Readable } = await import("node:stream");
    const v = new SequentialVerifier({ publicKeyPem: otherPublicPem });
    const entry = (f: BundleFile) => {
      const b = (f.source as { bytes: Buffer }).bytes;
      return { path: f.path, size: b.length, stream: Readable.from([b]) };
    };
    const read = async (s: NodeJS.ReadableStream) => {
      const out: Buffer[] = [];
      for await (const c of s) out.push(c as Buffer);
      return Buffer.concat(out);
    };
    await read(v.accept(entry(fx.files[0]!)));
    await read(v.accept(entry(fx.files[1]!)));
    await expect(read(v.accept(entry(fx.files[2]!)))).rejects.toMatchObject({ code: "SIGNATURE_INVALID" });
    expect(() => v.accept(entry(fx.files[3]!))).toThrow(/does not verify/);
    expect(v.finish().signature).toBe("invalid");
  });

  it("errors the stream of a damaged entry with the entry's name, and reports it in finish()", async () => {
    const { Readable } = await import("node:stream");
    const v = new SequentialVerifier({});
    const read = async (s: NodeJS.ReadableStream) => {
      for await (const _ of s) {
      }
    };
    for (const f of fx.files) {
      let b = (f.source as { bytes: Buffer }).bytes;
      if (f.path === fx.layers[2]) b = Buffer.from([b[0]! ^ 1]);
      const s = v.accept({ path: f.path, size: b.length, stream: Readable.from([b]) });
      if (f.path === fx.layers[2])
        await expect(read(s)).rejects.toMatchObject({ code: "CHECKSUM_MISMATCH", item: fx.layers[2] });
      else await read(s);
    }
    const r = v.finish();
    expect(codes(r)).toEqual([["CHECKSUM_MISMATCH", fx.layers[2]]]);
  });
});
