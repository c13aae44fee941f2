/**
 * Signatures over the bundle's SHA256SUMS, in the two forms cosign reads:
 *  - `SHA256SUMS.sig`: base64 of the DER ECDSA signature, no trailing newline (as `cosign sign-blob
 *    --output-signature` writes), also checkable with `openssl dgst -sha256 -verify`;
 *  - `SHA256SUMS.sigstore.json`: a Sigstore bundle v0.3 with a public-key hint and a message signature.
 */
import crypto from "node:crypto";
import { ConfigError } from "../errors.js";

export const SIGSTORE_BUNDLE_V03_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json";

/* Cosign hashes with the digest that fits the key: SHA-256 for P-256 and RSA, larger for larger curves. */
function hashFor(key: crypto.KeyObject): "sha256" | "sha384" | "sha512" {
  if (key.asymmetricKeyType === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === "secp384r1") return "sha384";
    if (curve === "secp521r1") return "sha512";
  }
  return "sha256";
}

function signOptions(key: crypto.KeyObject): crypto.SignKeyObjectInput {
  if (key.asymmetricKeyType === "ec") return { key, dsaEncoding: "der" };
  if (key.asymmetricKeyType === "rsa") return { key, padding: crypto.constants.RSA_PKCS1_PADDING };
  throw new ConfigError(`unsupported signing key type ${key.asymmetricKeyType ?? "(unknown)"}`);
}

/** DER ECDSA over SHA-256 (for P-256), exactly what `cosign sign-blob --key` produces. */
export function signBlob(data: Buffer, key: crypto.KeyObject): Buffer {
  return crypto.sign(hashFor(key), data, signOptions(key));
}

/** True only when the signature is well-formed and verifies; never throws on bad input. */
export function verifyBlob(data: Buffer, signatureDer: Buffer, publicKey: crypto.KeyObject): boolean {
  if (signatureDer.length === 0) return false;
  try {
    const opts =
      publicKey.asymmetricKeyType === "ec"
        ? { key: publicKey, dsaEncoding: "der" as const }
        : { key: publicKey, padding: crypto.constants.RSA_PKCS1_PADDING };
    return crypto.verify(hashFor(publicKey), data, opts, signatureDer);
  } catch {
    return false;
  }
}

/** base64(sha256(SPKI DER)): the key hint cosign puts in `verificationMaterial.publicKey.hint`. */
export function publicKeyHint(publicKey: crypto.KeyObject): string {
  const spki = publicKey.export({ format: "der", type: "spki" });
  return crypto.createHash("sha256").update(spki).digest("base64");
}

/** Strict base64 (standard alphabet, optional padding), tolerating surrounding whitespace/newlines. */
export function decodeBase64Strict(text: string): Buffer | undefined {
  const clean = text.replace(/\s+/g, "");
  if (clean.length === 0 || clean.length % 4 === 1) return undefined;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(clean)) return undefined;
  const buf = Buffer.from(clean, "base64");
  // Round-trip check rejects non-canonical encodings that Buffer.from would silently accept.
  if (buf.toString("base64").replace(/=+$/, "") !== clean.replace(/=+$/, "")) return undefined;
  return buf;
}

/** The Sigstore bundle JSON shape we write and read (the subset that carries a key-based signature). */
export interface SigstoreBundleJson {
  mediaType: string;
  verificationMaterial: {
    publicKey?: { hint?: string };
    x509CertificateChain?: unknown;
    certificate?: unknown;
    tlogEntries?: unknown[];
    timestampVerificationData?: unknown;
  };
  messageSignature?: {
    messageDigest: { algorithm: string; digest: string };
    signature: string;
  };
  dsseEnvelope?: {
    payload: string;
    payloadType: string;
    signatures: { sig: string; keyid?: string }[];
  };
}

/**
 * Signs SHA256SUMS and returns both signature files' contents. Neither ends with a newline, matching
 * what cosign writes; readers tolerate one.
 */
export function signChecksums(
  sums: Buffer,
  key: crypto.KeyObject,
  publicKey: crypto.KeyObject,
): { sigBase64: string; sigstoreBundleJson: string } {
  const signature = signBlob(sums, key);
  if (!verifyBlob(sums, signature, publicKey)) {
    // Catches a --key that does not belong to the public key we are about to publish with the bundle.
    throw new ConfigError("the signing key does not match the public key: refusing to write a bad signature");
  }
  const sigBase64 = signature.toString("base64");
  const digest = crypto.createHash("sha256").update(sums).digest("base64");
  const bundle: SigstoreBundleJson = {
    mediaType: SIGSTORE_BUNDLE_V03_MEDIA_TYPE,
    verificationMaterial: { publicKey: { hint: publicKeyHint(publicKey) } },
    messageSignature: {
      messageDigest: { algorithm: "SHA2_256", digest },
      signature: sigBase64,
    },
  };
  return { sigBase64, sigstoreBundleJson: JSON.stringify(bundle) };
}

/** Verifies the content of a `SHA256SUMS.sig` file (base64 DER). Malformed input → false. */
export function verifyChecksumsSignature(
  sums: Buffer,
  sigBase64: string,
  publicKey: crypto.KeyObject,
): boolean {
  const der = decodeBase64Strict(sigBase64);
  if (!der) return false;
  return verifyBlob(sums, der, publicKey);
}

/**
 * Verifies a `SHA256SUMS.sigstore.json` against the checksums and the trusted key: the bundle's digest
 * must be SHA-256 of `sums` and its signature must verify over `sums` with `publicKey`. The embedded hint
 * is advisory (any key could claim any hint), so only the caller's key decides.
 */
export function verifySigstoreBundle(sums: Buffer, bundleJson: string, publicKey: crypto.KeyObject): boolean {
  let bundle: SigstoreBundleJson;
  try {
    bundle = JSON.parse(bundleJson) as SigstoreBundleJson;
  } catch {
    return false;
  }
  if (!bundle || typeof bundle !== "object") return false;
  if (
    typeof bundle.mediaType !== "string" ||
    !bundle.mediaType.startsWith("application/vnd.dev.sigstore.bundle")
  ) {
    return false;
  }
  const ms = bundle.messageSignature;
  if (!ms || typeof ms.signature !== "string" || !ms.messageDigest) return false;
  if (ms.messageDigest.algorithm !== "SHA2_256" || typeof ms.messageDigest.digest !== "string") return false;
  const claimed = decodeBase64Strict(ms.messageDigest.digest);
  const actual = crypto.createHash("sha256").update(sums).digest();
  if (!claimed || claimed.length !== actual.length || !crypto.timingSafeEqual(claimed, actual)) return false;
  const sig = decodeBase64Strict(ms.signature);
  if (!sig) return false;
  return verifyBlob(sums, sig, publicKey);
}
