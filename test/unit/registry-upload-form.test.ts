import { describe, expect, it } from "vitest";
import { kindKey, manifestKind } from "../../src/pipeline/preflight.js";
import { PART_FLOOR, type UploadLessons, uploadForm } from "../../src/store/registry-upload.js";

const fresh = (): UploadLessons => ({
  putBodyRefused: false,
  multiPatchRefused: false,
  minChunk: 0,
  mountRefused: false,
  headUnreliable: false,
});
const sizes = { chunkThreshold: 1000, chunkSize: 100 };

describe("uploadForm: what a host refused decides the next form", () => {
  it("PUT up to the threshold, PATCHes of chunkSize above it", () => {
    expect(uploadForm(1000, sizes, fresh())).toEqual({ kind: "put" });
    expect(uploadForm(1001, sizes, fresh())).toEqual({ kind: "patches", chunk: 100 });
  });
  it("a refused PUT body sends even small blobs in PATCHes", () => {
    expect(uploadForm(10, sizes, { ...fresh(), putBodyRefused: true })).toEqual({
      kind: "patches",
      chunk: 100,
    });
  });
  it("a learnt part floor raises the chunk size; a refused second PATCH makes one PATCH of the whole blob", () => {
    expect(uploadForm(5000, sizes, { ...fresh(), minChunk: PART_FLOOR })).toEqual({
      kind: "patches",
      chunk: PART_FLOOR,
    });
    expect(uploadForm(5000, sizes, { ...fresh(), minChunk: PART_FLOOR, multiPatchRefused: true })).toEqual({
      kind: "patches",
      chunk: 5000,
    });
    expect(uploadForm(0, sizes, { ...fresh(), putBodyRefused: true, multiPatchRefused: true })).toEqual({
      kind: "patches",
      chunk: 1,
    });
  });
});

describe("manifestKind: what an allow-list judges", () => {
  const desc = (mediaType: string) => ({ mediaType, digest: `sha256:${"a".repeat(64)}`, size: 1 });
  it("an image manifest by its config type, an artifact by its artifactType, an index by its media type", () => {
    const image = Buffer.from(
      JSON.stringify({ config: { mediaType: "application/vnd.oci.image.config.v1+json" } }),
    );
    expect(manifestKind(desc("application/vnd.oci.image.manifest.v1+json"), image)).toEqual({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      configType: "application/vnd.oci.image.config.v1+json",
    });
    const artifact = Buffer.from(
      JSON.stringify({ artifactType: "x/sbom", config: { mediaType: "application/vnd.oci.empty.v1+json" } }),
    );
    const k = manifestKind(desc("application/vnd.oci.image.manifest.v1+json"), artifact);
    expect(k.artifactType).toBe("x/sbom");
    expect(kindKey(k)).not.toBe(
      kindKey(manifestKind(desc("application/vnd.oci.image.manifest.v1+json"), image)),
    );
    const index = Buffer.from(JSON.stringify({ manifests: [], config: { mediaType: "ignored" } }));
    expect(manifestKind(desc("application/vnd.oci.image.index.v1+json"), index)).toEqual({
      mediaType: "application/vnd.oci.image.index.v1+json",
    });
    expect(manifestKind(desc("application/vnd.oci.image.manifest.v1+json"), Buffer.from("not json"))).toEqual(
      {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
      },
    );
  });
});
