import { createHash } from "node:crypto";
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

/**
 * Hashes byte ranges with SHA-256, `size` at a time. Ranges of local files go to worker threads
 * (started as needed), which read them with positioned reads; ranges of remote sources (S3) are
 * streamed and hashed here, since their wait is on the network, not a core.
 */
export class HashPool {
  private readonly idle: Worker[] = [];
  private readonly all: Worker[] = [];
  private readonly queue: Job[] = [];
  private readonly running = new Map<Worker, Job>();
  private readonly streaming = new Set<Job>();
  private nextId = 1;
  private closed = false;

  constructor(readonly size: number = availableParallelism()) {}

  hash(ranges: FileRange[], onBytes?: (n: number) => void): Promise<{ sha256: string; bytes: number }> {
    if (this.closed) return Promise.reject(new Error("hash pool is closed"));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, ranges, onBytes, resolve, reject });
      this.pump();
    });
  }

  private worker(): Worker | undefined {
    const w = this.idle.pop();
    if (w || this.all.length >= Math.max(1, this.size)) return w;
    const fresh = new Worker(WORKER_SOURCE, { eval: true });
    fresh.unref();
    fresh.on("message", (m: WorkerMessage) => this.onMessage(fresh, m));
    fresh.on("error", (err) => this.onCrash(fresh, err));
    this.all.push(fresh);
    return fresh;
  }

  private pump(): void {
    while (this.queue.length && this.running.size + this.streaming.size < Math.max(1, this.size)) {
      const job = this.queue[0]!;
      if (!job.ranges.every((r) => r.source.localFile !== undefined)) {
        this.queue.shift();
        this.stream(job);
        continue;
      }
      const w = this.worker();
      if (!w) return;
      this.queue.shift();
      this.running.set(w, job);
      w.ref();
      const ranges = job.ranges.map((r) => ({ file: r.source.localFile, start: r.start, length: r.length }));
      w.postMessage({ id: job.id, ranges });
    }
  }

  private stream(job: Job): void {
    this.streaming.add(job);
    void (async () => {
      const hash = createHash("sha256");
      let bytes = 0;
      for (const r of job.ranges) {
        if (r.length === 0) continue;
        for await (const c of r.source.stream(r.start, r.length)) {
          if (this.closed) throw new Error("hash pool closed");
          const b = c as Buffer;
          hash.update(b);
          bytes += b.length;
          job.onBytes?.(b.length);
        }
      }
      return { sha256: hash.digest("hex"), bytes };
    })().then(
      (r) => {
        if (this.streaming.delete(job)) job.resolve(r);
        this.pump();
      },
      (err: Error) => {
        if (this.streaming.delete(job)) job.reject(err);
        this.pump();
      },
    );
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
    for (const j of this.streaming) j.reject(err);
    this.running.clear();
    this.streaming.clear();
    await Promise.all(this.all.map((w) => w.terminate()));
  }
}
