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
// Whether the bytes can be a JSON object (the first byte after JSON whitespace is "{", the same test
// verify's referencesOf starts with): only those travel back; a layer is answered with its digest.
function jsonObject(b) {
  let i = 0;
  while (i < b.length && (b[i] === 0x20 || b[i] === 0x0a || b[i] === 0x0d || b[i] === 0x09)) i++;
  return b[i] === 0x7b;
}
parentPort.on("message", (job) => {
  const hash = crypto.createHash("sha256");
  let total = 0;
  let unreported = 0;
  // a job that keeps its bytes reads them straight into one buffer of its own, handed over whole
  const content = job.keep ? new Uint8Array(job.ranges.reduce((n, r) => n + r.length, 0)) : undefined;
  try {
    for (const r of job.ranges) {
      const fd = fs.openSync(r.file, "r");
      try {
        let pos = r.start;
        let left = r.length;
        while (left > 0) {
          const into = content ? content.subarray(total) : buf;
          const n = fs.readSync(fd, into, 0, Math.min(into.length, left), pos);
          if (n === 0) throw Object.assign(new Error(r.file + " ends " + left + " bytes early"), { code: "SHORT" });
          hash.update(n === into.length ? into : into.subarray(0, n));
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
    const done = { id: job.id, sha256: hash.digest("hex"), bytes: total };
    if (content && jsonObject(content)) parentPort.postMessage({ ...done, content }, [content.buffer]);
    else if (content) parentPort.postMessage({ ...done, notJson: true });
    else parentPort.postMessage(done);
  } catch (err) {
    parentPort.postMessage({ id: job.id, error: { message: String(err && err.message || err), code: err && err.code } });
  }
});
`;

/** Bytes of small jobs one worker may hold at once, and how many jobs at most. */
const BATCH_BYTES = 4 << 20;
const BATCH_JOBS = 64;

function jobBytes(job: Job): number {
  let n = 0;
  for (const r of job.ranges) n += r.length;
  return n;
}

/**
 * What hashing a job gives: the digest and the bytes read. With `keep`, also the bytes themselves
 * (`content`); a worker answers `notJson` instead for bytes that cannot be a JSON object (the first
 * byte after JSON whitespace is not "{"), so the caller knows without reading them again.
 */
export interface HashResult {
  sha256: string;
  bytes: number;
  content?: Buffer;
  notJson?: boolean;
}

interface Job {
  id: number;
  ranges: FileRange[];
  onBytes?: ((n: number) => void) | undefined;
  keep: boolean;
  resolve: (r: HashResult) => void;
  reject: (err: Error) => void;
}

type WorkerMessage =
  | { id: number; progress: number }
  | { id: number; sha256: string; bytes: number; content?: Uint8Array; notJson?: boolean }
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
 *
 * A worker is handed several small jobs at once (up to BATCH_BYTES in all): it takes them one after
 * another from its message queue, so thousands of small blobs do not each wait for a round trip to
 * the main thread before the next one starts. A large job goes only to a worker with nothing to do,
 * so one worker never sits on two large files while another is idle.
 */
export class HashPool {
  private readonly all: Worker[] = [];
  private readonly queue: Job[] = [];
  /** Jobs handed to each worker and not yet answered, by id. */
  private readonly running = new Map<Worker, Map<number, Job>>();
  private readonly streaming = new Set<Job>();
  private nextId = 1;
  private closed = false;

  constructor(readonly size: number = availableParallelism()) {}

  /**
   * Hash `ranges`. With `keep` (for small files only: it holds them in memory) the result also
   * carries the very bytes that were hashed, so a caller parses what it checked without reading
   * the file again.
   */
  hash(ranges: FileRange[], onBytes?: (n: number) => void, keep = false): Promise<HashResult> {
    if (this.closed) return Promise.reject(new Error("hash pool is closed"));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, ranges, onBytes, keep, resolve, reject });
      this.pump();
    });
  }

  private jobsOf(w: Worker): Map<number, Job> {
    let jobs = this.running.get(w);
    if (!jobs) {
      jobs = new Map();
      this.running.set(w, jobs);
    }
    return jobs;
  }

  private busyWorkers(): number {
    let n = 0;
    for (const jobs of this.running.values()) if (jobs.size > 0) n++;
    return n;
  }

  /** The worker to hand `job` to now, started if need be; undefined when it must wait. */
  private workerFor(job: Job): Worker | undefined {
    const idle = this.all.find((w) => this.jobsOf(w).size === 0);
    if (idle) return idle;
    if (this.all.length < Math.max(1, this.size)) {
      const fresh = new Worker(WORKER_SOURCE, { eval: true });
      fresh.unref();
      fresh.on("message", (m: WorkerMessage) => this.onMessage(fresh, m));
      fresh.on("error", (err) => this.onCrash(fresh, err));
      this.all.push(fresh);
      return fresh;
    }
    if (jobBytes(job) > BATCH_BYTES / 2) return undefined;
    let best: { w: Worker; bytes: number } | undefined;
    for (const w of this.all) {
      const jobs = this.jobsOf(w);
      if (jobs.size >= BATCH_JOBS) continue;
      let bytes = 0;
      for (const j of jobs.values()) bytes += jobBytes(j);
      if (bytes + jobBytes(job) <= BATCH_BYTES && (!best || bytes < best.bytes)) best = { w, bytes };
    }
    return best?.w;
  }

  private pump(): void {
    while (this.queue.length) {
      const job = this.queue[0]!;
      if (!job.ranges.every((r) => r.source.localFile !== undefined)) {
        if (this.busyWorkers() + this.streaming.size >= Math.max(1, this.size)) return;
        this.queue.shift();
        this.stream(job);
        continue;
      }
      if (this.streaming.size >= Math.max(1, this.size)) return;
      const w = this.workerFor(job);
      if (!w) return;
      this.queue.shift();
      this.jobsOf(w).set(job.id, job);
      w.ref();
      const ranges = job.ranges.map((r) => ({ file: r.source.localFile, start: r.start, length: r.length }));
      w.postMessage({ id: job.id, ranges, keep: job.keep });
    }
  }

  private stream(job: Job): void {
    this.streaming.add(job);
    void (async () => {
      const hash = createHash("sha256");
      let bytes = 0;
      const kept: Buffer[] | undefined = job.keep ? [] : undefined;
      for (const r of job.ranges) {
        if (r.length === 0) continue;
        for await (const c of r.source.stream(r.start, r.length)) {
          if (this.closed) throw new Error("hash pool closed");
          const b = c as Buffer;
          hash.update(b);
          kept?.push(b);
          bytes += b.length;
          job.onBytes?.(b.length);
        }
      }
      const result: HashResult = { sha256: hash.digest("hex"), bytes };
      if (kept) result.content = Buffer.concat(kept);
      return result;
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
    const jobs = this.jobsOf(w);
    const job = jobs.get(m.id);
    if (!job) return;
    if ("progress" in m) {
      job.onBytes?.(m.progress);
      return;
    }
    jobs.delete(m.id);
    if (jobs.size === 0) w.unref();
    if ("error" in m) job.reject(new HashError(m.error.message, m.error.code));
    else {
      const { content } = m;
      job.resolve({
        sha256: m.sha256,
        bytes: m.bytes,
        ...(content ? { content: Buffer.from(content.buffer, content.byteOffset, content.byteLength) } : {}),
        ...(m.notJson ? { notJson: true } : {}),
      });
    }
    this.pump();
  }

  private onCrash(w: Worker, err: Error): void {
    // every job handed to it fails with the crash; a fresh worker takes its place for the rest
    const jobs = this.jobsOf(w);
    this.running.delete(w);
    const at = this.all.indexOf(w);
    if (at >= 0) this.all.splice(at, 1);
    for (const job of jobs.values()) job.reject(err);
    this.pump();
  }

  async close(): Promise<void> {
    this.closed = true;
    const err = new Error("hash pool closed");
    for (const j of this.queue.splice(0)) j.reject(err);
    for (const jobs of this.running.values()) for (const j of jobs.values()) j.reject(err);
    for (const j of this.streaming) j.reject(err);
    this.running.clear();
    this.streaming.clear();
    await Promise.all(this.all.map((w) => w.terminate()));
  }
}
