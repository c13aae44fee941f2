/** Pure logic of bundles in S3: URL parsing, part sizes within S3's limits, output targets. */
import { describe, expect, it } from "vitest";
import { S3Place } from "../../src/bundle/archive/s3.js";
import { isS3Url, parseS3Url, UPLOAD_QUEUE, uploadPartSize } from "../../src/bundle/archive/s3-url.js";
import { outputTarget } from "../../src/cli/commands/target.js";
import { UsageError } from "../../src/errors.js";

const MiB = 1024 * 1024;

describe("s3:// bundle names", () => {
  it("parses BUCKET and KEY, and refuses a bucket alone, a prefix or a short bucket name", () => {
    expect(isS3Url("s3://drop/a/b.tar")).toBe(true);
    expect(isS3Url("S3://drop/b.tar")).toBe(true);
    expect(isS3Url("./s3:/drop")).toBe(false);
    expect(parseS3Url("s3://drop/site/b.tar.zst")).toEqual({ bucket: "drop", key: "site/b.tar.zst" });
    for (const bad of ["s3://drop", "s3://drop/", "s3://drop/site/", "s3://ab/b.tar"]) {
      expect(() => parseS3Url(bad), bad).toThrow(UsageError);
    }
  });

  it("finds parts beside their manifest under the same key prefix", () => {
    const place = new S3Place({ endpoint: "http://127.0.0.1:1" });
    expect(place.sibling("s3://drop/site/b.tar.parts.json", "b.tar.part-0002")).toBe(
      "s3://drop/site/b.tar.part-0002",
    );
    expect(place.sibling("s3://drop/b.tar.parts.json", "b.tar.part-0001")).toBe("s3://drop/b.tar.part-0001");
  });

  it("uploads in 8 MiB parts, larger only where 9,000 parts would not hold the object; memory is 2 parts", () => {
    expect(uploadPartSize(0)).toBe(8 * MiB);
    expect(uploadPartSize(50 * 1024 * MiB)).toBe(8 * MiB);
    expect(uploadPartSize(100 * 1024 * MiB)).toBe(12 * MiB);
    const fiveTiB = 5 * 1024 * 1024 * MiB;
    const part = uploadPartSize(fiveTiB);
    expect(Math.ceil(fiveTiB / part)).toBeLessThanOrEqual(10_000);
    expect(part % MiB).toBe(0);
    expect(uploadPartSize(0, 1 * MiB)).toBe(5 * MiB);
    expect(UPLOAD_QUEUE * uploadPartSize(1024 * MiB)).toBe(16 * MiB);
  });

  it("-o s3://… is always a tar: zstd by name or flag, split allowed", () => {
    expect(outputTarget("s3://drop/b", undefined, undefined)).toEqual({
      path: "s3://drop/b",
      format: "tar",
      compress: "none",
    });
    expect(outputTarget("s3://drop/b.tar.zst", undefined, undefined).compress).toBe("zstd");
    expect(outputTarget("s3://drop/b.tar", "zstd", undefined).compress).toBe("zstd");
    expect(outputTarget("s3://drop/b.tar", undefined, 4 * MiB).splitSize).toBe(4 * MiB);
  });
});
