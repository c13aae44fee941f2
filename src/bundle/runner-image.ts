/**
 * Building an image without a container engine: a base image plus one layer that adds files.
 * Pure and deterministic: the same base and the same files give the same digests, byte for byte,
 * on any machine (fixed mtime and owner, no compression, JSON written in a fixed order).
 */

import type { Descriptor, ImageIndex, ImageManifest, Platform } from "../oci/descriptor.js";
import { sha256Digest } from "../oci/digest.js";
import { MediaType } from "../oci/mediatypes.js";
import { encodeHeader, padLength } from "./archive/tar-format.js";

/** Every layer entry's mtime: the epoch, so a rebuild from the same bytes is identical. */
export const LAYER_MTIME = new Date(0);

export interface LayerFile {
  /** Path inside the image, without a leading slash, e.g. `opt/cinc-airgap/airgap.mjs`. */
  path: string;
  bytes: Buffer;
}

/** An uncompressed tar layer holding `files` and their parent folders, root-owned, mode 0644/0755. */
export function filesLayer(files: LayerFile[]): Buffer {
  const parts: Buffer[] = [];
  const dirs = new Set<string>();
  for (const f of [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    const segments = f.path.split("/");
    for (let i = 1; i < segments.length; i++) {
      const dir = segments.slice(0, i).join("/");
      if (dirs.has(dir)) continue;
      dirs.add(dir);
      parts.push(encodeHeader(dir, 0, LAYER_MTIME, "Directory"));
    }
    parts.push(
      encodeHeader(f.path, f.bytes.length, LAYER_MTIME, "File"),
      f.bytes,
      Buffer.alloc(padLength(f.bytes.length)),
    );
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export interface ImageConfigChanges {
  entrypoint?: string[];
  cmd?: string[];
  user?: string;
  workingDir?: string;
  labels?: Record<string, string>;
  /** The history entry of the added layer. */
  createdBy: string;
}

export interface BuiltImage {
  manifest: Buffer;
  manifestDescriptor: Descriptor;
  config: Buffer;
  configDescriptor: Descriptor;
  layer: Descriptor;
}

type JsonObject = Record<string, unknown>;

function blob(mediaType: string, bytes: Buffer): Descriptor {
  return { mediaType, digest: sha256Digest(bytes), size: bytes.length };
}

/**
 * The base image with `layer` on top: its config gains the layer's diff ID, a history entry
 * (dated like the base, so the result does not depend on when it was built) and the given
 * entrypoint, command, user and labels. The manifest is OCI; the base layers keep their media types.
 */
export function appendLayer(
  base: { manifest: ImageManifest; config: Buffer; platform?: Platform },
  layer: Buffer,
  changes: ImageConfigChanges,
): BuiltImage {
  const layerDesc = blob(MediaType.ociLayer, layer);
  const config = JSON.parse(base.config.toString("utf8")) as JsonObject;
  const rootfs = (config.rootfs ?? { type: "layers", diff_ids: [] }) as { type: string; diff_ids: string[] };
  config.rootfs = { type: rootfs.type, diff_ids: [...rootfs.diff_ids, layerDesc.digest] };
  const created = typeof config.created === "string" ? config.created : LAYER_MTIME.toISOString();
  config.history = [
    ...((config.history as unknown[] | undefined) ?? []),
    { created, created_by: changes.createdBy, comment: "cinc-airgap: one layer, no container engine" },
  ];
  const c = { ...((config.config as JsonObject | undefined) ?? {}) };
  if (changes.entrypoint) c.Entrypoint = changes.entrypoint;
  if (changes.cmd) c.Cmd = changes.cmd;
  if (changes.user !== undefined) c.User = changes.user;
  if (changes.workingDir !== undefined) c.WorkingDir = changes.workingDir;
  if (changes.labels)
    c.Labels = { ...((c.Labels as Record<string, string> | null) ?? {}), ...changes.labels };
  config.config = c;
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDesc = blob(MediaType.ociConfig, configBytes);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: configDesc,
    layers: [
      ...base.manifest.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
      layerDesc,
    ],
    ...(changes.labels ? { annotations: { ...changes.labels } } : {}),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  return {
    manifest: manifestBytes,
    manifestDescriptor: {
      ...blob(MediaType.ociManifest, manifestBytes),
      ...(base.platform ? { platform: base.platform } : {}),
    },
    config: configBytes,
    configDescriptor: configDesc,
    layer: layerDesc,
  };
}

/** An OCI index over per-platform manifests (each descriptor carries its platform). */
export function imageIndex(manifests: Descriptor[], annotations?: Record<string, string>): Buffer {
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests,
    ...(annotations ? { annotations } : {}),
  };
  return Buffer.from(JSON.stringify(index));
}
