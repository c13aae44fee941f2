import { Header, Pax } from "tar";
import { describe, expect, it } from "vitest";
import { StreamByteSource } from "../../src/bundle/archive/byte-source.js";
import { canonicalCompare } from "../../src/bundle/archive/paths.js";
import { encodeHeader, tarHeaders } from "../../src/bundle/archive/tar-format.js";
import { parseSize } from "../../src/bundle/archive/writer.js";
import { UsageError } from "../../src/errors.js";

async function* chunks(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

describe("tar headers", () => {
  it("writes a PAX size for an entry of 8 GiB and more, and reads it back", async () => {
    const size = 9 * 1024 ** 3 + 5;
    const block = encodeHeader(`blobs/sha256/${"c".repeat(64)}`, size, new Date(0), "File");
    expect(block.length).toBe(3 * 512);
    const pax = new Header(block.subarray(0, 512));
    expect(pax.type).toBe("ExtendedHeader");
    const body = block.subarray(512, 512 + pax.size!).toString();
    expect(body).toContain(`size=${size}\n`);
    expect(Pax.parse(body).size).toBe(size);
    const src = new StreamByteSource(chunks(block), "big.tar");
    const first = await tarHeaders(src, "big.tar").next();
    expect(first.value).toEqual({ path: `blobs/sha256/${"c".repeat(64)}`, size, dataOffset: 3 * 512 });
  });

  it("writes a PAX path for a long name", async () => {
    const long = `${"d".repeat(120)}/${"e".repeat(160)}`;
    const block = encodeHeader(long, 3, new Date(0), "File");
    const src = new StreamByteSource(chunks(Buffer.concat([block, Buffer.from("abc")])), "long.tar");
    const first = await tarHeaders(src, "long.tar").next();
    expect(first.value?.path).toBe(long);
    expect(first.value?.size).toBe(3);
  });

  it("writes plain ustar with root owner and fixed modes for ordinary entries", () => {
    const h = new Header(encodeHeader("bundle.json", 10, new Date(1700000000000), "File"));
    expect([h.path, h.mode, h.uid, h.gid, h.size, h.mtime?.getTime(), h.type]).toEqual([
      "bundle.json",
      0o644,
      0,
      0,
      10,
      1700000000000,
      "File",
    ]);
    const d = new Header(encodeHeader("blobs", 0, new Date(0), "Directory"));
    expect([d.path, d.mode, d.type]).toEqual(["blobs/", 0o755, "Directory"]);
  });
});

describe("parseSize", () => {
  it("understands bytes, binary and decimal suffixes", () => {
    expect(parseSize("1048576")).toBe(1048576);
    expect(parseSize(4096)).toBe(4096);
    expect(parseSize("700M")).toBe(700 * 1024 ** 2);
    expect(parseSize("4G")).toBe(4 * 1024 ** 3);
    expect(parseSize("4GiB")).toBe(4 * 1024 ** 3);
    expect(parseSize("4.7GB")).toBe(4.7e9);
    expect(parseSize("2k")).toBe(2048);
  });

  it("refuses nonsense", () => {
    for (const s of ["", "G", "-1", "0", "4X", "1.5.2G"]) expect(() => parseSize(s)).toThrow(UsageError);
  });
});

describe("canonical order", () => {
  it("puts signatures, checksums and inventory first, then blobs, then the rest", () => {
    const paths = [
      "zzz",
      "blobs/sha256/b",
      "index.json",
      "SHA256SUMS",
      "blobs/sha256/a",
      "SHA256SUMS.sig",
      "bundle.json",
      "oci-layout",
      "SHA256SUMS.sigstore.json",
      "a",
    ];
    expect(paths.sort(canonicalCompare)).toEqual([
      "SHA256SUMS.sig",
      "SHA256SUMS.sigstore.json",
      "SHA256SUMS",
      "bundle.json",
      "oci-layout",
      "index.json",
      "blobs/sha256/a",
      "blobs/sha256/b",
      "a",
      "zzz",
    ]);
  });
});
