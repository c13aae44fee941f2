import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { chmod, mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { IntegrityError, NotFoundError } from "../errors.js";
import {
  ANNOTATION_CONTAINERD_NAME,
  ANNOTATION_REF_NAME,
  assertDigest,
  type Descriptor,
  digestHex,
  type ImageIndex,
  manifestMediaType,
  parseManifest,
} from "../oci/descriptor.js";
import { isVerifiedFor, VerifyingStream } from "../oci/digest.js";
import { isManifestLike, MAX_MANIFEST_BYTES, MediaType } from "../oci/mediatypes.js";
import { trackTemp } from "../temp-files.js";
import type { Store } from "./store.js";
import { readBounded } from "./streams.js";

/** Annotations airgap adds to untagged roots of a layout so referrers stay discoverable. */
export const ANNOTATION_SUBJECT = "io.cinc-airgap.subject";
export const ANNOTATION_REPOSITORY = "io.cinc-airgap.repository";

const LAYOUT_VERSION = '{"imageLayoutVersion":"1.0.0"}';

/** The mtime every verified blob carries; a different mtime means the file was written since. */
export const BLOB_MTIME = new Date("2000-01-01T00:00:00Z");

/**
 * A blob temp file untouched this long belongs to no running writer (a writer appends to it as the
 * bytes arrive): it is what a killed run left, and opening the layout removes it.
 */
export const STALE_PARTIAL_MS = 10 * 60 * 1000;

/** Remove `*.partial-*` blob files that no writer has touched for STALE_PARTIAL_MS. */
async function removeStalePartials(blobs: string): Promise<void> {
  const names = await readdir(blobs).catch(() => [] as string[]);
  const before = Date.now() - STALE_PARTIAL_MS;
  for (const name of names) {
    if (!name.includes(".partial-")) continue;
    const path = join(blobs, name);
    const st = await stat(path).catch(() => undefined);
    if (st?.isFile() && st.mtimeMs < before) await rm(path, { force: true });
  }
}

/**
 * An OCI image layout on disk. Blobs are written to a temporary file, verified, then renamed, so an
 * interrupted run never leaves a corrupt blob and a rerun resumes where it stopped. `index.json`
 * has one writer: this object, which keeps it in memory and writes it atomically on `save()`.
 */
export class OciLayoutStore {
  private index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
  private saving: Promise<void> = Promise.resolve();

  private constructor(readonly root: string) {}

  /** Open a layout, creating it when `create` is set and it does not exist. */
  static async open(root: string, opts: { create?: boolean } = {}): Promise<OciLayoutStore> {
    const store = new OciLayoutStore(root);
    let layoutText: string | undefined;
    try {
      layoutText = await readFile(join(root, "oci-layout"), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT" || !opts.create) {
        throw new NotFoundError(`${root} is not an OCI image layout (no oci-layout file)`, root, {
          cause: err,
        });
      }
    }
    if (layoutText === undefined) {
      await mkdir(join(root, "blobs", "sha256"), { recursive: true });
      await writeFile(join(root, "oci-layout"), LAYOUT_VERSION);
      await store.save();
      return store;
    }
    await mkdir(join(root, "blobs", "sha256"), { recursive: true });
    await removeStalePartials(join(root, "blobs", "sha256"));
    try {
      const parsed = JSON.parse(await readFile(join(root, "index.json"), "utf8")) as ImageIndex;
      if (!Array.isArray(parsed.manifests)) throw new Error("no manifests list");
      store.index = parsed;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
        throw new IntegrityError(
          "MALFORMED",
          `${join(root, "index.json")} is not a valid OCI index`,
          "index.json",
          {
            cause: err,
          },
        );
      }
    }
    return store;
  }

  blobPath(digest: string): string {
    return join(this.root, "blobs", "sha256", digestHex(digest));
  }

  /**
   * Does the layout hold this blob, intact? A blob file only appears by rename after verification,
   * stamped with BLOB_MTIME. Bundles written from the layout hard-link its files, so an edit made
   * in a bundle reaches the same file: any write moves the mtime off the stamp, and such a blob is
   * hashed again before it is trusted (and dropped if it no longer matches).
   */
  async hasBlob(desc: Pick<Descriptor, "digest" | "size">): Promise<boolean> {
    const path = this.blobPath(desc.digest);
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(path);
    } catch {
      return false;
    }
    if (!st.isFile() || st.size !== desc.size) return false;
    if (st.mtimeMs === BLOB_MTIME.getTime()) return true;
    const hash = createHash("sha256");
    for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }))
      hash.update(chunk as Buffer);
    if (`sha256:${hash.digest("hex")}` === desc.digest) {
      await utimes(path, BLOB_MTIME, BLOB_MTIME);
      return true;
    }
    await rm(path, { force: true });
    return false;
  }

  /** Stream a blob, verified against its descriptor while it is read. */
  async readBlob(desc: Descriptor): Promise<Readable> {
    const path = this.blobPath(desc.digest);
    try {
      await stat(path);
    } catch (err) {
      throw new NotFoundError(`blob ${desc.digest} is not in the layout at ${this.root}`, desc.digest, {
        cause: err,
      });
    }
    const verify = new VerifyingStream(desc.digest, desc.size, `blob ${desc.digest} in ${this.root}`);
    const file = createReadStream(path, { highWaterMark: 1024 * 1024 });
    file.on("error", (err) => verify.destroy(err));
    return file.pipe(verify);
  }

  /**
   * Write a blob: temp file → verify → rename. A stream that is already a VerifyingStream for the
   * same digest and size is not hashed a second time.
   */
  async writeBlob(desc: Descriptor, content: Readable, signal?: AbortSignal): Promise<void> {
    if (await this.hasBlob(desc)) {
      content.resume();
      return;
    }
    const final = this.blobPath(desc.digest);
    const temp = `${final}.partial-${randomBytes(6).toString("hex")}`;
    const untrack = trackTemp(temp);
    const stages: NodeJS.ReadWriteStream[] = isVerifiedFor(content, desc)
      ? []
      : [new VerifyingStream(desc.digest, desc.size, `blob ${desc.digest} from ${this.root}`)];
    try {
      // A large write buffer lets many small network chunks go to disk in one writev.
      await pipeline(
        [content, ...stages, createWriteStream(temp, { flags: "wx", highWaterMark: 8 * 1024 * 1024 })],
        {
          signal,
        },
      );
      await chmod(temp, 0o444);
      await utimes(temp, BLOB_MTIME, BLOB_MTIME);
      await rename(temp, final);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    } finally {
      untrack();
    }
  }

  async writeBytes(desc: Descriptor, bytes: Uint8Array): Promise<void> {
    await this.writeBlob(desc, Readable.from([Buffer.from(bytes)]));
  }

  /** Root descriptors of index.json. */
  roots(): Descriptor[] {
    return this.index.manifests;
  }

  /** Point `name` (a full reference, e.g. docker.io/library/busybox:1.37) at `desc`. */
  setRef(name: string, desc: Descriptor): void {
    const entry: Descriptor = {
      mediaType: desc.mediaType,
      digest: desc.digest,
      size: desc.size,
      ...(desc.artifactType ? { artifactType: desc.artifactType } : {}),
      annotations: {
        ...stripRefAnnotations(desc.annotations),
        [ANNOTATION_REF_NAME]: name,
        [ANNOTATION_CONTAINERD_NAME]: name,
      },
    };
    this.index.manifests = this.index.manifests.filter((m) => m.annotations?.[ANNOTATION_REF_NAME] !== name);
    this.index.manifests.push(entry);
  }

  /** Record an untagged root (a referrer) so it can be found again; no-op when already present. */
  addRoot(desc: Descriptor): void {
    const already = this.index.manifests.some(
      (m) => m.digest === desc.digest && m.annotations?.[ANNOTATION_REF_NAME] === undefined,
    );
    if (!already) this.index.manifests.push(desc);
  }

  findRef(name: string): Descriptor | undefined {
    return this.index.manifests.find((m) => m.annotations?.[ANNOTATION_REF_NAME] === name);
  }

  /** Write index.json atomically; concurrent calls are serialized. */
  save(): Promise<void> {
    const text = `${JSON.stringify(this.index, null, 2)}\n`;
    const path = join(this.root, "index.json");
    this.saving = this.saving.then(async () => {
      const temp = `${path}.partial-${randomBytes(6).toString("hex")}`;
      const untrack = trackTemp(temp);
      try {
        await writeFile(temp, text);
        await rename(temp, path);
      } finally {
        untrack();
      }
    });
    return this.saving;
  }

  /** A Store view of one repository (e.g. docker.io/library/busybox) of this layout. */
  repository(name: string): LayoutRepositoryStore {
    return new LayoutRepositoryStore(this, name);
  }
}

function stripRefAnnotations(a: Record<string, string> | undefined): Record<string, string> {
  const out = { ...(a ?? {}) };
  delete out[ANNOTATION_REF_NAME];
  delete out[ANNOTATION_CONTAINERD_NAME];
  return out;
}

/**
 * One repository of a layout. Tags are stored as `org.opencontainers.image.ref.name` = `<repo>:<tag>`
 * (the full reference, as skopeo and containerd expect). Blobs are shared by all repositories.
 */
export class LayoutRepositoryStore implements Store {
  readonly label: string;

  constructor(
    readonly layout: OciLayoutStore,
    readonly repository: string,
  ) {
    this.label = `layout ${layout.root} (${repository})`;
  }

  async resolve(ref: string): Promise<Descriptor> {
    if (ref.startsWith("sha256:")) {
      assertDigest(ref);
      const known = this.layout.roots().find((m) => m.digest === ref);
      if (known) return { mediaType: known.mediaType, digest: known.digest, size: known.size };
      let size: number;
      try {
        size = (await stat(this.layout.blobPath(ref))).size;
      } catch (err) {
        throw new NotFoundError(`${ref} is not in ${this.label}`, ref, { cause: err });
      }
      if (size > MAX_MANIFEST_BYTES)
        throw new IntegrityError("MALFORMED", `${ref} in ${this.label} is not a manifest`, ref);
      const bytes = await readFile(this.layout.blobPath(ref));
      const mediaType = manifestMediaType(bytes);
      if (!mediaType) throw new IntegrityError("MALFORMED", `${ref} in ${this.label} is not a manifest`, ref);
      return { mediaType, digest: ref, size };
    }
    const found = this.layout.findRef(`${this.repository}:${ref}`);
    if (!found) throw new NotFoundError(`tag ${ref} is not in ${this.label}`, `${this.repository}:${ref}`);
    const out: Descriptor = { mediaType: found.mediaType, digest: found.digest, size: found.size };
    if (found.artifactType) out.artifactType = found.artifactType;
    return out;
  }

  exists(desc: Descriptor): Promise<boolean> {
    return this.layout.hasBlob(desc);
  }

  fetch(desc: Descriptor): Promise<Readable> {
    return this.layout.readBlob(desc);
  }

  async referrers(desc: Descriptor): Promise<Descriptor[]> {
    return this.layout
      .roots()
      .filter(
        (m) =>
          m.annotations?.[ANNOTATION_SUBJECT] === desc.digest &&
          m.annotations?.[ANNOTATION_REPOSITORY] === this.repository,
      )
      .map((m) => {
        const annotations = { ...m.annotations };
        delete annotations[ANNOTATION_SUBJECT];
        delete annotations[ANNOTATION_REPOSITORY];
        const out: Descriptor = { mediaType: m.mediaType, digest: m.digest, size: m.size };
        if (m.artifactType) out.artifactType = m.artifactType;
        if (Object.keys(annotations).length > 0) out.annotations = annotations;
        return out;
      });
  }

  async push(desc: Descriptor, content: Readable, signal?: AbortSignal): Promise<void> {
    if (!isManifestLike(desc.mediaType)) {
      await this.layout.writeBlob(desc, content, signal);
      return;
    }
    const bytes = await readBounded(content, MAX_MANIFEST_BYTES, desc.digest);
    const verified = new VerifyingStream(desc.digest, desc.size, `manifest ${desc.digest} for ${this.label}`);
    await this.layout.writeBlob(desc, Readable.from([bytes]).pipe(verified), signal);
    const manifest = parseManifest(bytes, desc);
    if (manifest.subject) {
      const root: Descriptor = {
        mediaType: desc.mediaType,
        digest: desc.digest,
        size: desc.size,
        annotations: {
          ...(manifest.annotations ?? {}),
          [ANNOTATION_SUBJECT]: manifest.subject.digest,
          [ANNOTATION_REPOSITORY]: this.repository,
        },
      };
      const artifactType =
        manifest.artifactType ?? ("config" in manifest ? manifest.config.mediaType : undefined);
      if (artifactType) root.artifactType = artifactType;
      this.layout.addRoot(root);
    }
  }

  async tag(desc: Descriptor, ref: string): Promise<void> {
    if (!(await this.layout.hasBlob(desc))) {
      throw new NotFoundError(`cannot tag ${ref}: ${desc.digest} is not in ${this.label}`, desc.digest);
    }
    this.layout.setRef(`${this.repository}:${ref}`, desc);
  }
}
