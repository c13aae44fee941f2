import { Readable } from "node:stream";
import pLimit, { type LimitFunction } from "p-limit";
import { AirgapError, IntegrityError, NotFoundError, RemoteError } from "../errors.js";
import { childrenOf, type Descriptor, digestHex, parseManifest } from "../oci/descriptor.js";
import { isVerifiedFor, markVerified, VerifyingStream } from "../oci/digest.js";
import { isManifestLike, MAX_MANIFEST_BYTES } from "../oci/mediatypes.js";
import {
  backoffDelay,
  DEFAULT_RETRY,
  isRetryableError,
  isRetryableStatus,
  type RetryPolicy,
  sleep,
} from "../oci/registry/retry.js";
import type { ReadOnlyStore, Store } from "./store.js";
import { readBounded } from "./streams.js";

/** cosign's tag suffixes: `sha256-<hex>.sig`, `.att`, `.sbom`. */
export type CosignTagKind = "sig" | "att" | "sbom";

export type CopyEvent =
  | { type: "start"; desc: Descriptor }
  | { type: "bytes"; desc: Descriptor; bytes: number }
  | { type: "done"; desc: Descriptor }
  | { type: "skip"; desc: Descriptor }
  /**
   * A blob copy failed on the way and starts again from its first byte (`bytes` of the failed
   * attempt had been reported; they move again).
   */
  | { type: "retry"; desc: Descriptor; attempt: number; bytes: number; error: Error };

export interface CopyGraphOptions {
  /** One limit shared by every copy of a run: caps concurrent transfers, not graph walking. */
  limit?: LimitFunction;
  signal?: AbortSignal;
  /** Follow `src.referrers()` of every manifest and copy them (recursively). */
  referrers?: boolean;
  /** Follow cosign tags (`sha256-<hex>.sig/.att/.sbom`) of every manifest and copy and tag them. */
  cosignTags?: CosignTagKind[];
  /**
   * In-flight and finished copies by digest, shared by calls that write to the same content
   * (e.g. every repository view of one layout), so a blob shared by many images is copied once.
   */
  inflight?: Map<string, Promise<void>>;
  onEvent?: (e: CopyEvent) => void;
  /**
   * Copy everything below the root but not the root manifest itself: its bytes are returned
   * (`heldRoot`) for the caller to push once every copy of the run has landed, so a failure
   * anywhere leaves no root behind. Undefined when dst already holds the root.
   */
  holdRoot?: boolean;
  /**
   * A root dst already holds is taken as complete and its graph is not walked: a registry checks a
   * manifest's children before it accepts the manifest, and with `holdRoot` a root is only pushed
   * after its whole graph landed. Saves an existence check per blob on a re-run.
   */
  presentRootIsComplete?: boolean;
  /**
   * How often a blob copy that failed on the way to dst (a connection cut in the middle of an
   * upload, a 5xx or 429 answer, a timeout) starts again from its first byte: the source is opened
   * again and dst begins a new upload. A failure of the source itself is not retried here (stores
   * retry and resume their own reads). Default: DEFAULT_RETRY; `{ retries: 0 }` turns it off.
   */
  retry?: RetryPolicy;
}

/** Content copied alongside the graph: cosign tags and referrers. */
export interface CopiedExtra {
  /** The manifest this extra is about. */
  subject: string;
  kind: CosignTagKind | "referrer";
  /** The tag in src and dst (cosign tags only). */
  tag?: string;
  descriptor: Descriptor;
}

export interface CopyResult {
  root: Descriptor;
  extras: CopiedExtra[];
  /** With `holdRoot`: the root manifest's bytes, verified, still to be pushed (dst lacks it). */
  heldRoot?: Buffer;
}

/**
 * A failure that may heal on another attempt: the connection (reset, closed, timed out) or the
 * other side's passing trouble (5xx, 429, 408). Never a digest or size mismatch, nor a refusal.
 */
export function isTransient(err: unknown): boolean {
  if (err instanceof IntegrityError) return false;
  if (err instanceof RemoteError && err.status !== undefined) return isRetryableStatus(err.status);
  return isRetryableError(err);
}

/**
 * A blob's content for dst.push, opened from the source on the first read. It fails unless its
 * bytes match the descriptor (the source's own verification, or a VerifyingStream added here), so
 * it carries the verified mark and dst does not hash the bytes a second time. Destroying it
 * closes the source. `sourceFailed` tells a failing source from a consumer that gave up.
 */
class SourceOnRead extends Readable {
  private source: Readable | undefined;
  private opening = false;
  sourceFailed = false;

  constructor(
    private readonly desc: Descriptor,
    private readonly open: () => Promise<Readable>,
    private readonly onBytes: (n: number) => void,
  ) {
    super();
    markVerified(this, desc.digest, desc.size);
  }

  override _read(): void {
    if (this.source) {
      this.source.resume();
      return;
    }
    if (this.opening) return;
    this.opening = true;
    // Opened from a microtask, not from inside _read (which runs in a nextTick): the source's own
    // first ticks then come after the listeners below are on it, so no early error goes unheard.
    Promise.resolve()
      .then(() => this.open())
      .then(
        (opened) => {
          opened.on("error", (err) => this.fail(err));
          if (this.destroyed) {
            opened.destroy();
            return;
          }
          let s = opened;
          if (!isVerifiedFor(opened, this.desc)) {
            const verifying = new VerifyingStream(this.desc.digest, this.desc.size);
            verifying.on("error", (err) => this.fail(err));
            verifying.on("close", () => opened.destroy());
            s = opened.pipe(verifying);
          }
          this.source = s;
          s.on("data", (chunk: Buffer) => {
            this.onBytes(chunk.length);
            if (!this.push(chunk)) s.pause();
          });
          s.on("end", () => this.push(null));
        },
        (err: Error) => this.fail(err),
      );
  }

  private fail(err: Error): void {
    if (this.destroyed) return;
    this.sourceFailed = true;
    this.destroy(err);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.source?.destroy();
    cb(err);
  }
}

/** Is this error a store saying "not there"? Registries' 404 counts, whatever class the client used. */
export function isNotFound(err: unknown): boolean {
  if (err instanceof NotFoundError) return true;
  return err instanceof RemoteError && err.status === 404;
}

const MAX_DEPTH = 16;

/**
 * Copy the graph rooted at `root` from `src` to `dst`: children before parents, skipping what `dst`
 * already has, every byte verified against its digest while it streams (the stores guarantee it),
 * each blob copied once however many manifests share it. Tags nothing except cosign tags it follows:
 * the caller tags the root.
 */
export async function copyGraph(
  src: ReadOnlyStore,
  dst: Store,
  root: Descriptor,
  options: CopyGraphOptions = {},
): Promise<CopyResult> {
  const limit = options.limit ?? pLimit(8);
  const inflight = options.inflight ?? new Map<string, Promise<void>>();
  const { signal } = options;
  const emit = options.onEvent ?? (() => {});
  const extras: CopiedExtra[] = [];
  let heldRoot: Buffer | undefined;

  const copyNode = (desc: Descriptor, depth: number): Promise<void> => {
    if (depth > MAX_DEPTH) {
      return Promise.reject(
        new IntegrityError(
          "MALFORMED",
          `manifest graph below ${root.digest} is nested deeper than ${MAX_DEPTH}`,
          desc.digest,
        ),
      );
    }
    const known = inflight.get(desc.digest);
    if (known) return known;
    const work = isManifestLike(desc.mediaType) ? copyManifest(desc, depth) : copyBlob(desc);
    inflight.set(desc.digest, work);
    // A failed copy must not poison later attempts (a rerun in the same process, another image).
    work.catch(() => inflight.delete(desc.digest));
    return work;
  };

  // Existence checks take a slot of the limit too: a graph of thousands of layers must not become
  // thousands of requests at once.
  const retry = options.retry ?? DEFAULT_RETRY;
  const copyBlob = (desc: Descriptor): Promise<void> =>
    limit(async () => {
      signal?.throwIfAborted();
      if (await dst.exists(desc, signal)) {
        emit({ type: "skip", desc });
        return;
      }
      emit({ type: "start", desc });
      for (let attempt = 0; ; attempt++) {
        let sent = 0;
        // Opened only when dst reads it: a registry that mounts the blob from another repository
        // never reads the source at all.
        const content = new SourceOnRead(
          desc,
          () => src.fetch(desc, signal),
          (bytes) => {
            sent += bytes;
            emit({ type: "bytes", desc, bytes });
          },
        );
        try {
          await dst.push(desc, content, signal);
          break;
        } catch (err) {
          if (signal?.aborted || attempt >= retry.retries || content.sourceFailed || !isTransient(err))
            throw err;
          emit({ type: "retry", desc, attempt: attempt + 1, bytes: sent, error: err as Error });
          if (sent > 0) emit({ type: "bytes", desc, bytes: -sent });
          await sleep(backoffDelay(attempt, retry), signal);
        } finally {
          content.destroy();
        }
      }
      emit({ type: "done", desc });
    });

  const copyManifest = async (desc: Descriptor, depth: number): Promise<void> => {
    const present = await limit(() => dst.exists(desc, signal));
    if (present && depth === 0 && options.presentRootIsComplete) {
      emit({ type: "skip", desc });
      return;
    }
    // Read from dst when it has the manifest: walking its children (for extras and to heal
    // interrupted copies) then costs no network on the source side.
    const bytes = await limit(async () =>
      readBounded(await (present ? dst : src).fetch(desc, signal), MAX_MANIFEST_BYTES, desc.digest),
    );
    const manifest = parseManifest(bytes, desc);
    await Promise.all(childrenOf(manifest).map((child) => copyNode(child, depth + 1)));
    if (present) {
      emit({ type: "skip", desc });
    } else if (options.holdRoot && depth === 0) {
      heldRoot = bytes;
    } else {
      await limit(async () => {
        emit({ type: "start", desc });
        await dst.push(desc, Readable.from([bytes]), signal);
        // A manifest's bytes moved too: progress totals count them like a blob's.
        emit({ type: "bytes", desc, bytes: bytes.length });
        emit({ type: "done", desc });
      });
    }
    await copyExtras(desc, depth);
  };

  const copyExtras = async (desc: Descriptor, depth: number): Promise<void> => {
    const tasks: Promise<void>[] = [];
    for (const kind of options.cosignTags ?? []) {
      const tag = `sha256-${digestHex(desc.digest)}.${kind}`;
      tasks.push(
        (async () => {
          let found: Descriptor;
          try {
            found = await limit(() => src.resolve(tag, signal));
          } catch (err) {
            if (isNotFound(err)) return;
            throw err;
          }
          await copyNode(found, depth + 1);
          await limit(() => dst.tag(found, tag, signal));
          extras.push({ subject: desc.digest, kind, tag, descriptor: found });
        })(),
      );
    }
    if (options.referrers) {
      tasks.push(
        (async () => {
          let list: Descriptor[];
          try {
            list = await limit(() => src.referrers(desc, signal));
          } catch (err) {
            if (isNotFound(err)) return;
            throw err;
          }
          await Promise.all(
            list.map(async (ref) => {
              await copyNode(ref, depth + 1);
              extras.push({ subject: desc.digest, kind: "referrer", descriptor: ref });
            }),
          );
        })(),
      );
    }
    await Promise.all(tasks);
  };

  try {
    await copyNode(root, 0);
  } catch (err) {
    if (err instanceof AirgapError) throw err;
    throw new AirgapError(
      `copying ${root.digest} from ${src.label} to ${dst.label} failed: ${(err as Error).message}`,
      "COPY",
      {
        cause: err,
      },
    );
  }
  return heldRoot ? { root, extras, heldRoot } : { root, extras };
}
