import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { Duplex } from "node:stream";
import * as zlib from "node:zlib";
import { AirgapError, IntegrityError } from "../errors.js";

/** zlib's zstd streams exist from Node 22.15 on; typed loosely because @types/node 20 lacks them. */
type ZstdFactory = (opts?: object) => Duplex;
const native = zlib as unknown as { createZstdCompress?: ZstdFactory; createZstdDecompress?: ZstdFactory };

function findOnPath(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

function zstdCommand(): string {
  const p = findOnPath("zstd");
  if (!p) {
    throw new AirgapError(
      "zstd compression needs Node.js >= 22.15 or the `zstd` command on PATH (apt-get install zstd); neither is available",
      "ZSTD_UNAVAILABLE",
    );
  }
  return p;
}

/**
 * Runs a filter program as a Duplex: what is written goes to its stdin, its stdout is readable.
 * A non-zero exit becomes a stream error carrying the program's stderr, raised only after stdout
 * ended so no truncated output is mistaken for a complete one.
 */
class ChildDuplex extends Duplex {
  private readonly child;
  private stderr = "";
  private exit: Promise<number | null>;
  private stdoutDone = false;

  constructor(
    cmd: string,
    args: string[],
    private readonly mapError: (code: number | null, stderr: string) => Error,
  ) {
    super();
    this.child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    this.exit = new Promise((resolve) => {
      this.child.on("close", (code) => resolve(code));
      this.child.on("error", (err) => {
        this.destroy(new AirgapError(`cannot run ${cmd}: ${err.message}`, "ZSTD_FAILED", { cause: err }));
        resolve(null);
      });
    });
    this.child.stderr.setEncoding("utf8");
    this.child.stderr.on("data", (s: string) => {
      if (this.stderr.length < 4096) this.stderr += s;
    });
    // EPIPE on stdin means the program quit early; its exit status tells why.
    this.child.stdin.on("error", () => {});
    this.child.stdout.on("data", (chunk: Buffer) => {
      if (!this.push(chunk)) this.child.stdout.pause();
    });
    this.child.stdout.on("end", () => {
      this.stdoutDone = true;
      void this.exit.then((code) => {
        if (code === 0) this.push(null);
        else if (!this.destroyed) this.destroy(this.mapError(code, this.stderr.trim()));
      });
    });
  }

  override _read(): void {
    if (!this.stdoutDone) this.child.stdout.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.child.stdin.destroyed) {
      cb();
      return;
    }
    if (this.child.stdin.write(chunk)) cb();
    else this.child.stdin.once("drain", () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.child.stdin.end(() => cb());
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill();
    cb(err);
  }
}

/** A zstd compressor: Node's own when it has one, else `zstd -q -c -T0` as a pipe. */
export function createZstdCompress(): Duplex {
  if (typeof native.createZstdCompress === "function") return native.createZstdCompress();
  return new ChildDuplex(
    zstdCommand(),
    ["-q", "-c", "-T0"],
    (code, stderr) =>
      new AirgapError(`zstd exited with status ${code}: ${stderr || "no message"}`, "ZSTD_FAILED"),
  );
}

/**
 * A zstd decompressor. Damaged input surfaces as IntegrityError: TRUNCATED when the frame ends
 * early, MALFORMED otherwise.
 */
export function createZstdDecompress(label = "zstd stream"): Duplex {
  if (typeof native.createZstdDecompress === "function") {
    const d = native.createZstdDecompress();
    const mapped = new Duplex({
      read() {
        d.resume();
      },
      write(chunk, _enc, cb) {
        if (d.write(chunk)) cb();
        else d.once("drain", () => cb());
      },
      final(cb) {
        d.end();
        cb();
      },
    });
    d.on("data", (c: Buffer) => {
      if (!mapped.push(c)) d.pause();
    });
    d.on("end", () => mapped.push(null));
    d.on("error", (err: Error) => {
      const truncated = /unexpected end|truncat|premature/i.test(err.message);
      mapped.destroy(
        new IntegrityError(truncated ? "TRUNCATED" : "MALFORMED", `${label}: ${err.message}`, label, {
          cause: err,
        }),
      );
    });
    return mapped;
  }
  return new ChildDuplex(zstdCommand(), ["-q", "-d", "-c"], (_code, stderr) => {
    const truncated = /premature|truncat|unexpected end|incomplete/i.test(stderr);
    return new IntegrityError(
      truncated ? "TRUNCATED" : "MALFORMED",
      `${label}: ${truncated ? "compressed data ends early" : "not valid zstd data"} (${stderr || "zstd failed"})`,
      label,
    );
  });
}

/** The zstd frame magic number, little-endian 0xFD2FB528. */
export const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
