/** The resume logic of a broken blob download, with answers made in memory. */
import { PassThrough, Readable, Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { describe, expect, it } from "vitest";
import { RemoteError } from "../../src/errors.js";
import { requestTimeoutMs } from "../../src/oci/registry/client.js";
import { continuesAt, type ResumeAnswer, resumeInto, resumingBody } from "../../src/oci/registry/resume.js";

const content = Buffer.from("0123456789abcdefghij");
const retry = { retries: 2, baseDelayMs: 1, maxDelayMs: 2 };

/** A body that delivers `bytes` and then fails as a reset connection does. */
function cutBody(bytes: Buffer): Readable {
  return Readable.from(
    (async function* () {
      yield bytes;
      throw Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" });
    })(),
  );
}

function stats() {
  return { retries: 0, resumes: 0, restarts: 0 };
}

async function read(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

describe("continuesAt", () => {
  it("accepts only a Content-Range that starts where the download stopped", () => {
    expect(continuesAt("bytes 5-19/20", 5)).toBe(true);
    expect(continuesAt("bytes 5-19/*", 5)).toBe(true);
    expect(continuesAt("bytes 0-19/20", 5)).toBe(false);
    expect(continuesAt("bytes */20", 5)).toBe(false);
    expect(continuesAt(undefined, 5)).toBe(false);
  });
});

describe("requestTimeoutMs", () => {
  it("takes the option, else AIRGAP_REGISTRY_TIMEOUT_MS, else 30 s", () => {
    expect(requestTimeoutMs(5000, { AIRGAP_REGISTRY_TIMEOUT_MS: "1000" })).toBe(5000);
    expect(requestTimeoutMs(undefined, { AIRGAP_REGISTRY_TIMEOUT_MS: "1000" })).toBe(1000);
    expect(requestTimeoutMs(undefined, { AIRGAP_REGISTRY_TIMEOUT_MS: "soon" })).toBe(30_000);
    expect(requestTimeoutMs(undefined, {})).toBe(30_000);
  });
});

describe("resumingBody", () => {
  it("continues a cut body with the 206 answer to Range: bytes=N-", async () => {
    const asked: number[] = [];
    const s = stats();
    const body = resumingBody({
      first: cutBody(content.subarray(0, 7)),
      size: content.length,
      again: async (from): Promise<ResumeAnswer> => {
        asked.push(from);
        return {
          status: 206,
          headers: { "content-range": `bytes ${from}-${content.length - 1}/${content.length}` },
          body: Readable.from([content.subarray(from)]),
        };
      },
      retry,
      stats: s,
      what: "blob x",
    });
    expect(await read(body)).toEqual(content);
    expect(asked).toEqual([7]);
    expect(s).toEqual({ retries: 1, resumes: 1, restarts: 0 });
  });

  it("a 200 answer (Range ignored) starts over: the bytes already delivered are not delivered twice", async () => {
    const s = stats();
    const body = resumingBody({
      first: cutBody(content.subarray(0, 7)),
      size: content.length,
      again: async () => ({
        status: 200,
        headers: {},
        body: Readable.from([content.subarray(0, 3), content.subarray(3)]),
      }),
      retry,
      stats: s,
      what: "blob x",
    });
    expect(await read(body)).toEqual(content);
    expect(s).toEqual({ retries: 1, resumes: 0, restarts: 1 });
  });

  it("a 206 from another offset is refused", async () => {
    const body = resumingBody({
      first: cutBody(content.subarray(0, 7)),
      size: content.length,
      again: async () => ({
        status: 206,
        headers: { "content-range": `bytes 0-19/20` },
        body: Readable.from([content]),
      }),
      retry,
      stats: stats(),
      what: "blob x",
    });
    await expect(read(body)).rejects.toMatchObject({ code: "BAD_RANGE" });
  });

  it("past the retry limit: an error naming the content, the attempts and what to do", async () => {
    const body = resumingBody({
      first: cutBody(content.subarray(0, 2)),
      size: content.length,
      again: async (from) => ({
        status: 206,
        headers: { "content-range": `bytes ${from}-19/20` },
        body: cutBody(content.subarray(from, from + 1)),
      }),
      retry,
      stats: stats(),
      what: "blob sha256:abc from r/x",
      hint: "rerun resumes",
    });
    const err = await read(body).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as Error).message).toBe(
      "blob sha256:abc from r/x: the download failed after 3 attempts, the last broke off at byte 4 of 20: other side closed; rerun resumes",
    );
  });

  it("a failure that is not a broken connection is not retried", async () => {
    let asked = 0;
    const body = resumingBody({
      first: Readable.from(
        (async function* () {
          yield content.subarray(0, 3);
          throw Object.assign(new Error("bad bytes"), { code: "DIGEST_MISMATCH" });
        })(),
      ),
      size: content.length,
      again: async () => {
        asked++;
        return { status: 200, headers: {}, body: Readable.from([content]) };
      },
      retry,
      stats: stats(),
      what: "blob x",
    });
    await expect(read(body)).rejects.toThrow("bad bytes");
    expect(asked).toBe(0);
  });

  it("416 (nothing past what arrived) ends the stream: the verifier downstream reports the short content", async () => {
    const body = resumingBody({
      first: Readable.from([content.subarray(0, 12)]),
      size: content.length,
      again: async () => ({ status: 416, headers: {}, body: Readable.from([]) }),
      retry,
      stats: stats(),
      what: "blob x",
    });
    expect(await read(body)).toEqual(content.subarray(0, 12));
  });

  it("a slow consumer gets every byte once, in order, across a resume (backpressure, not buffering)", async () => {
    const big = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32BE(i, i);
    const chunks = (b: Buffer) =>
      Array.from({ length: b.length / 65536 }, (_, i) => b.subarray(i * 65536, (i + 1) * 65536));
    const first = Readable.from(
      (async function* () {
        yield* chunks(big.subarray(0, 1024 * 1024));
        throw Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" });
      })(),
    );
    let peakBuffered = 0;
    const got: Buffer[] = [];
    const slow = new Writable({
      highWaterMark: 65536,
      write(chunk: Buffer, _enc, cb) {
        got.push(chunk);
        setTimeout(cb, 0);
      },
    });
    const s = stats();
    resumeInto(
      {
        first,
        size: big.length,
        again: async (from) => {
          const rest = Readable.from(chunks(big.subarray(from)));
          rest.on("data", () => (peakBuffered = Math.max(peakBuffered, slow.writableLength)));
          return {
            status: 206,
            headers: { "content-range": `bytes ${from}-${big.length - 1}/${big.length}` },
            body: rest,
          };
        },
        retry,
        stats: s,
        what: "blob x",
      },
      slow,
    );
    await finished(slow);
    expect(Buffer.concat(got).equals(big)).toBe(true);
    expect(s).toEqual({ retries: 1, resumes: 1, restarts: 0 });
    expect(peakBuffered).toBeLessThanOrEqual(2 * 65536);
  });

  it("destroying the consumer stops the download", async () => {
    const first = new Readable({ read() {} });
    first.push(content.subarray(0, 5));
    const into = new PassThrough();
    resumeInto(
      {
        first,
        size: content.length,
        again: async () => ({ status: 200, headers: {}, body: Readable.from([]) }),
        retry,
        stats: stats(),
        what: "blob x",
      },
      into,
    );
    into.destroy();
    await new Promise((r) => setImmediate(r));
    expect(first.destroyed).toBe(true);
  });
});
