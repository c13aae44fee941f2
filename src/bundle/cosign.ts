/**
 * Checking upstream cosign signatures on images (the `verify:` policy of a bundle config).
 *
 * Two carriers exist in registries:
 *  - the legacy `sha256-<hex>.sig` tag: each layer is a "simple signing" JSON payload
 *      {"critical":{"identity":{"docker-reference":"…"},"image":{"docker-manifest-digest":"sha256:…"},
 *       "type":"cosign container image signature"},"optional":{…}}
 *    with the base64 DER signature over the payload bytes in the layer annotation
 *    `dev.cosignproject.cosign/signature`;
 *  - a Sigstore bundle (v0.1–v0.3) stored as an OCI referrer of the image: either a DSSE envelope whose
 *    in-toto statement (predicate `https://sigstore.dev/cosign/sign/v1`) or simple-signing payload names
 *    the digest, or a message signature whose digest is the manifest digest.
 *
 * Like `cosign verify --key --insecure-ignore-tlog`, only the given key decides: transparency-log entries
 * and certificates in a bundle are not consulted (the connected side may not reach Rekor either).
 */
import crypto from "node:crypto";
import { isDigest } from "../oci/digest.js";
import { decodeBase64Strict, verifyBlob } from "./signing.js";

export interface SimpleSigningCheck {
  ok: boolean;
  reason?: string;
}

export const COSIGN_SIGNATURE_TYPE = "cosign container image signature";
export const COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1";
export const IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json";
export const SIMPLE_SIGNING_PAYLOAD_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json";

function normalizeDigest(d: string): string {
  return d.trim().toLowerCase();
}

/** The repository part of a reference: without `@digest` and without a `:tag` in the last segment. */
export function repositoryOf(ref: string): string {
  let name = ref;
  const at = name.indexOf("@");
  if (at >= 0) name = name.slice(0, at);
  const slash = name.lastIndexOf("/");
  const colon = name.lastIndexOf(":");
  if (colon > slash) name = name.slice(0, colon);
  return name;
}

/* Docker Hub has several spellings; cosign writes `index.docker.io/...`, configs say `docker.io/...`. */
function canonicalRepository(ref: string): string {
  let repo = repositoryOf(ref.trim().toLowerCase());
  for (const alias of ["index.docker.io/", "registry-1.docker.io/", "registry.hub.docker.com/"]) {
    if (repo.startsWith(alias)) repo = `docker.io/${repo.slice(alias.length)}`;
  }
  if (!repo.includes("/") || !/[.:]|^localhost$/.test(repo.split("/")[0] ?? "")) repo = `docker.io/${repo}`;
  // Official images live under library/ whichever way they are spelled.
  if (/^docker\.io\/[^/]+$/.test(repo)) repo = `docker.io/library/${repo.slice("docker.io/".length)}`;
  return repo;
}

interface SimpleSigningPayload {
  critical?: {
    identity?: { "docker-reference"?: string };
    image?: { "docker-manifest-digest"?: string };
    type?: string;
  };
  optional?: unknown;
}

function checkSimpleSigningPayload(
  payload: Buffer,
  expected: { manifestDigest: string; dockerReference?: string; strictReference?: boolean },
): SimpleSigningCheck {
  let parsed: SimpleSigningPayload;
  try {
    parsed = JSON.parse(payload.toString("utf8")) as SimpleSigningPayload;
  } catch {
    return { ok: false, reason: "signature payload is not JSON" };
  }
  const critical = parsed?.critical;
  if (!critical || typeof critical !== "object")
    return { ok: false, reason: "signature payload has no critical section" };
  if (critical.type !== COSIGN_SIGNATURE_TYPE) {
    return {
      ok: false,
      reason: `signature payload type is ${JSON.stringify(critical.type)}, not "${COSIGN_SIGNATURE_TYPE}"`,
    };
  }
  const signed = critical.image?.["docker-manifest-digest"];
  if (typeof signed !== "string")
    return { ok: false, reason: "signature payload names no docker-manifest-digest" };
  if (normalizeDigest(signed) !== normalizeDigest(expected.manifestDigest)) {
    return { ok: false, reason: `signature is for ${signed}, not ${expected.manifestDigest}` };
  }
  if (expected.strictReference && expected.dockerReference) {
    const named = critical.identity?.["docker-reference"];
    if (
      typeof named !== "string" ||
      canonicalRepository(named) !== canonicalRepository(expected.dockerReference)
    ) {
      return {
        ok: false,
        reason: `signature names ${named ?? "no repository"}, not ${repositoryOf(expected.dockerReference)}`,
      };
    }
  }
  return { ok: true };
}

/**
 * Verifies one simple-signing layer of a cosign `.sig` tag: the signature (base64 DER) must verify over
 * the exact payload bytes with `publicKey`, and the payload must be a cosign signature naming
 * `manifestDigest`. The payload's docker-reference is informational, as in `cosign verify`, unless
 * `strictReference` asks for it to name the same repository as `dockerReference`.
 */
export function verifySimpleSigning(
  payload: Buffer,
  signatureBase64: string,
  publicKey: crypto.KeyObject,
  expected: { manifestDigest: string; dockerReference?: string; strictReference?: boolean },
): SimpleSigningCheck {
  const sig = decodeBase64Strict(signatureBase64);
  if (!sig) return { ok: false, reason: "signature annotation is not valid base64" };
  // Signature first: reasons drawn from an unauthenticated payload would be attacker-chosen text.
  if (!verifyBlob(payload, sig, publicKey)) {
    return {
      ok: false,
      reason: "signature does not verify with the given key (other key or altered payload)",
    };
  }
  return checkSimpleSigningPayload(payload, expected);
}

/** DSSE pre-authentication encoding: what DSSE signatures are actually made over. */
export function dssePae(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType, "utf8");
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, "utf8"),
    type,
    Buffer.from(` ${payload.length} `, "utf8"),
    payload,
  ]);
}

interface InTotoStatement {
  _type?: string;
  subject?: { name?: string; digest?: Record<string, string> }[];
  predicateType?: string;
}

function checkInTotoStatement(payload: Buffer, manifestDigest: string): SimpleSigningCheck {
  let st: InTotoStatement;
  try {
    st = JSON.parse(payload.toString("utf8")) as InTotoStatement;
  } catch {
    return { ok: false, reason: "in-toto statement is not JSON" };
  }
  if (typeof st?._type !== "string" || !st._type.startsWith("https://in-toto.io/Statement/")) {
    return { ok: false, reason: "DSSE payload is not an in-toto statement" };
  }
  if (st.predicateType !== COSIGN_SIGN_PREDICATE) {
    // An attestation (SBOM, provenance…) about the image is not a signature of it.
    return {
      ok: false,
      reason: `in-toto predicate is ${st.predicateType ?? "missing"}, not ${COSIGN_SIGN_PREDICATE}`,
    };
  }
  const hex = normalizeDigest(manifestDigest).slice("sha256:".length);
  const named = (st.subject ?? []).some(
    (s) => typeof s?.digest?.sha256 === "string" && s.digest.sha256.toLowerCase() === hex,
  );
  if (!named) return { ok: false, reason: `in-toto statement does not name ${manifestDigest}` };
  return { ok: true };
}

interface ImageBundle {
  mediaType?: string;
  messageSignature?: { messageDigest?: { algorithm?: string; digest?: string }; signature?: string };
  dsseEnvelope?: { payload?: string; payloadType?: string; signatures?: { sig?: string; keyid?: string }[] };
}

/**
 * Verifies a Sigstore bundle found as a referrer of an image. `manifest` (the manifest bytes, when the
 * caller has them) lets a message signature be checked over the bytes themselves; without it the
 * signature is checked against the digest directly (ECDSA P-256 only).
 */
export function verifySigstoreBundleForImage(
  bundleJson: Buffer,
  publicKey: crypto.KeyObject,
  manifestDigest: string,
  manifest?: Buffer,
): SimpleSigningCheck {
  if (!isDigest(normalizeDigest(manifestDigest))) {
    return { ok: false, reason: `unsupported manifest digest ${manifestDigest}` };
  }
  let bundle: ImageBundle;
  try {
    bundle = JSON.parse(bundleJson.toString("utf8")) as ImageBundle;
  } catch {
    return { ok: false, reason: "Sigstore bundle is not JSON" };
  }
  if (
    typeof bundle?.mediaType !== "string" ||
    !bundle.mediaType.startsWith("application/vnd.dev.sigstore.bundle")
  ) {
    return { ok: false, reason: "not a Sigstore bundle (mediaType)" };
  }

  if (bundle.dsseEnvelope) {
    const env = bundle.dsseEnvelope;
    if (typeof env.payload !== "string" || typeof env.payloadType !== "string") {
      return { ok: false, reason: "DSSE envelope without payload" };
    }
    const payload = decodeBase64Strict(env.payload);
    if (!payload) return { ok: false, reason: "DSSE payload is not valid base64" };
    const pae = dssePae(env.payloadType, payload);
    const verified = (env.signatures ?? []).some((s) => {
      const sig = typeof s?.sig === "string" ? decodeBase64Strict(s.sig) : undefined;
      return sig !== undefined && verifyBlob(pae, sig, publicKey);
    });
    if (!verified) return { ok: false, reason: "DSSE signature does not verify with the given key" };
    if (env.payloadType === IN_TOTO_PAYLOAD_TYPE) return checkInTotoStatement(payload, manifestDigest);
    if (env.payloadType === SIMPLE_SIGNING_PAYLOAD_TYPE) {
      return checkSimpleSigningPayload(payload, { manifestDigest });
    }
    return { ok: false, reason: `unsupported DSSE payload type ${env.payloadType}` };
  }

  if (bundle.messageSignature) {
    const ms = bundle.messageSignature;
    if (ms.messageDigest?.algorithm !== "SHA2_256" || typeof ms.messageDigest.digest !== "string") {
      return { ok: false, reason: "message signature digest is not SHA2_256" };
    }
    const claimed = decodeBase64Strict(ms.messageDigest.digest);
    const expected = Buffer.from(normalizeDigest(manifestDigest).slice("sha256:".length), "hex");
    if (!claimed?.equals(expected)) {
      return { ok: false, reason: `message signature is not over ${manifestDigest}` };
    }
    const sig = typeof ms.signature === "string" ? decodeBase64Strict(ms.signature) : undefined;
    if (!sig) return { ok: false, reason: "message signature is not valid base64" };
    if (manifest) {
      if (!crypto.createHash("sha256").update(manifest).digest().equals(expected)) {
        return { ok: false, reason: `manifest bytes do not hash to ${manifestDigest}` };
      }
      return verifyBlob(manifest, sig, publicKey)
        ? { ok: true }
        : { ok: false, reason: "message signature does not verify with the given key" };
    }
    return verifyP256Prehashed(expected, sig, publicKey)
      ? { ok: true }
      : { ok: false, reason: "message signature does not verify with the given key" };
  }

  return { ok: false, reason: "Sigstore bundle holds neither a DSSE envelope nor a message signature" };
}

/**
 * Policy globs over references: `*` matches any run of characters except `/` (so it stays inside one
 * path segment but covers `:tag` and `@digest`), `**` matches anything including `/`, `?` one character
 * other than `/`. A pattern matches a reference when it matches the whole reference or its repository
 * (the reference without tag and digest), so `docker.io/cincproject/auditor` covers every tag of it.
 */
export function matchesGlob(ref: string, pattern: string): boolean {
  const re = globToRegExp(pattern);
  return re.test(ref) || re.test(repositoryOf(ref));
}

function globToRegExp(pattern: string): RegExp {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i] as string;
    if (ch === "*") {
      if (pattern[i + 1] === "*") {
        out += ".*";
        i++;
      } else {
        out += "[^/]*";
      }
    } else if (ch === "?") {
      out += "[^/]";
    } else {
      out += ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
    }
  }
  return new RegExp(`^${out}$`);
}

/* ---- ECDSA P-256 verification of a signature made over a digest we only know by value ----
 * node:crypto always hashes the message itself, but a Sigstore message signature over an image names
 * only the manifest digest. Verification uses public data only, so plain BigInt arithmetic is fine. */

const P256 = {
  p: BigInt("0xffffffff00000001000000000000000000000000ffffffffffffffffffffffff"),
  a: BigInt("0xffffffff00000001000000000000000000000000fffffffffffffffffffffffc"),
  n: BigInt("0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"),
  gx: BigInt("0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"),
  gy: BigInt("0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"),
};

type Point = { x: bigint; y: bigint } | null;

function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r >= 0n ? r : r + m;
}

function invert(a: bigint, m: bigint): bigint {
  let [oldR, r] = [mod(a, m), m];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const q = oldR / r;
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  return mod(oldS, m);
}

function pointAdd(P: Point, Q: Point): Point {
  const { p, a } = P256;
  if (!P) return Q;
  if (!Q) return P;
  let lambda: bigint;
  if (P.x === Q.x) {
    if (mod(P.y + Q.y, p) === 0n) return null;
    lambda = mod((3n * P.x * P.x + a) * invert(2n * P.y, p), p);
  } else {
    lambda = mod((Q.y - P.y) * invert(Q.x - P.x, p), p);
  }
  const x = mod(lambda * lambda - P.x - Q.x, p);
  const y = mod(lambda * (P.x - x) - P.y, p);
  return { x, y };
}

function pointMul(P: Point, k: bigint): Point {
  let result: Point = null;
  let addend = P;
  let e = k;
  while (e > 0n) {
    if (e & 1n) result = pointAdd(result, addend);
    addend = pointAdd(addend, addend);
    e >>= 1n;
  }
  return result;
}

function derLength(buf: Buffer, at: number): { len: number; next: number } | undefined {
  const first = buf[at];
  if (first === undefined) return undefined;
  if (first < 0x80) return { len: first, next: at + 1 };
  const count = first & 0x7f;
  if (count === 0 || count > 2) return undefined;
  let len = 0;
  for (let i = 0; i < count; i++) {
    const b = buf[at + 1 + i];
    if (b === undefined) return undefined;
    len = (len << 8) | b;
  }
  return { len, next: at + 1 + count };
}

/** Parses a DER ECDSA-Sig-Value { r INTEGER, s INTEGER }. */
export function parseDerSignature(der: Buffer): { r: bigint; s: bigint } | undefined {
  if (der[0] !== 0x30) return undefined;
  const seq = derLength(der, 1);
  if (!seq || seq.next + seq.len !== der.length) return undefined;
  const ints: bigint[] = [];
  let at = seq.next;
  for (let k = 0; k < 2; k++) {
    if (der[at] !== 0x02) return undefined;
    const l = derLength(der, at + 1);
    if (!l || l.len === 0 || l.next + l.len > der.length) return undefined;
    ints.push(BigInt(`0x${der.subarray(l.next, l.next + l.len).toString("hex")}`));
    at = l.next + l.len;
  }
  if (at !== der.length) return undefined;
  return { r: ints[0] as bigint, s: ints[1] as bigint };
}

/** ECDSA P-256 verification of a DER signature over a 32-byte digest. False for any other key. */
export function verifyP256Prehashed(
  digest: Buffer,
  signatureDer: Buffer,
  publicKey: crypto.KeyObject,
): boolean {
  if (publicKey.asymmetricKeyType !== "ec" || publicKey.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
    return false;
  }
  if (digest.length !== 32) return false;
  const sig = parseDerSignature(signatureDer);
  if (!sig) return false;
  const { n, gx, gy } = P256;
  const { r, s } = sig;
  if (r <= 0n || r >= n || s <= 0n || s >= n) return false;
  const jwk = publicKey.export({ format: "jwk" });
  if (!jwk.x || !jwk.y) return false;
  const Q = {
    x: BigInt(`0x${Buffer.from(jwk.x, "base64url").toString("hex")}`),
    y: BigInt(`0x${Buffer.from(jwk.y, "base64url").toString("hex")}`),
  };
  const e = BigInt(`0x${digest.toString("hex")}`);
  const w = invert(s, n);
  const R = pointAdd(pointMul({ x: gx, y: gy }, mod(e * w, n)), pointMul(Q, mod(r * w, n)));
  return R !== null && mod(R.x, n) === r;
}
