import crypto from "node:crypto";
import { bundleFromJSON } from "@sigstore/bundle";
import { toSignedEntity, toTrustMaterial, Verifier } from "@sigstore/verify";
import { describe, expect, it } from "vitest";
import {
  dssePae,
  matchesGlob,
  verifyP256Prehashed,
  verifySigstoreBundleForImage,
  verifySimpleSigning,
} from "../../src/bundle/cosign.js";
import { publicKeyHint } from "../../src/bundle/signing.js";

const signer = crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" });
const stranger = crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" });

const MANIFEST = Buffer.from(
  JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", layers: [] }),
);
const DIGEST = `sha256:${crypto.createHash("sha256").update(MANIFEST).digest("hex")}`;
const OTHER_DIGEST = `sha256:${"ab".repeat(32)}`;

function sign(data: Buffer, key = signer.privateKey): string {
  return crypto.sign("sha256", data, { key, dsaEncoding: "der" }).toString("base64");
}

/** A payload exactly as cosign writes into a `.sig` layer. */
function simpleSigningPayload(digest: string, reference = "index.docker.io/cincproject/auditor"): Buffer {
  return Buffer.from(
    JSON.stringify({
      critical: {
        identity: { "docker-reference": reference },
        image: { "docker-manifest-digest": digest },
        type: "cosign container image signature",
      },
      optional: { creator: "test" },
    }),
  );
}

describe("verifySimpleSigning (cosign .sig tags)", () => {
  const payload = simpleSigningPayload(DIGEST);
  const sig = sign(payload);

  it("accepts a good signature over the payload naming the digest", () => {
    expect(verifySimpleSigning(payload, sig, signer.publicKey, { manifestDigest: DIGEST })).toEqual({
      ok: true,
    });
    // The annotation may come with whitespace around it.
    expect(verifySimpleSigning(payload, ` ${sig}\n`, signer.publicKey, { manifestDigest: DIGEST }).ok).toBe(
      true,
    );
  });

  it("rejects a signature for another digest, naming both", () => {
    const r = verifySimpleSigning(payload, sig, signer.publicKey, { manifestDigest: OTHER_DIGEST });
    expect(r.ok).toBe(false);
    expect(r.reason).toBe(`signature is for ${DIGEST}, not ${OTHER_DIGEST}`);
  });

  it("rejects a signature made with another key", () => {
    const r = verifySimpleSigning(payload, sign(payload, stranger.privateKey), signer.publicKey, {
      manifestDigest: DIGEST,
    });
    expect(r).toEqual({ ok: false, reason: expect.stringContaining("does not verify with the given key") });
  });

  it("rejects a tampered payload (digest swapped after signing)", () => {
    const tampered = simpleSigningPayload(OTHER_DIGEST);
    const r = verifySimpleSigning(tampered, sig, signer.publicKey, { manifestDigest: OTHER_DIGEST });
    expect(r.ok).toBe(false);
    expect(r.reason).toContain("does not verify");
  });

  it("rejects bad base64, non-cosign payload types and payloads without a digest", () => {
    expect(
      verifySimpleSigning(payload, "%%%", signer.publicKey, { manifestDigest: DIGEST }).reason,
    ).toContain("base64");
    const atomic = Buffer.from(
      JSON.stringify({
        critical: { type: "atomic container signature", image: { "docker-manifest-digest": DIGEST } },
      }),
    );
    expect(
      verifySimpleSigning(atomic, sign(atomic), signer.publicKey, { manifestDigest: DIGEST }).reason,
    ).toContain('not "cosign container image signature"');
    const noDigest = Buffer.from(JSON.stringify({ critical: { type: "cosign container image signature" } }));
    expect(
      verifySimpleSigning(noDigest, sign(noDigest), signer.publicKey, { manifestDigest: DIGEST }).reason,
    ).toBe("signature payload names no docker-manifest-digest");
  });

  it("treats docker-reference as informational unless strictReference, then compares repositories", () => {
    const expected = { manifestDigest: DIGEST, dockerReference: "docker.io/cincproject/auditor:6.8.24" };
    expect(
      verifySimpleSigning(payload, sig, signer.publicKey, { ...expected, strictReference: true }).ok,
    ).toBe(true);
    const elsewhere = simpleSigningPayload(DIGEST, "ghcr.io/someone/else");
    expect(verifySimpleSigning(elsewhere, sign(elsewhere), signer.publicKey, expected).ok).toBe(true);
    const strict = verifySimpleSigning(elsewhere, sign(elsewhere), signer.publicKey, {
      ...expected,
      strictReference: true,
    });
    expect(strict).toEqual({
      ok: false,
      reason: "signature names ghcr.io/someone/else, not docker.io/cincproject/auditor",
    });
    const busybox = simpleSigningPayload(DIGEST, "index.docker.io/library/busybox");
    expect(
      verifySimpleSigning(busybox, sign(busybox), signer.publicKey, {
        manifestDigest: DIGEST,
        dockerReference: "docker.io/busybox:1.37",
        strictReference: true,
      }).ok,
    ).toBe(true);
  });
});

function dsseBundle(payloadType: string, payload: Buffer, key = signer.privateKey): Buffer {
  return Buffer.from(
    JSON.stringify({
      mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
      verificationMaterial: { publicKey: { hint: publicKeyHint(signer.publicKey) } },
      dsseEnvelope: {
        payload: payload.toString("base64"),
        payloadType,
        signatures: [{ sig: sign(dssePae(payloadType, payload), key), keyid: "" }],
      },
    }),
  );
}

/** The statement `cosign sign --new-bundle-format` signs. */
function cosignStatement(digest: string, predicateType = "https://sigstore.dev/cosign/sign/v1"): Buffer {
  return Buffer.from(
    JSON.stringify({
      _type: "https://in-toto.io/Statement/v1",
      subject: [{ digest: { sha256: digest.slice("sha256:".length) } }],
      predicateType,
      predicate: {},
    }),
  );
}

describe("verifySigstoreBundleForImage", () => {
  it("our DSSE encoding is the one @sigstore/verify checks (independent PAE cross-check)", () => {
    const bundleJson = dsseBundle("application/vnd.in-toto+json", cosignStatement(DIGEST));
    const hint = publicKeyHint(signer.publicKey);
    const root = {
      mediaType: "",
      tlogs: [],
      certificateAuthorities: [],
      ctlogs: [],
      timestampAuthorities: [],
    };
    const keys = {
      [hint]: { rawBytes: signer.publicKey.export({ format: "der", type: "spki" }), keyDetails: 5 },
    };
    const verifier = new Verifier(
      toTrustMaterial(root as unknown as Parameters<typeof toTrustMaterial>[0], keys as never),
      { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 },
    );
    const bundle = bundleFromJSON(JSON.parse(bundleJson.toString()));
    expect(() => verifier.verify(toSignedEntity(bundle as never))).not.toThrow();
    expect(verifySigstoreBundleForImage(bundleJson, signer.publicKey, DIGEST)).toEqual({ ok: true });
  });

  it("DSSE in-toto: rejects another digest, another key, a tampered payload and attestations", () => {
    const good = dsseBundle("application/vnd.in-toto+json", cosignStatement(DIGEST));
    expect(verifySigstoreBundleForImage(good, signer.publicKey, OTHER_DIGEST)).toEqual({
      ok: false,
      reason: `in-toto statement does not name ${OTHER_DIGEST}`,
    });
    expect(verifySigstoreBundleForImage(good, stranger.publicKey, DIGEST).reason).toBe(
      "DSSE signature does not verify with the given key",
    );

    const tampered = JSON.parse(good.toString());
    tampered.dsseEnvelope.payload = cosignStatement(OTHER_DIGEST).toString("base64");
    expect(
      verifySigstoreBundleForImage(Buffer.from(JSON.stringify(tampered)), signer.publicKey, OTHER_DIGEST).ok,
    ).toBe(false);

    const sbom = dsseBundle(
      "application/vnd.in-toto+json",
      cosignStatement(DIGEST, "https://spdx.dev/Document"),
    );
    expect(verifySigstoreBundleForImage(sbom, signer.publicKey, DIGEST).reason).toContain(
      "in-toto predicate is https://spdx.dev/Document",
    );
  });

  it("DSSE with a simple-signing payload is checked like a .sig layer", () => {
    const bundle = dsseBundle(
      "application/vnd.dev.cosign.simplesigning.v1+json",
      simpleSigningPayload(DIGEST),
    );
    expect(verifySigstoreBundleForImage(bundle, signer.publicKey, DIGEST).ok).toBe(true);
    expect(verifySigstoreBundleForImage(bundle, signer.publicKey, OTHER_DIGEST).ok).toBe(false);
  });

  function messageBundle(digestOf: Buffer, signedBytes: Buffer, key = signer.privateKey): Buffer {
    return Buffer.from(
      JSON.stringify({
        mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
        verificationMaterial: { publicKey: { hint: publicKeyHint(signer.publicKey) } },
        messageSignature: {
          messageDigest: {
            algorithm: "SHA2_256",
            digest: crypto.createHash("sha256").update(digestOf).digest("base64"),
          },
          signature: sign(signedBytes, key),
        },
      }),
    );
  }

  it("message signature: verifies over the digest alone or over the manifest bytes", () => {
    const bundle = messageBundle(MANIFEST, MANIFEST);
    expect(verifySigstoreBundleForImage(bundle, signer.publicKey, DIGEST)).toEqual({ ok: true });
    expect(verifySigstoreBundleForImage(bundle, signer.publicKey, DIGEST, MANIFEST)).toEqual({ ok: true });
    expect(verifySigstoreBundleForImage(bundle, signer.publicKey, OTHER_DIGEST).reason).toBe(
      `message signature is not over ${OTHER_DIGEST}`,
    );
    expect(verifySigstoreBundleForImage(bundle, stranger.publicKey, DIGEST).ok).toBe(false);
    expect(verifySigstoreBundleForImage(bundle, stranger.publicKey, DIGEST, MANIFEST).ok).toBe(false);
    // Right digest claimed, but the signature is over other bytes.
    const lying = messageBundle(MANIFEST, Buffer.from("something else"));
    expect(verifySigstoreBundleForImage(lying, signer.publicKey, DIGEST).ok).toBe(false);
    expect(verifySigstoreBundleForImage(Buffer.from("{"), signer.publicKey, DIGEST).reason).toBe(
      "Sigstore bundle is not JSON",
    );
  });
});

describe("verifyP256Prehashed", () => {
  it("agrees with node:crypto on many signatures and rejects altered ones", () => {
    for (let i = 0; i < 20; i++) {
      const data = crypto.randomBytes(40 + i);
      const der = crypto.sign("sha256", data, { key: signer.privateKey, dsaEncoding: "der" });
      const digest = crypto.createHash("sha256").update(data).digest();
      expect(verifyP256Prehashed(digest, der, signer.publicKey)).toBe(true);
      expect(verifyP256Prehashed(digest, der, stranger.publicKey)).toBe(false);
      const flipped = Buffer.from(digest);
      flipped[i] = (flipped[i] ?? 0) ^ 1;
      expect(verifyP256Prehashed(flipped, der, signer.publicKey)).toBe(false);
      const badDer = Buffer.from(der);
      badDer[badDer.length - 2] = (badDer[badDer.length - 2] ?? 0) ^ 0x10;
      expect(verifyP256Prehashed(digest, badDer, signer.publicKey)).toBe(false);
    }
    expect(verifyP256Prehashed(Buffer.alloc(32), Buffer.from([0x30, 0x00]), signer.publicKey)).toBe(false);
  });
});

describe("matchesGlob", () => {
  const table: [string, string, boolean][] = [
    ["docker.io/cincproject/auditor:6.8.24", "docker.io/cincproject/*", true],
    ["docker.io/cincproject/auditor@sha256:abcd", "docker.io/cincproject/*", true],
    ["docker.io/cincproject/auditor", "docker.io/cincproject/*", true],
    ["docker.io/cincproject/tools/auditor:1", "docker.io/cincproject/*", false],
    ["docker.io/cincproject/tools/auditor:1", "docker.io/cincproject/**", true],
    ["docker.io/cincprojectx/auditor:1", "docker.io/cincproject/*", false],
    ["ghcr.io/cincproject/auditor:1", "docker.io/cincproject/*", false],
    ["docker.io/cincproject/auditor:6.8.24", "docker.io/cincproject/auditor", true],
    ["docker.io/cincproject/auditor-extra:1", "docker.io/cincproject/auditor", false],
    ["docker.io/cincproject/auditor:6.8.24", "docker.io/cincproject/auditor:6.*", true],
    ["docker.io/cincproject/auditor:5.1", "docker.io/cincproject/auditor:6.*", false],
    ["registry.example:5000/a/b:1", "registry.example:5000/**", true],
    ["registry.example:5000/a/b:1", "*/a/b", true],
    ["registry.example:5000/a/b:1", "registry?example:5000/a/b", true],
    ["registryXexample:5000/a/b:1", "registry.example:5000/a/b", false],
    ["docker.io/library/busybox:1.37", "**", true],
  ];
  it.each(table)("%s against %s → %s", (ref, pattern, expected) => {
    expect(matchesGlob(ref, pattern)).toBe(expected);
  });
});
