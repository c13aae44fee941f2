import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { FileRange } from "./reader.js";

/*
 * Runs in each worker (CommonJS, evaluated from this string so it works from source and from the
 * build alike). Reads the ranges with positioned synchronous reads into one reused buffer: each
 * worker owns a core, so blocking it costs nothing and memory stays at one buffer per worker.
 */
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const fs = require("node:fs");
const crypto = require("node:crypto");
const buf = Buffer.allocUnsafe(1 << 20);
const REPORT = 16 << 20;
parentPort.on("message", (job) => {
  const hash = crypto.createHash("sha256");
  let total = 0;
  let unreported = 0;
  try {
    for (const r of job.ranges) {
      const fd = fs.openSync(r.file, "r");
      try {
        let pos = r.start;
        let left = r.length;
        while (left > 0) {
          const n = fs.readSync(fd, buf, 0, Math.min(buf.length, left), pos);
          if (n === 0) throw Object.assign(new Error(r.file + " ends " + left + " bytes early"), { code: "SHORT" });
          hash.update(n === buf.length ? buf : buf.subarray(0, n));
          pos += n;
          left -= n;
          total += n;
          unreported += n;
          if (unreported >= REPORT) {
            parentPort.postMessage({ id: job.id, progress: unreported });
            unreported = 0;
          }
        }
      } finally {
        fs.closeSync(fd);
      }
    }
    if (unreported) parentPort.postMessage({ id: job.id, progress: unreported });
    parentPort.postMessage({ id: job.id, sha256: hash.digest("hex"), bytes: total });
  } catch (err) {
    parentPort.postMessage({ id: job.id, error: { message: String(err && err.message || err), code: err && err.code } });
  }
});
`;

interface Job {
  id: number;
  ranges: FileRange[];
  onBytes?: ((n: number) => void) | undefined;
  resolve: (r: { sha256: string; bytes: number }) => void;
  reject: (err: Error) => void;
}

type WorkerMessage =
  | { id: number; progress: number }
  | { id: number; sha256: string; bytes: number }
  | { id: number; error: { message: string; code?: string } };

/** A file-hashing error from a worker; `code` is the fs error code, or SHORT when a file ended early. */
export class HashError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

/** A fixed pool of worker threads that hash byte ranges of files with SHA-256. */
export class HashPool {
  private readonly idle: Worker[] = [];
  private readonly all: Worker[] = [];
  private readonly queue: Job[] = [];
  private readonly running = new Map<Worker, Job>();
  private nextId = 1;
  private closed = false;

  constructor(readonly size: number = availableParallelism()) {
    for (let i = 0; i < Math.max(1, size); i++) {
      const w = new Worker(WORKER_SOURCE, { eval: true });
      w.unref();
      w.on("message", (m: WorkerMessage) => this.onMessage(w, m));
      w.on("error", (err) => this.onCrash(w, err));
      this.all.push(w);
      this.idle.push(w);
    }
  }

  hash(ranges: FileRange[], onBytes?: (n: number) => void): Promise<{ sha256: string; bytes: number }> {
    if (this.closed) return Promise.reject(new Error("hash pool is closed"));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, ranges, onBytes, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.idle.length && this.queue.length) {
      const w = this.idle.pop()!;
      const job = this.queue.shift()!;
      this.running.set(w, job);
      w.ref();
      w.postMessage({ id: job.id, ranges: job.ranges });
    }
  }

  private onMessage(w: Worker, m: WorkerMessage): void {
    const job = this.running.get(w);
    if (!job || job.id !== m.id) return;
    if ("progress" in m) {
      job.onBytes?.(m.progress);
      return;
    }
    this.running.delete(w);
    w.unref();
    this.idle.push(w);
    if ("error" in m) job.reject(new HashError(m.error.message, m.error.code));
    else job.resolve({ sha256: m.sha256, bytes: m.bytes });
    this.pump();
  }

  private onCrash(w: Worker, err: Error): void {
    const job = this.running.get(w);
    this.running.delete(w);
    job?.reject(err);
  }

  async close(): Promise<void> {
    this.closed = true;
    const err = new Error("hash pool closed");
    for (const j of this.queue.splice(0)) j.reject(err);
    for (const j of this.running.values()) j.reject(err);
    this.running.clear();
    await Promise.all(this.all.map((w) => w.terminate()));
  }
}
