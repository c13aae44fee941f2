import { readFile } from "node:fs/promises";
import { matchesGlob, verifySigstoreBundleForImage, verifySimpleSigning } from "../bundle/cosign.js";
import type { SignaturePolicyResult } from "../bundle/inventory.js";
import { loadPublicKey } from "../bundle/keys.js";
import type { VerifyRule } from "../config/types.js";
import { IntegrityError } from "../errors.js";
import { type Descriptor, digestHex, type ImageManifest, parseManifest } from "../oci/descriptor.js";
import { MediaType } from "../oci/mediatypes.js";
import type { RegistryClient } from "../oci/registry/client.js";
import type { ResolvedImage } from "../sources/images.js";
import { isNotFound } from "../store/copy.js";
import { type RegistryStore, registryRepository } from "../store/registry.js";
import { readBounded } from "../store/streams.js";

const SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature";
const MAX_SIGNATURE_LAYER = 1024 * 1024;

/**
 * Upstream signature policy: every `verify:` rule whose glob matches the image must be satisfied by
 * a cosign signature (legacy `sha256-<hex>.sig` simple-signing tag, or a Sigstore bundle referrer)
 * made with the rule's key over the digest the registry served. A failing rule stops the create.
 */
export function checkImagePolicy(rules: VerifyRule[]) {
  return async (image: ResolvedImage, client: RegistryClient): Promise<SignaturePolicyResult[]> => {
    const results: SignaturePolicyResult[] = [];
    const store = registryRepository(client, image.reference.registry, image.reference.repository);
    for (const rule of rules) {
      if (!matchesGlob(image.name, rule.match) && !matchesGlob(image.repository, rule.match)) continue;
      const key = loadPublicKey(await readFile(rule.key, "utf8"), rule.key);
      const digest = image.sourceDescriptor.digest;
      const simple = await trySimpleSigning(store, digest, key, image.name);
      const result: SignaturePolicyResult = { rule: rule.match, key: rule.key, verified: simple.ok };
      if (simple.ok) {
        result.via = "cosign simple-signing tag";
      } else {
        const bundle = await trySigstoreReferrers(store, image.sourceDescriptor, key);
        result.verified = bundle.ok;
        if (bundle.ok) result.via = "sigstore bundle referrer";
        result.detail = bundle.ok ? undefined : [simple.reason, bundle.reason].filter(Boolean).join("; ");
      }
      if (!result.verified) {
        throw new IntegrityError(
          "POLICY_FAILED",
          `${image.name} (${digest}) is not signed with ${rule.key} as the verify rule "${rule.match}" requires: ${result.detail ?? "no signature found"}`,
          image.name,
        );
      }
      results.push(result);
    }
    return results;
  };
}

async function trySimpleSigning(
  store: RegistryStore,
  digest: string,
  key: ReturnType<typeof loadPublicKey>,
  name: string,
): Promise<{ ok: boolean; reason?: string }> {
  let manifest: ImageManifest;
  try {
    const { descriptor, bytes } = await store.fetchManifest(`sha256-${digestHex(digest)}.sig`);
    manifest = parseManifest(bytes, descriptor) as ImageManifest;
  } catch (err) {
    if (isNotFound(err)) return { ok: false, reason: "no cosign .sig tag" };
    throw err;
  }
  const reasons: string[] = [];
  for (const layer of manifest.layers ?? []) {
    const signature = layer.annotations?.[SIGNATURE_ANNOTATION];
    if (layer.mediaType !== MediaType.cosignSimpleSigning || !signature) continue;
    const payload = await readBounded(await store.fetch(layer), MAX_SIGNATURE_LAYER, layer.digest);
    const check = verifySimpleSigning(payload, signature, key, {
      manifestDigest: digest,
      dockerReference: name,
    });
    if (check.ok) return { ok: true };
    if (check.reason) reasons.push(check.reason);
  }
  return {
    ok: false,
    reason: reasons.length > 0 ? reasons.join("; ") : "the .sig tag holds no simple-signing layer",
  };
}

async function trySigstoreReferrers(
  store: RegistryStore,
  subject: Descriptor,
  key: ReturnType<typeof loadPublicKey>,
): Promise<{ ok: boolean; reason?: string }> {
  const referrers = await store.referrers(subject);
  for (const ref of referrers) {
    if (ref.artifactType && !ref.artifactType.startsWith("application/vnd.dev.sigstore.bundle")) continue;
    const { bytes } = await store.fetchManifest(ref.digest);
    const manifest = parseManifest(bytes, ref) as ImageManifest;
    for (const layer of manifest.layers ?? []) {
      if (!layer.mediaType.startsWith("application/vnd.dev.sigstore.bundle")) continue;
      const json = await readBounded(await store.fetch(layer), MAX_SIGNATURE_LAYER, layer.digest);
      if (verifySigstoreBundleForImage(json, key, subject.digest).ok) return { ok: true };
    }
  }
  return { ok: false, reason: "no Sigstore bundle referrer verifies" };
}
