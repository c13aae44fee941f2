import { Readable } from "node:stream";
import { NotFoundError } from "../../src/errors.js";
import type { Descriptor, Manifest } from "../../src/oci/descriptor.js";
import { sha256Digest, VerifyingStream } from "../../src/oci/digest.js";
import { MediaType } from "../../src/oci/mediatypes.js";
import type { Store } from "../../src/store/store.js";

/** An in-memory Store for testing graph logic (copyGraph) without I/O; counts what it is asked. */
export class MemoryStore implements Store {
  readonly blobs = new Map<string, Buffer>();
  readonly tags = new Map<string, Descriptor>();
  readonly subjects = new Map<string, Descriptor[]>();
  readonly calls = { fetch: 0, push: 0, exists: 0 };
  readonly pushed: string[] = [];
  constructor(readonly label = "memory") {}

  add(bytes: Buffer, mediaType: string): Descriptor {
    const desc = { mediaType, digest: sha256Digest(bytes), size: bytes.length };
    this.blobs.set(desc.digest, bytes);
    return desc;
  }

  addManifest(m: Manifest & { mediaType: string }, tag?: string): Descriptor {
    const desc = this.add(Buffer.from(JSON.stringify(m)), m.mediaType);
    if (tag) this.tags.set(tag, desc);
    if (m.subject) {
      const list = this.subjects.get(m.subject.digest) ?? [];
      list.push(desc);
      this.subjects.set(m.subject.digest, list);
    }
    return desc;
  }

  async resolve(ref: string): Promise<Descriptor> {
    const d = this.tags.get(ref);
    if (!d) throw new NotFoundError(`${ref} not found`, ref);
    return d;
  }
  async exists(desc: Descriptor): Promise<boolean> {
    this.calls.exists++;
    return this.blobs.has(desc.digest);
  }
  async fetch(desc: Descriptor): Promise<Readable> {
    this.calls.fetch++;
    const b = this.blobs.get(desc.digest);
    if (!b) throw new NotFoundError(`${desc.digest} not found`, desc.digest);
    return Readable.from([b]).pipe(new VerifyingStream(desc.digest, desc.size));
  }
  async referrers(desc: Descriptor): Promise<Descriptor[]> {
    return this.subjects.get(desc.digest) ?? [];
  }
  async push(desc: Descriptor, content: Readable): Promise<void> {
    this.calls.push++;
    const chunks: Buffer[] = [];
    const verify = new VerifyingStream(desc.digest, desc.size);
    content.on("error", (err) => verify.destroy(err));
    for await (const c of content.pipe(verify)) chunks.push(c as Buffer);
    // children must already be here: the order copyGraph promises
    if (desc.mediaType.includes("manifest") || desc.mediaType.includes("index")) {
      const m = JSON.parse(Buffer.concat(chunks).toString()) as {
        manifests?: Descriptor[];
        config?: Descriptor;
        layers?: Descriptor[];
      };
      for (const c of [...(m.manifests ?? []), ...(m.config ? [m.config] : []), ...(m.layers ?? [])]) {
        if (!this.blobs.has(c.digest))
          throw new Error(`parent ${desc.digest} pushed before child ${c.digest}`);
      }
    }
    this.blobs.set(desc.digest, Buffer.concat(chunks));
    this.pushed.push(desc.digest);
  }
  async tag(desc: Descriptor, ref: string): Promise<void> {
    this.tags.set(ref, desc);
  }
}

export function image(store: MemoryStore, layers: Buffer[], extra: Partial<Manifest> = {}): Descriptor {
  const config = store.add(Buffer.from(`{"rand":"${Math.random()}"}`), MediaType.ociConfig);
  const layerDescs = layers.map((l) => store.add(l, MediaType.ociLayer));
  return store.addManifest({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config,
    layers: layerDescs,
    ...extra,
  } as Manifest & { mediaType: string });
}
