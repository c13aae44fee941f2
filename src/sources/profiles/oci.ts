/**
 * Profiles stored as OCI artifacts (`oci: registry/repo:tag`), e.g. by another airgap bundle: the
 * manifest's profile layer (artifactType/mediaType `application/vnd.cinc.profile.v1+tar+gzip`, or
 * the first layer titled `*.tar.gz`) is downloaded through the registry client, verified against
 * its digest while streaming, and treated like a profile archive.
 */
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { ConfigError, IntegrityError } from "../../errors.js";
import { ANNOTATION_TITLE, type ImageManifest, parseManifest } from "../../oci/descriptor.js";
import { digestHex } from "../../oci/digest.js";
import { ArtifactType, MAX_MANIFEST_BYTES } from "../../oci/mediatypes.js";
import { parseReference } from "../../oci/reference.js";
import type { ProfileSource } from "../../profiles/metadata.js";
import { readBounded } from "../../store/streams.js";
import { type FetchedProfile, ProfileResolver } from "./base.js";
import { MAX_DOWNLOAD_BYTES } from "./http.js";
import { fromArchive } from "./url.js";

type OciSource = Extract<ProfileSource, { kind: "oci" }>;

export class OciResolver extends ProfileResolver<OciSource> {
  async fetch(source: OciSource, _cwd: string): Promise<FetchedProfile> {
    if (!this.ctx.openOci)
      throw new ConfigError(`profile ${source.oci}: OCI profile sources need a registry client`);
    const text = source.oci.replace(/^oci:\/\//, "");
    const ref = parseReference(text);
    const store = await this.ctx.openOci(ref.registry, ref.repository);
    const manifestDesc = await store.resolve(ref.digest ?? ref.tag ?? "latest", this.ctx.signal);
    const bytes = await readBounded(
      await store.fetch(manifestDesc, this.ctx.signal),
      MAX_MANIFEST_BYTES,
      text,
    );
    const manifest = parseManifest(bytes, manifestDesc) as ImageManifest;
    if (!Array.isArray(manifest.layers))
      throw new IntegrityError("MALFORMED", `${text} is not a profile artifact`, text);
    const layer =
      manifest.layers.find((l) => l.mediaType === ArtifactType.cincProfile) ??
      manifest.layers.find((l) => l.annotations?.[ANNOTATION_TITLE]?.endsWith(".tar.gz"));
    if (!layer) throw new IntegrityError("MALFORMED", `${text} has no profile (.tar.gz) layer`, text);
    if (!Number.isSafeInteger(layer.size) || layer.size < 0 || layer.size > MAX_DOWNLOAD_BYTES) {
      throw new IntegrityError(
        "MALFORMED",
        `${text}: profile layer of ${layer.size} bytes is larger than the ${MAX_DOWNLOAD_BYTES}-byte limit`,
        text,
      );
    }
    const dir = await this.scratch("oci");
    const file = join(dir, "profile.tar.gz");
    await pipeline(await store.fetch(layer, this.ctx.signal), createWriteStream(file), {
      signal: this.ctx.signal,
    });
    const { vendorDir, root } = await fromArchive(file, join(dir, "x"), text);
    const sha256 = digestHex(layer.digest, `profile layer of ${text}`);
    return {
      pinned: { oci: text, digest: manifestDesc.digest },
      cacheKey: sha256,
      vendorDir,
      vendorUnder: "",
      root,
      identity: `sha256:${sha256}`,
      label: text,
    };
  }
}
