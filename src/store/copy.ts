import { Readable } from "node:stream";
import pLimit, { type LimitFunction } from "p-limit";
import { AirgapError, IntegrityError, NotFoundError, RemoteError } from "../errors.js";
import { childrenOf, type Descriptor, digestHex, parseManifest } from "../oci/descriptor.js";
import { isManifestLike, MAX_MANIFEST_BYTES } from "../oci/mediatypes.js";
import type { ReadOnlyStore, Store } from "./store.js";
import { readBounded, withProgress } from "./streams.js";

/** cosign's tag suffixes: `sha256-<hex>.sig`, `.att`, `.sbom`. */
export type CosignTagKind = "sig" | "att" | "sbom";

export type CopyEvent =
  | { type: "start"; desc: Descriptor }
  | { type: "bytes"; desc: Descriptor; bytes: number }
  | { type: "done"; desc: Descriptor }
  | { type: "skip"; desc: Descriptor };

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
  const copyBlob = (desc: Descriptor): Promise<void> =>
    limit(async () => {
      signal?.throwIfAborted();
      if (await dst.exists(desc, signal)) {
        emit({ type: "skip", desc });
        return;
      }
      emit({ type: "start", desc });
      const stream = await src.fetch(desc, signal);
      const counted = withProgress(stream, desc, (bytes) => emit({ type: "bytes", desc, bytes }));
      await dst.push(desc, counted, signal);
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
