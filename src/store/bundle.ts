import { Readable } from "node:stream";
import type { BundleReader } from "../bundle/archive/reader.js";
import { IntegrityError, NotFoundError } from "../errors.js";
import {
  ANNOTATION_REF_NAME,
  assertDigest,
  type Descriptor,
  digestHex,
  type ImageIndex,
} from "../oci/descriptor.js";
import { markVerified, VerifyingStream } from "../oci/digest.js";
import { isManifestLike, MAX_MANIFEST_BYTES } from "../oci/mediatypes.js";
import { ANNOTATION_REPOSITORY, ANNOTATION_SUBJECT } from "./layout.js";
import type { ReadOnlyStore } from "./store.js";
import { CountingStream, readBounded } from "./streams.js";

/**
 * A bundle (directory, tar or split parts) read through random access, as a read-only store.
 * Writing into it is a type error: it has no push or tag. Every fetch is verified against its digest.
 */
export class BundleArchive {
  private files?: Map<string, number>;
  /** Blobs opened and bytes read from the bundle so far (a blob the target holds is never read). */
  readonly read = { blobs: 0, bytes: 0 };

  constructor(
    readonly reader: BundleReader,
    readonly index: ImageIndex,
    readonly label: string,
    /**
     * The whole bundle was just verified (every file hashed). Layers are then streamed without
     * hashing them a second time: they only go to registries, which check each blob's digest
     * themselves before they store it, so a file changed since verification is still refused.
     * Manifests are always hashed: they are parsed here.
     */
    private readonly verified = false,
  ) {
    if (!reader.seekable) throw new Error("BundleArchive needs a seekable bundle");
  }

  async has(desc: Descriptor): Promise<boolean> {
    if (!this.files) this.files = new Map((await this.reader.list()).map((f) => [f.path, f.size]));
    return this.files.get(`blobs/sha256/${digestHex(desc.digest)}`) === desc.size;
  }

  /** Manifests read ahead of the copy (the import's pre-flight), verified; fetches serve these. */
  private readonly readAhead = new Map<string, Buffer>();
  private readAheadBytes = 0;

  /**
   * A manifest's bytes, verified, read from the bundle once: kept (up to 32 MiB in all) so the
   * copy that follows does not read it again.
   */
  async readManifest(desc: Descriptor): Promise<Buffer> {
    const kept = this.readAhead.get(desc.digest);
    if (kept) return kept;
    let reading = this.reading.get(desc.digest);
    if (!reading) {
      reading = (async () =>
        readBounded(await this.fetch(desc), MAX_MANIFEST_BYTES, `blobs/sha256/${digestHex(desc.digest)}`))();
      this.reading.set(desc.digest, reading);
    }
    try {
      const bytes = await reading;
      if (!this.readAhead.has(desc.digest) && this.readAheadBytes + bytes.length <= 32 * 1024 * 1024) {
        this.readAhead.set(desc.digest, bytes);
        this.readAheadBytes += bytes.length;
      }
      return bytes;
    } finally {
      this.reading.delete(desc.digest);
    }
  }

  private readonly reading = new Map<string, Promise<Buffer>>();

  async fetch(desc: Descriptor): Promise<Readable> {
    const kept = this.readAhead.get(desc.digest);
    if (kept && kept.length === desc.size) {
      const stream = Readable.from([kept]);
      markVerified(stream, desc.digest, desc.size);
      return stream;
    }
    if (!(await this.has(desc))) {
      const path = `blobs/sha256/${digestHex(desc.digest)}`;
      const size = this.files?.get(path);
      // Present under its digest with another size: a descriptor that lies about its blob.
      if (size !== undefined) {
        throw new IntegrityError(
          "SIZE_MISMATCH",
          `${path} is ${size} bytes, but a descriptor in the bundle says ${desc.size}`,
          path,
        );
      }
      throw new NotFoundError(`${desc.digest} is not in ${this.label}`, desc.digest);
    }
    const file = await this.reader.open(`blobs/sha256/${digestHex(desc.digest)}`);
    this.read.blobs++;
    const stream = new CountingStream((n) => {
      this.read.bytes += n;
    });
    file.on("error", (err) => stream.destroy(err));
    file.pipe(stream);
    if (this.verified && !isManifestLike(desc.mediaType)) {
      markVerified(stream, desc.digest, desc.size);
      return stream;
    }
    const verify = new VerifyingStream(
      desc.digest,
      desc.size,
      `blobs/sha256/${digestHex(desc.digest)} in ${this.label}`,
    );
    stream.on("error", (err) => verify.destroy(err));
    return stream.pipe(verify);
  }

  referrerRoots() {
    return referrerRoots(this.index);
  }

  repository(name: string): BundleRepository {
    return new BundleRepository(this, name);
  }
}

export class BundleRepository implements ReadOnlyStore {
  readonly label: string;

  constructor(
    private readonly archive: BundleArchive,
    readonly repository: string,
  ) {
    this.label = `${archive.label} (${repository})`;
  }

  async resolve(ref: string): Promise<Descriptor> {
    const found = ref.startsWith("sha256:")
      ? this.archive.index.manifests.find((m) => m.digest === assertDigest(ref))
      : this.archive.index.manifests.find(
          (m) => m.annotations?.[ANNOTATION_REF_NAME] === `${this.repository}:${ref}`,
        );
    if (!found) throw new NotFoundError(`${ref} is not in ${this.label}`, ref);
    return { mediaType: found.mediaType, digest: found.digest, size: found.size };
  }

  exists(desc: Descriptor): Promise<boolean> {
    return this.archive.has(desc);
  }

  fetch(desc: Descriptor): Promise<Readable> {
    return this.archive.fetch(desc);
  }

  async referrers(desc: Descriptor): Promise<Descriptor[]> {
    return this.archive
      .referrerRoots()
      .filter((r) => r.repository === this.repository && r.subject === desc.digest)
      .map((r) => ({
        mediaType: r.descriptor.mediaType,
        digest: r.descriptor.digest,
        size: r.descriptor.size,
      }));
  }
}

/** Named roots of a bundle's index.json: `org.opencontainers.image.ref.name` = full reference. */
export function namedRoots(index: ImageIndex): { name: string; descriptor: Descriptor }[] {
  return index.manifests
    .filter((m) => m.annotations?.[ANNOTATION_REF_NAME])
    .map((m) => ({ name: m.annotations![ANNOTATION_REF_NAME]!, descriptor: m }));
}

/** Untagged roots that are referrers, with the repository they belong to. */
export function referrerRoots(
  index: ImageIndex,
): { repository: string; subject: string; descriptor: Descriptor }[] {
  return index.manifests
    .filter((m) => m.annotations?.[ANNOTATION_SUBJECT] && m.annotations?.[ANNOTATION_REPOSITORY])
    .map((m) => ({
      repository: m.annotations![ANNOTATION_REPOSITORY]!,
      subject: m.annotations![ANNOTATION_SUBJECT]!,
      descriptor: m,
    }));
}

export function parseIndexJson(bytes: Buffer, label: string): ImageIndex {
  try {
    const index = JSON.parse(bytes.toString("utf8")) as ImageIndex;
    if (index.schemaVersion !== 2 || !Array.isArray(index.manifests)) throw new Error("not an OCI index");
    for (const m of index.manifests) assertDigest(m.digest, `index.json entry of ${label}`);
    return index;
  } catch (err) {
    if (err instanceof IntegrityError) throw err;
    throw new IntegrityError("MALFORMED", `index.json of ${label} is not a valid OCI index`, "index.json", {
      cause: err,
    });
  }
}
