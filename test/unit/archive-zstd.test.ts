import { randomBytes } from "node:crypto";
import { type Duplex, Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as zlib from "node:zlib";
import { describe, expect, it } from "vitest";
import { createZstdCompress, createZstdDecompress } from "../../src/bundle/zstd.js";
import { AirgapError, IntegrityError } from "../../src/errors.js";

async function run(input: Buffer, stage: Duplex): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from([input]), stage, async (src: AsyncIterable<Buffer>) => {
    for await (const c of src) out.push(c);
  });
  return Buffer.concat(out);
}

describe("zstd streams", () => {
  it("round-trip", async () => {
    const data = Buffer.concat([randomBytes(3_000_000), Buffer.alloc(2_000_000, 7)]);
    const z = await run(data, createZstdCompress());
    expect(z.subarray(0, 4)).toEqual(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]));
    expect(z.length).toBeLessThan(data.length);
    expect((await run(z, createZstdDecompress())).equals(data)).toBe(true);
  });

  it("reports truncated and garbage input as integrity errors", async () => {
    const z = await run(randomBytes(500_000), createZstdCompress());
    await expect(run(z.subarray(0, z.length >> 1), createZstdDecompress("x.tar.zst"))).rejects.toMatchObject({
      code: "TRUNCATED",
      item: "x.tar.zst",
    });
    await expect(run(randomBytes(5000), createZstdDecompress("y"))).rejects.toBeInstanceOf(IntegrityError);
  });

  it.skipIf(typeof (zlib as { createZstdCompress?: unknown }).createZstdCompress === "function")(
    "says clearly when neither Node nor the zstd command can compress",
    () => {
      const path = process.env.PATH;
      process.env.PATH = "/nonexistent";
      try {
        expect(() => createZstdCompress()).toThrow(AirgapError);
        expect(() => createZstdCompress()).toThrow(/zstd/);
      } finally {
        process.env.PATH = path;
      }
    },
  );
});
