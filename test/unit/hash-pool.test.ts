/** The hashing workers: many small files handed out in batches, large ones one per idle worker. */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { HashError, HashPool } from "../../src/bundle/archive/hash-pool.js";
import { LocalFileSource } from "../../src/bundle/archive/source.js";

const dir = mkdtempSync(join(tmpdir(), "airgap-hash-pool-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, bytes: Buffer) {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return {
    source: new LocalFileSource(path, bytes.length),
    sha256: createHash("sha256").update(bytes).digest("hex"),
  };
}

describe("HashPool", () => {
  it("hashes 400 small files and two large ones, each to its own digest, in any interleaving", async () => {
    const files = [
      file("large-0", randomBytes(6 << 20)),
      ...Array.from({ length: 400 }, (_, i) => file(`small-${i}`, randomBytes(1 + ((i * 7919) % 20_000)))),
      file("large-1", randomBytes(5 << 20)),
    ];
    const pool = new HashPool(2);
    let progressed = 0;
    try {
      const got = await Promise.all(
        files.map((f) =>
          pool.hash([{ source: f.source, start: 0, length: f.source.size }], (n) => {
            progressed += n;
          }),
        ),
      );
      expect(got.map((g) => g.sha256)).toEqual(files.map((f) => f.sha256));
      expect(got.map((g) => g.bytes)).toEqual(files.map((f) => f.source.size));
      expect(progressed).toBe(files.reduce((a, f) => a + f.source.size, 0));
    } finally {
      await pool.close();
    }
  });

  it("a file that is missing or shorter than its range fails alone; the files batched with it do not", async () => {
    const good = Array.from({ length: 50 }, (_, i) => file(`ok-${i}`, randomBytes(1000 + i)));
    const short = file("short", randomBytes(100));
    const pool = new HashPool(2);
    try {
      const results = await Promise.allSettled([
        ...good.map((f) => pool.hash([{ source: f.source, start: 0, length: f.source.size }])),
        pool.hash([{ source: short.source, start: 0, length: 500 }]),
        pool.hash([{ source: new LocalFileSource(join(dir, "absent"), 10), start: 0, length: 10 }]),
      ]);
      const failed = results.slice(-2);
      for (const r of failed) {
        expect(r.status).toBe("rejected");
        expect((r as PromiseRejectedResult).reason).toBeInstanceOf(HashError);
      }
      expect((failed[0] as PromiseRejectedResult).reason.code).toBe("SHORT");
      expect((failed[1] as PromiseRejectedResult).reason.code).toBe("ENOENT");
      expect(
        results.slice(0, -2).map((r) => (r as PromiseFulfilledResult<{ sha256: string }>).value.sha256),
      ).toEqual(good.map((f) => f.sha256));
    } finally {
      await pool.close();
    }
  });

  it("with keep, hands back exactly the hashed bytes of what can be JSON, and says so of what cannot", async () => {
    const manifest = file("manifest", Buffer.from(' \n{"schemaVersion":2,"layers":[]}'));
    const layer = file("layer", randomBytes(5000));
    // random bytes start with "{" once in 256 runs: make sure this layer does not
    writeFileSync(layer.source.localFile, Buffer.concat([Buffer.from([0x1f]), randomBytes(4999)]));
    const pool = new HashPool(2);
    try {
      const m = await pool.hash(
        [{ source: manifest.source, start: 0, length: manifest.source.size }],
        undefined,
        true,
      );
      expect(m.content?.toString()).toBe(' \n{"schemaVersion":2,"layers":[]}');
      expect(createHash("sha256").update(m.content!).digest("hex")).toBe(m.sha256);
      expect(m.notJson).toBeUndefined();
      const l = await pool.hash(
        [{ source: layer.source, start: 0, length: layer.source.size }],
        undefined,
        true,
      );
      expect(l.content).toBeUndefined();
      expect(l.notJson).toBe(true);
      const plain = await pool.hash([{ source: manifest.source, start: 0, length: manifest.source.size }]);
      expect(plain.content).toBeUndefined();
      expect(plain.notJson).toBeUndefined();
    } finally {
      await pool.close();
    }
  });
});
