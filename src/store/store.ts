import type { Readable } from "node:stream";
import type { Descriptor } from "../oci/descriptor.js";

/**
 * Anything that holds content by digest and names it by reference, scoped to one repository:
 * a repository of a remote registry, a repository view of an OCI layout, a bundle archive.
 * `ref` is a tag (`1.37`, `sha256-<hex>.sig`) or a digest (`sha256:<hex>`).
 */
export interface ReadOnlyStore {
  /** Names the store in messages, e.g. `registry 127.0.0.1:5000/test/single` or `layout /b (docker.io/library/busybox)`. */
  readonly label: string;
  /** The descriptor a tag or digest names; rejects with a clear error when it does not exist. */
  resolve(ref: string, signal?: AbortSignal): Promise<Descriptor>;
  /** Does the store hold this content (blob or manifest)? */
  exists(desc: Descriptor, signal?: AbortSignal): Promise<boolean>;
  /** The content, as a stream that errors (IntegrityError) at the end if size or digest differ. */
  fetch(desc: Descriptor, signal?: AbortSignal): Promise<Readable>;
  /** Manifests whose `subject` is `desc` (referrers API, or the `sha256-<hex>` tag schema). */
  referrers(desc: Descriptor, signal?: AbortSignal): Promise<Descriptor[]>;
}

export interface Store extends ReadOnlyStore {
  /**
   * Store content. Implementations must not commit anything unless the stream ends without error
   * and the bytes match `desc` (size and digest). A manifest that has a `subject` is also made
   * discoverable through `referrers()` of that subject.
   */
  push(desc: Descriptor, content: Readable, signal?: AbortSignal): Promise<void>;
  /** Point a tag at content already in the store. */
  tag(desc: Descriptor, ref: string, signal?: AbortSignal): Promise<void>;
}
