import { createHash, type Hash, type KeyObject } from "node:crypto";
import { availableParallelism } from "node:os";
import { performance } from "node:perf_hooks";
import { type Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import pLimit from "p-limit";
import { AirgapError, type IntegrityCode, IntegrityError, UsageError } from "../errors.js";
import type { ArtifactRepositoryOptions } from "../store/artifacts.js";
import { HashError, HashPool, type HashResult } from "./archive/hash-pool.js";
import type { PartFile } from "./archive/parts.js";
import { blobHexOf, canonicalCompare, compareBytes } from "./archive/paths.js";
import { type BundleEntry, type BundleReader, isRangeReader, openBundle } from "./archive/reader.js";
import { CHECKSUMS_FILE, parseChecksums, SIGNATURE_FILES } from "./checksums.js";
import { loadPublicKey } from "./keys.js";
import { describeLimit, METADATA_MAX_BYTES, overLimitMessage } from "./limits.js";
import { verifyChecksumsSignature, verifySigstoreBundle } from "./signing.js";

export interface VerifyProblem {
  code: IntegrityCode;
  /** The file (or part) at fault, e.g. `blobs/sha256/ab12…`. */
  item: string;
  message: string;
}

export interface VerifyReport {
  ok: boolean;
  signature: "verified" | "invalid" | "absent" | "not-checked";
  /** Whether the bundle carries a signature file at all. */
  signed: boolean;
  /** Files whose bytes were checked against SHA256SUMS. */
  files: number;
  blobs: number;
  bytes: number;
  seconds: number;
  problems: VerifyProblem[];
  warnings: string[];
}

export interface VerifyOptions {
  /** The trusted public key (PEM); without one only integrity is checked. */
  publicKeyPem?: string;
  requireSignature?: boolean;
  /** Parallel file hashes for directories and seekable tars; default: available cores (S3: REMOTE_CONCURRENCY). */
  concurrency?: number;
  signal?: AbortSignal;
  /** Endpoint, credentials and TLS for an `s3://` bundle: the artifact repository's settings. */
  s3?: ArtifactRepositoryOptions;
  onProgress?: (e: { path: string; bytes: number; totalBytes?: number }) => void;
}

const SIG_MAX = 1024 * 1024;
/** Ranged GETs in flight when hashing a bundle in S3: round trips, not cores, are what they wait on. */
const REMOTE_CONCURRENCY = 8;
/** Blobs up to this size are looked at as possible manifests (distribution's manifest limit). */
const MANIFEST_MAX = 4 * 1024 * 1024;
/** Small files read at once to find the manifests among them (at most 4 MiB each). */
const MANIFEST_READS = 8;
/** Files up to this size come back from hashing with their bytes, which are parsed as manifests. */
const KEEP_MAX = 256 * 1024;

/**
 * The signature state when no verdict was reached: "absent" only when the bundle could be read
 * and has none; a bundle that is truncated, malformed or missing a part was never read far
 * enough to know ("not-checked"), and must not be reported as unsigned.
 */
function undecidedSignature(key: unknown, problems: VerifyProblem[]): VerifyReport["signature"] {
  const unreadable = problems.some((p) => p.code === "TRUNCATED" || p.code === "MALFORMED");
  return key && !unreadable ? "absent" : "not-checked";
}

function problemOf(err: IntegrityError, fallbackItem: string): VerifyProblem {
  return { code: err.code, item: err.item ?? fallbackItem, message: err.message };
}

function short(hex: string): string {
  return `${hex.slice(0, 12)}…`;
}

function loadKey(opts: VerifyOptions): KeyObject | undefined {
  if (opts.requireSignature && !opts.publicKeyPem) {
    throw new UsageError("a signature is required, but no public key was given to check it with (--key)");
  }
  return opts.publicKeyPem ? loadPublicKey(opts.publicKeyPem) : undefined;
}

export interface SignatureVerdict {
  signature: VerifyReport["signature"];
  signed: boolean;
  problem?: VerifyProblem;
  warning?: string;
}

/**
 * Judges the signature files over SHA256SUMS. With a key every signature file present must
 * verify, and at least one must be present; without a key nothing is trusted or refused, and
 * the report says so.
 */
function judgeSignature(
  sums: Buffer,
  sigs: Map<string, Buffer>,
  key: KeyObject | undefined,
): SignatureVerdict {
  const signed = sigs.size > 0;
  if (!key) {
    return {
      signature: "not-checked",
      signed,
      warning: signed
        ? `authenticity not checked: no public key given; the bundle carries a signature (${[...sigs.keys()].join(", ")}) — pass --key to check it`
        : "authenticity not checked: no public key given, and the bundle carries no signature",
    };
  }
  if (!signed) {
    return {
      signature: "absent",
      signed,
      problem: {
        code: "SIGNATURE_MISSING",
        item: SIGNATURE_FILES[0]!,
        message: `the bundle carries no signature (${SIGNATURE_FILES.join(" or ")}) but a public key was given`,
      },
    };
  }
  for (const [name, bytes] of sigs) {
    const text = bytes.toString("utf8");
    const good =
      name === "SHA256SUMS.sig"
        ? verifyChecksumsSignature(sums, text, key)
        : verifySigstoreBundle(sums, text, key);
    if (!good) {
      return {
        signature: "invalid",
        signed,
        problem: {
          code: "SIGNATURE_INVALID",
          item: name,
          message: `${name} does not verify SHA256SUMS with the given public key`,
        },
      };
    }
  }
  return { signature: "verified", signed };
}

/**
 * The digests a manifest, index or index.json refers to (not its `subject`: a referrer points at
 * its subject, it does not contain it). Undefined when the bytes are not a manifest or index.
 * Foreign layers that carry `urls` are not expected in the bundle.
 */
/** A descriptor found in a manifest, an index or index.json. */
interface Reference {
  digest: string;
  mediaType: string;
  /** The size the descriptor declares, when it is a whole number. */
  size?: number;
  /** Listed under an index's `manifests`: the blob is itself a manifest or an index. */
  manifest: boolean;
}

function referencesOf(bytes: Buffer): Reference[] | undefined {
  let i = 0;
  while (
    i < bytes.length &&
    (bytes[i] === 0x20 || bytes[i] === 0x0a || bytes[i] === 0x0d || bytes[i] === 0x09)
  )
    i++;
  if (bytes[i] !== 0x7b) return undefined;
  let m: unknown;
  try {
    m = JSON.parse(bytes.toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof m !== "object" || m === null) return undefined;
  const o = m as { schemaVersion?: unknown; manifests?: unknown; config?: unknown; layers?: unknown };
  if (o.schemaVersion !== 2) return undefined;
  const descs: unknown[] = [];
  const manifest = Array.isArray(o.manifests);
  if (Array.isArray(o.manifests)) descs.push(...o.manifests);
  else if (typeof o.config === "object" && o.config !== null && Array.isArray(o.layers))
    descs.push(o.config, ...o.layers);
  else return undefined;
  const out: Reference[] = [];
  for (const d of descs) {
    if (typeof d !== "object" || d === null) continue;
    const x = d as { digest?: unknown; mediaType?: unknown; urls?: unknown; size?: unknown };
    if (typeof x.digest !== "string") continue;
    if (Array.isArray(x.urls) && x.urls.length > 0) continue;
    out.push({
      digest: x.digest,
      mediaType: typeof x.mediaType === "string" ? x.mediaType : "",
      ...(Number.isSafeInteger(x.size) && { size: x.size as number }),
      manifest,
    });
  }
  return out;
}

/**
 * Blobs an incremental bundle (`create --since`) leaves out because its base bundle carried them:
 * bundle.json's `since.omittedBlobs`. References to them are not dangling; the target must already
 * hold them (import checks). bundle.json is covered by SHA256SUMS, so this list is as trusted as it.
 */
export function omittedBlobsOf(inventory: Buffer): Set<string> {
  try {
    const inv = JSON.parse(inventory.toString("utf8")) as { since?: { omittedBlobs?: unknown } };
    const list = inv.since?.omittedBlobs;
    if (!Array.isArray(list)) return new Set();
    return new Set(
      list.flatMap((d) => {
        const hex = typeof d === "string" ? /^sha256:([a-f0-9]{64})$/.exec(d)?.[1] : undefined;
        return hex ? [hex] : [];
      }),
    );
  } catch {
    return new Set();
  }
}

/**
 * What the bundle's descriptors say that its blobs contradict: a digest that is not in the bundle
 * (and not left out on purpose), a declared size that differs from the blob's, and a manifest or
 * index over the 4 MiB that registries accept (import would read it whole; a registry refuses it).
 * `sizeOf` gives a blob's size, or undefined when the bundle leaves it out.
 */
function referenceProblems(
  refs: { item: string; digests: Reference[] }[],
  sizeOf: (hex: string) => number | undefined,
  omitted: Set<string>,
): VerifyProblem[] {
  const out: VerifyProblem[] = [];
  for (const r of refs) {
    for (const d of r.digests) {
      const hex = /^sha256:([a-f0-9]{64})$/.exec(d.digest)?.[1];
      const size = hex === undefined ? undefined : sizeOf(hex);
      if (hex !== undefined && size === undefined && omitted.has(hex)) continue;
      if (hex === undefined || size === undefined) {
        out.push({
          code: "DANGLING_REFERENCE",
          item: r.item,
          message: `${r.item} refers to ${d.digest}${d.mediaType ? ` (${d.mediaType})` : ""}, which is not in the bundle`,
        });
        continue;
      }
      const blob = `blobs/sha256/${hex}`;
      if (d.size !== undefined && d.size !== size) {
        out.push({
          code: "MALFORMED",
          item: r.item,
          message: `${r.item} says ${blob} is ${d.size} bytes, but it is ${size}`,
        });
      }
      if (d.manifest && size > MANIFEST_MAX) {
        out.push({
          code: "MALFORMED",
          item: blob,
          message: `${blob} is a manifest of ${size} bytes (named in ${r.item}), over the ${describeLimit(MANIFEST_MAX)} limit registries accept; refusing to read it`,
        });
      }
    }
  }
  return out;
}

/** Drops repeats and orders problems by item (bundle order), so reports are stable across runs. */
function dedupe(problems: VerifyProblem[]): VerifyProblem[] {
  const seen = new Set<string>();
  return problems
    .filter((p) => {
      const k = `${p.code}\0${p.item}\0${p.message}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    })
    .sort((a, b) => canonicalCompare(a.item, b.item) || compareBytes(a.code, b.code));
}

/**
 * The one-pass verifier: fed the bundle's entries in stored order, it passes each entry's bytes
 * through while hashing them, and fails the stream of any entry that does not match SHA256SUMS.
 * SHA256SUMS (and its signatures before it) must come first; with a key its signature is judged
 * as soon as it has arrived, and a bad one stops everything.
 */
export class SequentialVerifier {
  private readonly key: KeyObject | undefined;
  private readonly started = performance.now();
  private sums: Map<string, string> | undefined;
  private readonly sigs = new Map<string, Buffer>();
  private verdict: SignatureVerdict | undefined;
  private fatal: IntegrityError | undefined;
  private readonly problems: VerifyProblem[] = [];
  private readonly warnings: string[] = [];
  private readonly seen = new Set<string>();
  private omitted = new Set<string>();
  private readonly refs: { item: string; digests: Reference[] }[] = [];
  private readonly blobSizes = new Map<string, number>();
  private files = 0;
  private blobs = 0;
  private bytes = 0;
  private interrupted = false;

  constructor(private readonly opts: VerifyOptions) {
    this.key = loadKey(opts);
  }

  /** Records a problem found outside accept() (e.g. the archive itself is damaged). */
  addProblem(err: unknown, item = "bundle"): void {
    if (err instanceof IntegrityError) this.problems.push(problemOf(err, item));
    else throw err;
  }

  /** Marks the stream as ended early: files never seen are then not reported one by one. */
  interrupt(err: unknown): void {
    this.interrupted = true;
    this.addProblem(err);
  }

  private fail(err: IntegrityError): IntegrityError {
    this.problems.push(problemOf(err, err.item ?? "bundle"));
    return err;
  }

  accept(entry: BundleEntry): Readable {
    if (this.fatal) throw this.fatal;
    const path = entry.path;
    if (this.seen.has(path)) {
      throw this.fail(new IntegrityError("MALFORMED", `${path} appears twice in the bundle`, path));
    }
    this.seen.add(path);

    if (SIGNATURE_FILES.includes(path)) {
      if (this.sums) {
        throw this.fail(
          new IntegrityError("MALFORMED", `${path} comes after SHA256SUMS; signatures must precede it`, path),
        );
      }
      return this.collect(entry, SIG_MAX, (bytes) => {
        this.sigs.set(path, bytes);
      });
    }

    if (path === CHECKSUMS_FILE) {
      return this.collect(entry, METADATA_MAX_BYTES, (bytes) => {
        let sums: Map<string, string>;
        try {
          sums = parseChecksums(bytes.toString("utf8"));
        } catch (err) {
          if (err instanceof IntegrityError) this.fatal = this.fail(err);
          throw err;
        }
        this.verdict = judgeSignature(bytes, this.sigs, this.key);
        if (this.verdict.warning) this.warnings.push(this.verdict.warning);
        if (this.verdict.problem) {
          const p = this.verdict.problem;
          this.fatal = this.fail(new IntegrityError(p.code, p.message, p.item));
          throw this.fatal;
        }
        this.sums = sums;
      });
    }

    if (!this.sums) {
      this.fatal = this.fail(
        new IntegrityError(
          this.verdict ? "MALFORMED" : "MISSING_FILE",
          `${path} arrived before SHA256SUMS; a streamed bundle must start with its signatures and SHA256SUMS`,
          CHECKSUMS_FILE,
        ),
      );
      throw this.fatal;
    }
    return this.hashEntry(entry, this.sums.get(path));
  }

  private collect(entry: BundleEntry, max: number, done: (bytes: Buffer) => void): Readable {
    const chunks: Buffer[] = [];
    let n = 0;
    const t = new Transform({
      transform: (chunk: Buffer, _e, cb: TransformCallback) => {
        n += chunk.length;
        if (n > max) {
          cb(
            this.fail(
              new IntegrityError("MALFORMED", `${entry.path} is over the ${max}-byte limit`, entry.path),
            ),
          );
          return;
        }
        chunks.push(chunk);
        cb(null, chunk);
      },
      flush: (cb: TransformCallback) => {
        try {
          done(Buffer.concat(chunks));
          cb();
        } catch (err) {
          cb(err as Error);
        }
      },
    });
    pipeline(entry.stream, t).catch(() => {});
    return t;
  }

  private hashEntry(entry: BundleEntry, expected: string | undefined): Readable {
    const path = entry.path;
    const blobHex = blobHexOf(path);
    const inventory = path === "bundle.json" && entry.size <= METADATA_MAX_BYTES;
    const watch = inventory || path === "index.json" || (blobHex !== undefined && entry.size <= MANIFEST_MAX);
    const hash: Hash = createHash("sha256");
    let kept: Buffer[] | undefined = watch ? [] : undefined;
    let n = 0;
    const t = new Transform({
      transform: (chunk: Buffer, _e, cb: TransformCallback) => {
        if (n === 0 && kept && !/^\s*\{/.test(chunk.subarray(0, 64).toString("latin1"))) kept = undefined;
        n += chunk.length;
        this.bytes += chunk.length;
        hash.update(chunk);
        if (kept) {
          if (n > (inventory || path === "index.json" ? METADATA_MAX_BYTES : MANIFEST_MAX)) kept = undefined;
          else kept.push(chunk);
        }
        this.opts.onProgress?.({ path, bytes: this.bytes });
        cb(null, chunk);
      },
      flush: (cb: TransformCallback) => {
        const hex = hash.digest("hex");
        this.files++;
        if (blobHex) {
          this.blobs++;
          this.blobSizes.set(blobHex, n);
        }
        let err: IntegrityError | undefined;
        if (expected === undefined) {
          err = new IntegrityError(
            "UNLISTED_FILE",
            `${path} is in the bundle but not listed in SHA256SUMS`,
            path,
          );
        } else if (hex !== expected) {
          err = new IntegrityError(
            "CHECKSUM_MISMATCH",
            `${path}: content has sha256 ${short(hex)}, SHA256SUMS says ${short(expected)}`,
            path,
          );
        } else if (blobHex && hex !== blobHex) {
          err = new IntegrityError("DIGEST_MISMATCH", `${path}: content has digest sha256:${hex}`, path);
        } else if (path.startsWith("blobs/") && !blobHex) {
          err = new IntegrityError("MALFORMED", `${path} is not named blobs/sha256/<64 hex digits>`, path);
        } else if ((path === "bundle.json" || path === "index.json") && n > METADATA_MAX_BYTES) {
          // import and inspect would refuse to read it: a bundle only they cannot use is not OK
          err = new IntegrityError("MALFORMED", overLimitMessage(path, n, METADATA_MAX_BYTES), path);
        }
        if (err) {
          cb(this.fail(err));
          return;
        }
        if (kept && inventory) {
          this.omitted = omittedBlobsOf(Buffer.concat(kept));
        } else if (kept) {
          const refs = referencesOf(Buffer.concat(kept));
          if (refs) this.refs.push({ item: path, digests: refs });
        }
        cb();
      },
    });
    pipeline(entry.stream, t).catch(() => {});
    return t;
  }

  finish(): VerifyReport {
    const problems = [...this.problems];
    if (!this.interrupted && !this.fatal) {
      if (!this.sums && !this.verdict) {
        problems.push({
          code: "MISSING_FILE",
          item: CHECKSUMS_FILE,
          message: "the bundle has no SHA256SUMS",
        });
      }
      for (const path of this.sums?.keys() ?? []) {
        if (!this.seen.has(path)) {
          problems.push({
            code: "MISSING_FILE",
            item: path,
            message: `${path} is listed in SHA256SUMS but not in the bundle`,
          });
        }
      }
      problems.push(...referenceProblems(this.refs, (hex) => this.blobSizes.get(hex), this.omitted));
    }
    const all = dedupe(problems);
    return {
      ok: all.length === 0,
      signature: this.verdict?.signature ?? undecidedSignature(this.key, all),
      signed: this.verdict?.signed ?? this.sigs.size > 0,
      files: this.files,
      blobs: this.blobs,
      bytes: this.bytes,
      seconds: (performance.now() - this.started) / 1000,
      problems: all,
      warnings: [...this.warnings],
    };
  }
}

async function drain(stream: Readable): Promise<void> {
  for await (const _ of stream) {
    // bytes are checked inside the stream
  }
}

async function verifySequential(reader: BundleReader, opts: VerifyOptions): Promise<VerifyReport> {
  const v = new SequentialVerifier(opts);
  try {
    for await (const entry of reader.entries(opts.signal)) {
      let s: Readable;
      try {
        s = v.accept(entry);
      } catch (err) {
        if (err instanceof IntegrityError) break;
        throw err;
      }
      try {
        await drain(s);
      } catch (err) {
        // The verifier recorded its own findings; anything else came from the archive itself.
        if (!(err instanceof IntegrityError)) throw err;
        if (err.code === "TRUNCATED" || err.code === "PATH_ESCAPE" || err.code === "MALFORMED") {
          v.addProblem(err, entry.path);
        }
      }
    }
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
    v.interrupt(err);
  }
  return v.finish();
}

/**
 * What a seekable bundle's head establishes before any content is hashed: the listing, SHA256SUMS
 * and its signature, files listed but absent and present but unlisted, and every blob's name
 * against its SHA256SUMS entry (a blob's file name is its digest).
 */
export interface BundleHead {
  started: number;
  key: KeyObject | undefined;
  problems: VerifyProblem[];
  warnings: string[];
  verdict?: SignatureVerdict;
  /** path → size of every file in the bundle. */
  present: Map<string, number>;
  /** path → sha256 hex from SHA256SUMS. */
  sums: Map<string, string>;
  /** Files listed in SHA256SUMS and present, the signature files and SHA256SUMS excepted. */
  toHash: { path: string; size: number; expected: string }[];
  /** False when the head itself is unreadable: nothing else can be checked. */
  complete: boolean;
}

export async function readBundleHead(
  reader: BundleReader,
  opts: Pick<VerifyOptions, "publicKeyPem" | "requireSignature">,
): Promise<BundleHead> {
  const head: BundleHead = {
    started: performance.now(),
    key: loadKey(opts),
    problems: [],
    warnings: [],
    present: new Map(),
    sums: new Map(),
    toHash: [],
    complete: false,
  };
  const { problems } = head;
  let listing: { path: string; size: number }[];
  try {
    listing = await reader.list();
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
    problems.push(problemOf(err, "bundle"));
    return head;
  }
  const present = new Map(listing.map((e) => [e.path, e.size]));
  head.present = present;
  if (!present.has(CHECKSUMS_FILE)) {
    problems.push({ code: "MISSING_FILE", item: CHECKSUMS_FILE, message: "the bundle has no SHA256SUMS" });
    return head;
  }
  const sumsBytes = await reader.readSmall(CHECKSUMS_FILE, METADATA_MAX_BYTES);
  let sums: Map<string, string>;
  try {
    sums = parseChecksums(sumsBytes.toString("utf8"));
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
    problems.push(problemOf(err, CHECKSUMS_FILE));
    return head;
  }
  head.sums = sums;
  const sigs = new Map<string, Buffer>();
  for (const name of SIGNATURE_FILES) {
    if (present.has(name)) sigs.set(name, await reader.readSmall(name, SIG_MAX));
  }
  const verdict = judgeSignature(sumsBytes, sigs, head.key);
  head.verdict = verdict;
  if (verdict.problem) problems.push(verdict.problem);
  if (verdict.warning) head.warnings.push(verdict.warning);

  for (const path of sums.keys()) {
    if (!present.has(path)) {
      problems.push({
        code: "MISSING_FILE",
        item: path,
        message: `${path} is listed in SHA256SUMS but not in the bundle`,
      });
    }
  }
  for (const { path, size } of listing) {
    if (path === CHECKSUMS_FILE || SIGNATURE_FILES.includes(path)) continue;
    const expected = sums.get(path);
    if (expected === undefined) {
      problems.push({
        code: "UNLISTED_FILE",
        item: path,
        message: `${path} is in the bundle but not listed in SHA256SUMS`,
      });
      continue;
    }
    head.toHash.push({ path, size, expected });
  }
  head.complete = true;
  return head;
}

/** A report of the head's findings plus what was hashed since. */
export function headReport(
  head: BundleHead,
  counts: { files: number; blobs: number; bytes: number },
  more: VerifyProblem[] = [],
): VerifyReport {
  const all = dedupe([...head.problems, ...more]);
  return {
    ok: all.length === 0,
    signature: head.verdict?.signature ?? undecidedSignature(head.key, all),
    signed: head.verdict?.signed ?? false,
    ...counts,
    seconds: (performance.now() - head.started) / 1000,
    problems: all,
    warnings: head.warnings,
  };
}

async function verifyParallel(reader: BundleReader, opts: VerifyOptions): Promise<VerifyReport> {
  if (!isRangeReader(reader)) throw new Error("internal: parallel verification needs file ranges");
  const head = await readBundleHead(reader, opts);
  const { problems, present, sums, toHash, verdict } = head;
  const report = (_v: SignatureVerdict | undefined, files = 0, blobs = 0, bytes = 0): VerifyReport =>
    headReport(head, { files, blobs, bytes });
  if (!head.complete) return report(undefined);

  const totalBytes = toHash.reduce((a, f) => a + f.size, 0);
  let bytes = 0;
  let files = 0;
  let blobs = 0;
  const goodBlobs = new Set<string>();
  // Files that may be manifests: parsed from the very bytes hashed when small, else read again below.
  const mayBeManifest = (path: string, size: number) =>
    path === "index.json" || (blobHexOf(path) !== undefined && size <= MANIFEST_MAX);
  const refs: { item: string; digests: Reference[] }[] = [];
  const manifestCandidates: string[] = [];
  const pool = new HashPool(
    Math.max(
      1,
      Math.min(
        opts.concurrency ?? (reader.remote ? REMOTE_CONCURRENCY : availableParallelism()),
        toHash.length || 1,
      ),
    ),
  );
  const onAbort = () => void pool.close();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    await Promise.all(
      toHash.map(async (f) => {
        let result: HashResult;
        try {
          result = await pool.hash(
            await reader.ranges(f.path),
            (n) => {
              bytes += n;
              opts.onProgress?.({ path: f.path, bytes, totalBytes });
            },
            mayBeManifest(f.path, f.size) && f.size <= KEEP_MAX,
          );
        } catch (err) {
          opts.signal?.throwIfAborted();
          if (err instanceof HashError) {
            problems.push({ code: "TRUNCATED", item: f.path, message: `${f.path}: ${err.message}` });
            return;
          }
          if (err instanceof IntegrityError) {
            problems.push(problemOf(err, f.path));
            return;
          }
          throw err;
        }
        files++;
        const blobHex = blobHexOf(f.path);
        if (blobHex) blobs++;
        if (result.bytes !== f.size) {
          problems.push({
            code: "TRUNCATED",
            item: f.path,
            message: `${f.path} changed size while being read`,
          });
        } else if (result.sha256 !== f.expected) {
          problems.push({
            code: "CHECKSUM_MISMATCH",
            item: f.path,
            message: `${f.path}: content has sha256 ${short(result.sha256)}, SHA256SUMS says ${short(f.expected)}`,
          });
        } else if (blobHex && result.sha256 !== blobHex) {
          problems.push({
            code: "DIGEST_MISMATCH",
            item: f.path,
            message: `${f.path}: content has digest sha256:${result.sha256}`,
          });
        } else if (f.path.startsWith("blobs/") && !blobHex) {
          problems.push({
            code: "MALFORMED",
            item: f.path,
            message: `${f.path} is not named blobs/sha256/<64 hex digits>`,
          });
        } else {
          if (blobHex) goodBlobs.add(blobHex);
          if (mayBeManifest(f.path, f.size)) {
            if (result.content) {
              const r = referencesOf(result.content);
              if (r) refs.push({ item: f.path, digests: r });
            } else if (!result.notJson) manifestCandidates.push(f.path);
          }
        }
      }),
    );
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    await pool.close();
  }
  opts.signal?.throwIfAborted();

  // Every small file may be a manifest: with thousands of small layers these reads are most of the
  // run, so several are in flight at once. Each is parsed as it arrives (only what it references
  // is kept), and the results are taken in path order.
  const limit = pLimit(MANIFEST_READS);
  const found = await Promise.all(
    manifestCandidates.map((path) =>
      limit(async (): Promise<VerifyProblem | { item: string; digests: Reference[] } | undefined> => {
        const b = await reader.readSmall(path, path === "index.json" ? METADATA_MAX_BYTES : MANIFEST_MAX);
        // Re-read after hashing: make sure what is parsed is what was checked.
        if (createHash("sha256").update(b).digest("hex") !== sums.get(path)) {
          return { code: "CHECKSUM_MISMATCH", item: path, message: `${path} changed while being verified` };
        }
        const r = referencesOf(b);
        return r ? { item: path, digests: r } : undefined;
      }),
    ),
  );
  for (const f of found) {
    if (!f) continue;
    if ("digests" in f) refs.push(f);
    else problems.push(f);
  }
  let omitted = new Set<string>();
  if (sums.has("bundle.json") && present.has("bundle.json")) {
    const inv = await reader.readSmall("bundle.json", METADATA_MAX_BYTES);
    if (createHash("sha256").update(inv).digest("hex") === sums.get("bundle.json"))
      omitted = omittedBlobsOf(inv);
  }
  problems.push(...referenceProblems(refs, (hex) => present.get(`blobs/sha256/${hex}`), omitted));

  return report(verdict, files, blobs, bytes);
}

/** After a failure in split parts, names the parts whose own checksums fail. */
async function damagedParts(reader: BundleReader): Promise<VerifyProblem[]> {
  const parts = (reader as { partFiles?: PartFile[] }).partFiles ?? [];
  const out: VerifyProblem[] = [];
  const pool = new HashPool(Math.min(availableParallelism(), Math.max(1, parts.length)));
  try {
    await Promise.all(
      parts.map(async (p) => {
        if (!p.sha256) return;
        const r = await pool.hash([{ source: p.source, start: 0, length: p.size }]).catch(() => undefined);
        if (!r || r.sha256 !== p.sha256) {
          out.push({
            code: "CHECKSUM_MISMATCH",
            item: p.name,
            message: `part ${p.name} is damaged: its sha256 differs from the parts manifest`,
          });
        }
      }),
    );
  } finally {
    await pool.close();
  }
  return out;
}

/**
 * Verifies a bundle in any form and reports every problem found, each naming its file. With
 * `publicKeyPem` the SHA256SUMS signature must be present and valid; without it only integrity
 * is checked, and the report says so. Directories and seekable tars are hashed in parallel;
 * streams are checked in one pass.
 */
export async function verifyBundle(input: string | BundleReader, opts: VerifyOptions): Promise<VerifyReport> {
  loadKey(opts);
  const started = performance.now();
  let reader: BundleReader;
  if (typeof input === "string") {
    try {
      reader = await openBundle(input, opts.s3 ? { s3: opts.s3 } : {});
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err;
      return {
        ok: false,
        signature: undecidedSignature(opts.publicKeyPem, [problemOf(err, input)]),
        signed: false,
        files: 0,
        blobs: 0,
        bytes: 0,
        seconds: (performance.now() - started) / 1000,
        problems: [problemOf(err, input)],
        warnings: [],
      };
    }
  } else {
    reader = input;
  }
  try {
    opts.signal?.throwIfAborted();
    const report =
      reader.seekable && isRangeReader(reader)
        ? await verifyParallel(reader, opts)
        : await verifySequential(reader, opts);
    if (!report.ok && reader.kind === "parts") {
      // Damage inside a split archive shows first as a bad file or bad compressed data; the
      // parts' own checksums say which part to fetch again.
      const named = new Set(report.problems.map((p) => p.item));
      const extra = (await damagedParts(reader)).filter((p) => !named.has(p.item));
      if (extra.length) return { ...report, problems: dedupe([...report.problems, ...extra]) };
    }
    return report;
  } catch (err) {
    if (err instanceof AirgapError || opts.signal?.aborted) throw err;
    throw new AirgapError(
      `cannot verify ${typeof input === "string" ? input : "bundle"}: ${(err as Error).message}`,
      "FAILED",
      {
        cause: err,
      },
    );
  } finally {
    if (typeof input === "string") await reader.close();
  }
}
