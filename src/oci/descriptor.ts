import { IntegrityError, UsageError } from "../errors.js";
import { isImageManifest, isIndex, MAX_MANIFEST_BYTES } from "./mediatypes.js";

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  "os.version"?: string;
  "os.features"?: string[];
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
  urls?: string[];
  data?: string;
}

/** An OCI image manifest or a Docker v2s2 manifest (same shape for what airgap needs). */
export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** An OCI image index or a Docker manifest list. */
export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export type Manifest = ImageManifest | ImageIndex;

export const ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name";
export const ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name";
export const ANNOTATION_TITLE = "org.opencontainers.image.title";

// The digest parser lives in digest.ts; re-exported here for the many callers that import it from here.
import { assertDigest, digestHex } from "./digest.js";

export { assertDigest, digestHex };

export function formatPlatform(p: Platform | undefined): string {
  if (!p) return "";
  return [p.os, p.architecture, p.variant].filter(Boolean).join("/");
}

export function parsePlatform(s: string): Platform {
  const [os, architecture, variant] = s.split("/");
  if (!os || !architecture) throw new UsageError(`platform "${s}" is not os/arch[/variant]`);
  return variant ? { os, architecture, variant } : { os, architecture };
}

/**
 * Does `have` satisfy the wanted platform? A wanted platform without variant matches any variant;
 * arm64 without variant matches v8, as Docker does.
 */
export function platformMatches(have: Platform | undefined, want: Platform): boolean {
  if (!have) return false;
  if (have.os !== want.os || have.architecture !== want.architecture) return false;
  if (!want.variant) return true;
  const norm = (p: Platform) => p.variant ?? (p.architecture === "arm64" ? "v8" : "");
  return norm(have) === norm(want);
}

/**
 * Parse manifest bytes, refusing oversized or malformed content. The caller has verified the bytes
 * against their digest; this checks the shape enough to walk the graph safely.
 */
export function parseManifest(bytes: Uint8Array, desc: Pick<Descriptor, "digest" | "mediaType">): Manifest {
  if (bytes.length > MAX_MANIFEST_BYTES) {
    throw new IntegrityError(
      "MALFORMED",
      `manifest ${desc.digest} is ${bytes.length} bytes, over the 4 MiB limit`,
      desc.digest,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch (err) {
    throw new IntegrityError("MALFORMED", `manifest ${desc.digest} is not valid JSON`, desc.digest, {
      cause: err,
    });
  }
  const m = json as Partial<ImageManifest & ImageIndex>;
  if (typeof m !== "object" || m === null || m.schemaVersion !== 2) {
    throw new IntegrityError("MALFORMED", `manifest ${desc.digest} has no schemaVersion 2`, desc.digest);
  }
  const checkDesc = (d: unknown, where: string) => {
    const x = d as Descriptor;
    if (
      !x ||
      typeof x.digest !== "string" ||
      typeof x.size !== "number" ||
      typeof x.mediaType !== "string" ||
      x.size < 0
    ) {
      throw new IntegrityError(
        "MALFORMED",
        `manifest ${desc.digest} has a malformed descriptor in ${where}`,
        desc.digest,
      );
    }
    assertDigest(x.digest, `${where} digest in manifest ${desc.digest}`);
  };
  if (isIndex(desc.mediaType) || (Array.isArray(m.manifests) && !m.config)) {
    if (!Array.isArray(m.manifests)) {
      throw new IntegrityError("MALFORMED", `index ${desc.digest} has no manifests list`, desc.digest);
    }
    for (const [i, d] of m.manifests.entries()) checkDesc(d, `manifests[${i}]`);
  } else {
    if (!m.config || !Array.isArray(m.layers)) {
      throw new IntegrityError("MALFORMED", `manifest ${desc.digest} lacks config or layers`, desc.digest);
    }
    checkDesc(m.config, "config");
    for (const [i, d] of m.layers.entries()) checkDesc(d, `layers[${i}]`);
  }
  if (m.subject) checkDesc(m.subject, "subject");
  return m as Manifest;
}

/** The media type a manifest declares for itself, or the one its shape implies. */
export function manifestMediaType(bytes: Uint8Array): string | undefined {
  try {
    const m = JSON.parse(Buffer.from(bytes).toString("utf8")) as {
      mediaType?: string;
      manifests?: unknown;
      config?: unknown;
    };
    if (m.mediaType) return m.mediaType;
    if (Array.isArray(m.manifests)) return "application/vnd.oci.image.index.v1+json";
    if (m.config) return "application/vnd.oci.image.manifest.v1+json";
  } catch {
    // not JSON: the caller reports it
  }
  return undefined;
}

/**
 * The content a manifest refers to (children), excluding `subject`: a referrer points at its
 * subject, the subject does not own the referrer. Non-distributable layers with `urls` are skipped.
 */
export function childrenOf(m: Manifest): Descriptor[] {
  if ("manifests" in m && Array.isArray(m.manifests)) return m.manifests;
  const im = m as ImageManifest;
  const out: Descriptor[] = [im.config];
  for (const l of im.layers) out.push(l);
  return out;
}

export function isManifestDescriptor(d: Descriptor): boolean {
  return isIndex(d.mediaType) || isImageManifest(d.mediaType);
}
