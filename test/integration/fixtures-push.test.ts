/**
 * The fixtures and the test registries, checked against an independent reader: every kind of test
 * content is pushed with test/helpers/fixtures.ts and read back with skopeo, byte for byte.
 */
import { execFile } from "node:child_process";
import { generateKeyPairSync, verify } from "node:crypto";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, test } from "vitest";
import { needEnv } from "../helpers/env.js";
import {
  closeFixtures,
  cosignTag,
  ecdsaSigner,
  getBlob,
  listBlobs,
  listStoredBlobs,
  listTags,
  MT,
  manifestDigest,
  mtlsTarget,
  plainTarget,
  pushArtifact,
  pushCosignSignature,
  pushImage,
  pushIndex,
  randomTarSize,
  sha256,
  type Target,
  tlsTarget,
  uniqueRepo,
} from "../helpers/fixtures.js";

const run = promisify(execFile);

/** skopeo's view of a manifest: the raw bytes, hashed. */
async function skopeoRaw(t: Target, ref: string): Promise<{ digest: string; doc: Record<string, unknown> }> {
  const args = ["inspect", "--raw"];
  if (t.scheme === "http") args.push("--tls-verify=false");
  else if (t.cert) args.push("--cert-dir", path.join(needEnv("AIRGAP_TEST_STATE"), "certs", "mtls.d"));
  else args.push("--cert-dir", path.join(needEnv("AIRGAP_TEST_STATE"), "certs", "certs.d"));
  if (t.auth) args.push("--creds", `${t.auth.user}:${t.auth.password}`);
  args.push(`docker://${t.host}/${ref}`);
  const { stdout } = await run("skopeo", args, { encoding: "buffer", maxBuffer: 16 * 1024 * 1024 });
  return { digest: sha256(stdout), doc: JSON.parse(stdout.toString("utf8")) as Record<string, unknown> };
}

afterAll(closeFixtures);

const targets: [string, () => Target][] = [
  ["plain HTTP registry", plainTarget],
  ["TLS registry with Basic auth", tlsTarget],
];

describe.each(targets)("fixtures on the %s", (_name, target) => {
  test("OCI image: skopeo reads the same manifest, config and layer sizes", async () => {
    const t = target();
    const repo = uniqueRepo("oci-image");
    const img = await pushImage(t, repo, "v1", { layerSizes: [1000, 3 * 1024 * 1024], format: "oci" });
    expect(img.mediaType).toBe(MT.ociManifest);
    expect(img.layers.map((l) => l.size)).toEqual([randomTarSize(1000), randomTarSize(3 * 1024 * 1024)]);
    expect(img.layers.every((l) => l.mediaType === MT.ociLayer && l.diffId === l.digest)).toBe(true);

    const seen = await skopeoRaw(t, `${repo}:v1`);
    expect(seen.digest).toBe(img.digest);
    expect(await manifestDigest(t, repo, "v1")).toBe(img.digest);
    const config = JSON.parse((await getBlob(t, repo, img.config.digest)).toString("utf8"));
    expect(config.rootfs.diff_ids).toEqual(img.layers.map((l) => l.diffId));
    expect(await listBlobs(t, repo, "v1")).toEqual(
      [img.config.digest, ...img.layers.map((l) => l.digest)].sort(),
    );
  });

  test("Docker v2s2 image with gzip level 0 layers", async () => {
    const t = target();
    const repo = uniqueRepo("docker-image");
    const img = await pushImage(t, repo, "v2s2", { layerSizes: [2048, 100_000], format: "docker" });
    expect(img.mediaType).toBe(MT.dockerManifest);
    expect(img.layers.every((l) => l.mediaType === MT.dockerLayer && l.diffId !== l.digest)).toBe(true);
    const seen = await skopeoRaw(t, `${repo}:v2s2`);
    expect(seen.digest).toBe(img.digest);
    expect(seen.doc.mediaType).toBe(MT.dockerManifest);
  });

  test("OCI index and Docker manifest list for linux/amd64 and linux/arm64/v8", async () => {
    const t = target();
    const repo = uniqueRepo("multiarch");
    const oci = await pushIndex(t, repo, "oci", { layerSizes: [4096], format: "oci" });
    const docker = await pushIndex(t, repo, "docker", { layerSizes: [4096], format: "docker" });
    for (const idx of [oci, docker]) {
      const tag = idx === oci ? "oci" : "docker";
      const seen = await skopeoRaw(t, `${repo}:${tag}`);
      expect(seen.digest).toBe(idx.digest);
      const manifests = seen.doc.manifests as { digest: string; platform: Record<string, string> }[];
      expect(manifests.map((m) => m.platform)).toEqual([
        { os: "linux", architecture: "amd64" },
        { os: "linux", architecture: "arm64", variant: "v8" },
      ]);
      for (const child of idx.children) {
        expect((await skopeoRaw(t, `${repo}@${child.digest}`)).digest).toBe(child.digest);
      }
    }
    expect(oci.mediaType).toBe(MT.ociIndex);
    expect(docker.mediaType).toBe(MT.dockerList);
  });

  test("images sharing base layers across repositories", async () => {
    const t = target();
    const base = await pushImage(t, uniqueRepo("base"), "1", { layerSizes: [10_000, 20_000] });
    const repo = uniqueRepo("app");
    const app = await pushImage(t, repo, "1", { layerSizes: [5000], sharedLayers: base.layers });
    expect(app.layers.slice(0, 2).map((l) => l.digest)).toEqual(base.layers.map((l) => l.digest));
    const doc = (await skopeoRaw(t, `${repo}:1`)).doc as { layers: { digest: string }[] };
    expect(doc.layers.map((l) => l.digest)).toEqual(app.layers.map((l) => l.digest));
  });

  test("cosign signature tag with a real ECDSA signature over the simple-signing payload", async () => {
    const t = target();
    const repo = uniqueRepo("signed");
    const img = await pushImage(t, repo, "1", { layerSizes: [512] });
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const sig = await pushCosignSignature(t, repo, img.digest, { signer: ecdsaSigner(privateKey) });
    expect(await listTags(t, repo)).toEqual(["1", cosignTag(img.digest)].sort());

    const seen = await skopeoRaw(t, `${repo}:${cosignTag(img.digest)}`);
    expect(seen.digest).toBe(sig.digest);
    const layer = (
      seen.doc.layers as { mediaType: string; digest: string; annotations: Record<string, string> }[]
    )[0]!;
    expect(layer.mediaType).toBe(MT.cosignSimpleSigning);
    const payload = await getBlob(t, repo, layer.digest);
    expect(JSON.parse(payload.toString("utf8")).critical.image["docker-manifest-digest"]).toBe(img.digest);
    const signature = Buffer.from(layer.annotations["dev.cosignproject.cosign/signature"]!, "base64");
    expect(verify("sha256", payload, publicKey, signature)).toBe(true);

    // A second signature is appended to the same tag, as cosign does.
    const again = await pushCosignSignature(t, repo, img.digest);
    expect(again.layers).toHaveLength(2);
  });

  test("OCI 1.1 artifact with subject and the referrers tag schema", async () => {
    const t = target();
    const repo = uniqueRepo("referred");
    const img = await pushImage(t, repo, "1", { layerSizes: [512] });
    const sbom = await pushArtifact(t, repo, {
      artifactType: "application/spdx+json",
      subject: img,
      files: [
        { name: "sbom.spdx.json", content: '{"spdxVersion":"SPDX-2.3"}', mediaType: "application/spdx+json" },
      ],
    });
    const other = await pushArtifact(t, repo, {
      artifactType: "application/vnd.example.note",
      subject: img,
      files: [],
    });

    const seen = await skopeoRaw(t, `${repo}@${sbom.digest}`);
    expect(seen.digest).toBe(sbom.digest);
    expect(seen.doc.artifactType).toBe("application/spdx+json");
    expect(seen.doc.config).toMatchObject({ mediaType: MT.ociEmpty, size: 2 });
    expect((seen.doc.subject as { digest: string }).digest).toBe(img.digest);

    const referrers = await skopeoRaw(t, `${repo}:${img.digest.replace(":", "-")}`);
    expect(referrers.digest).toBe(other.referrersIndex!.digest);
    const listed = (referrers.doc.manifests as { digest: string; artifactType: string }[]).map((m) => [
      m.digest,
      m.artifactType,
    ]);
    expect(listed).toEqual([
      [sbom.digest, "application/spdx+json"],
      [other.digest, "application/vnd.example.note"],
    ]);
  });
});

describe("fixtures beyond the basics", () => {
  test("a 64 MiB layer streams to the registry and lands in its storage", async () => {
    const t = tlsTarget();
    const repo = uniqueRepo("large");
    const size = 64 * 1024 * 1024;
    const img = await pushImage(t, repo, "big", { layerSizes: [size] });
    expect((await skopeoRaw(t, `${repo}:big`)).digest).toBe(img.digest);
    const stored = await listStoredBlobs(needEnv("AIRGAP_TEST_REGISTRY_TLS_STORAGE"));
    expect(stored.get(img.layers[0]!.digest)?.size).toBe(randomTarSize(size));
  });

  test("the mTLS registry takes an image from a client with the test certificate", async () => {
    const t = mtlsTarget();
    const repo = uniqueRepo("mtls");
    const img = await pushIndex(t, repo, "1", { layerSizes: [1024] });
    expect((await skopeoRaw(t, `${repo}:1`)).digest).toBe(img.digest);
  });
});
