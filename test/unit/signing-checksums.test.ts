import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import { bundleFromJSON } from "@sigstore/bundle";
import { toSignedEntity, toTrustMaterial, Verifier } from "@sigstore/verify";
import { describe, expect, it } from "vitest";
import {
  publicKeyHint,
  signBlob,
  signChecksums,
  verifyBlob,
  verifyChecksumsSignature,
  verifySigstoreBundle,
} from "../../src/bundle/signing.js";

const { privateKey, publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" });
const other = crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" });

const SUMS = Buffer.from(
  [
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  bundle.json",
    "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752  blobs/sha256/60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752",
    "",
  ].join("\n"),
);
const TAMPERED = Buffer.from(SUMS.toString().replace("bundle.json", "bundle.jsom"));

describe("signBlob / verifyBlob", () => {
  it("produces DER ECDSA over SHA-256 that node verifies independently", () => {
    const sig = signBlob(SUMS, privateKey);
    expect(crypto.verify("sha256", SUMS, { key: publicKey, dsaEncoding: "der" }, sig)).toBe(true);
    expect(verifyBlob(SUMS, sig, publicKey)).toBe(true);
    expect(verifyBlob(TAMPERED, sig, publicKey)).toBe(false);
    expect(verifyBlob(SUMS, sig, other.publicKey)).toBe(false);
    expect(verifyBlob(SUMS, Buffer.alloc(0), publicKey)).toBe(false);
    expect(verifyBlob(SUMS, sig.subarray(0, sig.length - 3), publicKey)).toBe(false);
  });
});

describe("signChecksums", () => {
  const { sigBase64, sigstoreBundleJson } = signChecksums(SUMS, privateKey, publicKey);

  it("writes SHA256SUMS.sig as bare base64 of the DER signature (no newline), as cosign sign-blob does", () => {
    expect(sigBase64).toMatch(/^[A-Za-z0-9+/]+=*$/);
    const der = Buffer.from(sigBase64, "base64");
    expect(der[0]).toBe(0x30);
    expect(crypto.verify("sha256", SUMS, { key: publicKey, dsaEncoding: "der" }, der)).toBe(true);
  });

  it("writes a Sigstore bundle v0.3 with cosign's key hint and a SHA2_256 message signature", () => {
    const bundle = JSON.parse(sigstoreBundleJson);
    expect(bundle.mediaType).toBe("application/vnd.dev.sigstore.bundle.v0.3+json");
    // The hint is base64(sha256(SPKI DER)); compute the SPKI with openssl, not with our code.
    const pubPem = publicKey.export({ format: "pem", type: "spki" }) as string;
    const spkiFromOpenssl = execFileSync("openssl", ["pkey", "-pubin", "-outform", "DER"], { input: pubPem });
    const expectedHint = crypto.createHash("sha256").update(spkiFromOpenssl).digest("base64");
    expect(bundle.verificationMaterial).toEqual({ publicKey: { hint: expectedHint } });
    expect(publicKeyHint(publicKey)).toBe(expectedHint);
    expect(bundle.messageSignature).toEqual({
      messageDigest: {
        algorithm: "SHA2_256",
        digest: crypto.createHash("sha256").update(SUMS).digest("base64"),
      },
      signature: sigBase64,
    });
  });

  it("refuses to sign when the private key does not match the public key", () => {
    expect(() => signChecksums(SUMS, privateKey, other.publicKey)).toThrow(/does not match the public key/);
  });
});

describe("verifyChecksumsSignature", () => {
  const { sigBase64 } = signChecksums(SUMS, privateKey, publicKey);

  it("accepts the signature with or without a trailing newline", () => {
    expect(verifyChecksumsSignature(SUMS, sigBase64, publicKey)).toBe(true);
    expect(verifyChecksumsSignature(SUMS, `${sigBase64}\n`, publicKey)).toBe(true);
    expect(verifyChecksumsSignature(SUMS, `${sigBase64}\r\n`, publicKey)).toBe(true);
  });

  it("rejects changed checksums, another key, malformed base64 and malformed DER", () => {
    expect(verifyChecksumsSignature(TAMPERED, sigBase64, publicKey)).toBe(false);
    expect(verifyChecksumsSignature(SUMS, sigBase64, other.publicKey)).toBe(false);
    expect(verifyChecksumsSignature(SUMS, "", publicKey)).toBe(false);
    expect(verifyChecksumsSignature(SUMS, "not*base64!", publicKey)).toBe(false);
    expect(verifyChecksumsSignature(SUMS, Buffer.from("garbage der").toString("base64"), publicKey)).toBe(
      false,
    );
    const der = Buffer.from(sigBase64, "base64");
    der[der.length - 1] = (der[der.length - 1] ?? 0) ^ 0xff;
    expect(verifyChecksumsSignature(SUMS, der.toString("base64"), publicKey)).toBe(false);
  });
});

describe("verifySigstoreBundle", () => {
  const { sigstoreBundleJson } = signChecksums(SUMS, privateKey, publicKey);

  it("accepts our bundle and rejects changed checksums, a wrong key, a forged digest and garbage", () => {
    expect(verifySigstoreBundle(SUMS, sigstoreBundleJson, publicKey)).toBe(true);
    expect(verifySigstoreBundle(SUMS, `${sigstoreBundleJson}\n`, publicKey)).toBe(true);
    expect(verifySigstoreBundle(TAMPERED, sigstoreBundleJson, publicKey)).toBe(false);
    expect(verifySigstoreBundle(SUMS, sigstoreBundleJson, other.publicKey)).toBe(false);
    expect(verifySigstoreBundle(SUMS, "{", publicKey)).toBe(false);
    expect(verifySigstoreBundle(SUMS, "null", publicKey)).toBe(false);

    const forged = JSON.parse(sigstoreBundleJson);
    forged.messageSignature.messageDigest.digest = crypto
      .createHash("sha256")
      .update(TAMPERED)
      .digest("base64");
    expect(verifySigstoreBundle(SUMS, JSON.stringify(forged), publicKey)).toBe(false);
    // Digest and signature both made for other content do not verify against SUMS either.
    const resigned = JSON.parse(signChecksums(TAMPERED, privateKey, publicKey).sigstoreBundleJson);
    expect(verifySigstoreBundle(SUMS, JSON.stringify(resigned), publicKey)).toBe(false);
  });
});

describe("the Sigstore bundle against @sigstore/verify (offline, key-based)", () => {
  const { sigstoreBundleJson } = signChecksums(SUMS, privateKey, publicKey);
  const hint = publicKeyHint(publicKey);

  function verifier(trustedKey: crypto.KeyObject): Verifier {
    const emptyRoot = {
      mediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
      tlogs: [],
      certificateAuthorities: [],
      ctlogs: [],
      timestampAuthorities: [],
    } as unknown as Parameters<typeof toTrustMaterial>[0];
    const keys = {
      [hint]: {
        rawBytes: trustedKey.export({ format: "der", type: "spki" }),
        keyDetails: 5 /* PKIX_ECDSA_P256_SHA_256 */,
      },
    } as unknown as Parameters<typeof toTrustMaterial>[1];
    return new Verifier(toTrustMaterial(emptyRoot, keys), {
      tlogThreshold: 0,
      ctlogThreshold: 0,
      timestampThreshold: 0,
    });
  }

  function entity(artifact: Buffer) {
    const bundle = bundleFromJSON(JSON.parse(sigstoreBundleJson));
    return toSignedEntity(bundle as unknown as Parameters<typeof toSignedEntity>[0], artifact);
  }

  it("accepts our SHA256SUMS.sigstore.json with our public key", () => {
    const signer = verifier(publicKey).verify(entity(SUMS));
    expect(
      signer.key
        .export({ format: "der", type: "spki" })
        .equals(publicKey.export({ format: "der", type: "spki" })),
    ).toBe(true);
  });

  it("rejects it when SHA256SUMS changed", () => {
    expect(() => verifier(publicKey).verify(entity(TAMPERED))).toThrow(/digest|signature/i);
  });

  it("rejects it when the trusted key is another key", () => {
    expect(() => verifier(other.publicKey).verify(entity(SUMS))).toThrow(/signature/i);
  });
});
