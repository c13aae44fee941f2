import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import nacl from "tweetnacl";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { generateKeyPair, loadPrivateKey, loadPublicKey, writeKeyPair } from "../../src/bundle/keys.js";
import { signBlob, verifyBlob } from "../../src/bundle/signing.js";
import { ConfigError, UsageError } from "../../src/errors.js";

const PASSWORD = "correct horse battery staple";

function pemBody(pem: string, label: string): Buffer {
  const lines = pem.trim().split("\n");
  expect(lines[0]).toBe(`-----BEGIN ${label}-----`);
  expect(lines.at(-1)).toBe(`-----END ${label}-----`);
  for (const line of lines.slice(1, -1)) expect(line.length).toBeLessThanOrEqual(64);
  return Buffer.from(lines.slice(1, -1).join(""), "base64");
}

/** Decrypts cosign's envelope independently of the module under test. */
function openEnvelope(envelope: Buffer, password: string): Buffer | null {
  const env = JSON.parse(envelope.toString("utf8"));
  const { N, r, p } = env.kdf.params;
  const key = crypto.scryptSync(password, Buffer.from(env.kdf.salt, "base64"), 32, {
    N,
    r,
    p,
    maxmem: 256 * N * r * p,
  });
  const opened = nacl.secretbox.open(
    Buffer.from(env.ciphertext, "base64"),
    Buffer.from(env.cipher.nonce, "base64"),
    key,
  );
  return opened ? Buffer.from(opened) : null;
}

/** Builds a key file by hand exactly as cosign's documented envelope describes. */
function handBuiltCosignKey(
  privateKey: crypto.KeyObject,
  password: string,
  N: number,
  label: string,
): string {
  const salt = crypto.randomBytes(32);
  const nonce = crypto.randomBytes(24);
  const boxKey = crypto.scryptSync(password, salt, 32, { N, r: 8, p: 1, maxmem: 256 * N * 8 });
  const der = privateKey.export({ format: "der", type: "pkcs8" });
  const ciphertext = nacl.secretbox(der, nonce, boxKey);
  const json = JSON.stringify({
    kdf: { name: "scrypt", params: { N, r: 8, p: 1 }, salt: salt.toString("base64") },
    cipher: { name: "nacl/secretbox", nonce: nonce.toString("base64") },
    ciphertext: Buffer.from(ciphertext).toString("base64"),
  });
  const b64 = Buffer.from(json).toString("base64").replace(/.{64}/g, "$&\n");
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith("\n") ? "" : "\n"}-----END ${label}-----\n`;
}

describe("generateKeyPair", () => {
  it("writes cosign's envelope: scrypt N=65536 r=8 p=1, 32-byte salt, secretbox, PKCS#8 P-256 inside", async () => {
    const { privateKeyPem, publicKeyPem } = await generateKeyPair(PASSWORD);
    const envelope = pemBody(privateKeyPem, "ENCRYPTED SIGSTORE PRIVATE KEY");
    const env = JSON.parse(envelope.toString("utf8"));
    expect(Object.keys(env)).toEqual(["kdf", "cipher", "ciphertext"]);
    expect(env.kdf.name).toBe("scrypt");
    expect(env.kdf.params).toEqual({ N: 65536, r: 8, p: 1 });
    expect(Buffer.from(env.kdf.salt, "base64")).toHaveLength(32);
    expect(env.cipher.name).toBe("nacl/secretbox");
    expect(Buffer.from(env.cipher.nonce, "base64")).toHaveLength(24);

    const inner = openEnvelope(envelope, PASSWORD);
    expect(inner).not.toBeNull();
    const priv = crypto.createPrivateKey({ key: inner!, format: "der", type: "pkcs8" });
    expect(priv.asymmetricKeyType).toBe("ec");
    expect(priv.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");

    const spki = pemBody(publicKeyPem, "PUBLIC KEY");
    expect(crypto.createPublicKey(priv).export({ format: "der", type: "spki" }).equals(spki)).toBe(true);
    expect(openEnvelope(envelope, "not the password")).toBeNull();
  });

  it("round trips: generate → load → sign → verify", async () => {
    const { privateKeyPem, publicKeyPem } = await generateKeyPair(PASSWORD);
    const key = loadPrivateKey(privateKeyPem, PASSWORD, "cosign.key");
    const pub = loadPublicKey(publicKeyPem, "cosign.pub");
    const data = Buffer.from(
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  bundle.json\n",
    );
    const sig = signBlob(data, key);
    expect(sig[0]).toBe(0x30); // DER SEQUENCE
    expect(verifyBlob(data, sig, pub)).toBe(true);
    expect(verifyBlob(Buffer.concat([data, Buffer.from("x")]), sig, pub)).toBe(false);
  });

  it("accepts an empty password, as cosign does", async () => {
    const { privateKeyPem } = await generateKeyPair("");
    expect(loadPrivateKey(privateKeyPem, "", "cosign.key").asymmetricKeyType).toBe("ec");
    expect(() => loadPrivateKey(privateKeyPem, "x", "cosign.key")).toThrow(
      /wrong password for cosign\.key\?/,
    );
  });
});

describe("loadPrivateKey", () => {
  const { privateKey, publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const data = Buffer.from("hello bundle");

  it("loads a hand-built N=32768 key labelled ENCRYPTED COSIGN PRIVATE KEY", () => {
    const pem = handBuiltCosignKey(privateKey, PASSWORD, 32768, "ENCRYPTED COSIGN PRIVATE KEY");
    const loaded = loadPrivateKey(pem, PASSWORD, "old-cosign.key");
    expect(verifyBlob(data, signBlob(data, loaded), publicKey)).toBe(true);
  });

  it("loads hand-built N=65536 and N=131072 keys labelled ENCRYPTED SIGSTORE PRIVATE KEY", () => {
    for (const N of [65536, 131072]) {
      const pem = handBuiltCosignKey(privateKey, PASSWORD, N, "ENCRYPTED SIGSTORE PRIVATE KEY");
      const loaded = loadPrivateKey(pem, PASSWORD, "cosign.key");
      expect(verifyBlob(data, signBlob(data, loaded), publicKey)).toBe(true);
    }
  });

  it("refuses scrypt parameters cosign never writes (a cost bomb), naming them", () => {
    const pem = handBuiltCosignKey(privateKey, PASSWORD, 1024, "ENCRYPTED SIGSTORE PRIVATE KEY");
    expect(() => loadPrivateKey(pem, PASSWORD, "evil.key")).toThrow(ConfigError);
    expect(() => loadPrivateKey(pem, PASSWORD, "evil.key")).toThrow(
      /evil\.key: unsupported scrypt parameters N=1024/,
    );
  });

  it("says 'wrong password for <file>?' and never echoes the password", () => {
    const pem = handBuiltCosignKey(privateKey, PASSWORD, 32768, "ENCRYPTED COSIGN PRIVATE KEY");
    const attempt = "hunter2-secret-attempt";
    let caught: unknown;
    try {
      loadPrivateKey(pem, attempt, "keys/cosign.key");
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const message = (caught as Error).message;
    expect(message).toContain("wrong password for keys/cosign.key?");
    expect(message).not.toContain(attempt);
    expect(message).not.toContain(PASSWORD);
    expect((caught as ConfigError).exitCode).toBe(2);
  });

  it("asks for COSIGN_PASSWORD when an encrypted key comes without a password", () => {
    const pem = handBuiltCosignKey(privateKey, PASSWORD, 32768, "ENCRYPTED SIGSTORE PRIVATE KEY");
    expect(() => loadPrivateKey(pem, undefined, "cosign.key")).toThrow(UsageError);
    expect(() => loadPrivateKey(pem, undefined, "cosign.key")).toThrow(
      /cosign\.key is encrypted: set COSIGN_PASSWORD/,
    );
  });

  it("loads plain PKCS#8 'PRIVATE KEY' and SEC1 'EC PRIVATE KEY' PEMs without a password", () => {
    const pkcs8 = privateKey.export({ format: "pem", type: "pkcs8" }) as string;
    const sec1 = privateKey.export({ format: "pem", type: "sec1" }) as string;
    expect(pkcs8).toContain("BEGIN PRIVATE KEY");
    expect(sec1).toContain("BEGIN EC PRIVATE KEY");
    for (const pem of [pkcs8, sec1]) {
      const loaded = loadPrivateKey(pem, undefined, "plain.pem");
      expect(verifyBlob(data, signBlob(data, loaded), publicKey)).toBe(true);
    }
  });

  it("loads an `openssl ecparam -genkey` file (EC PARAMETERS block first)", () => {
    const pem = execFileSync("openssl", ["ecparam", "-name", "prime256v1", "-genkey"], { encoding: "utf8" });
    expect(pem).toContain("BEGIN EC PARAMETERS");
    const loaded = loadPrivateKey(pem, undefined, "openssl.pem");
    const pub = crypto.createPublicKey(loaded);
    expect(verifyBlob(data, signBlob(data, loaded), pub)).toBe(true);
  });

  it("rejects files without a private key, naming the file and what it found", () => {
    const pubPem = publicKey.export({ format: "pem", type: "spki" }) as string;
    expect(() => loadPrivateKey(pubPem, undefined, "cosign.pub")).toThrow(
      /cosign\.pub: no private key found \(found PEM blocks: PUBLIC KEY\)/,
    );
    expect(() => loadPrivateKey("garbage", undefined, "x.key")).toThrow(
      /x\.key: no private key found \(not a PEM file\)/,
    );
  });

  it("rejects a truncated envelope with a clear error", () => {
    const pem = `-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n${Buffer.from('{"kdf":').toString("base64")}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n`;
    expect(() => loadPrivateKey(pem, PASSWORD, "cut.key")).toThrow(
      /cut\.key: encrypted private key is not a cosign key envelope/,
    );
  });
});

describe("loadPublicKey", () => {
  it("loads SPKI PEM and refuses garbage with a message naming the file", () => {
    const { publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const pem = publicKey.export({ format: "pem", type: "spki" }) as string;
    const loaded = loadPublicKey(pem, "cosign.pub");
    expect(
      loaded
        .export({ format: "der", type: "spki" })
        .equals(publicKey.export({ format: "der", type: "spki" })),
    ).toBe(true);
    expect(() => loadPublicKey("not a key", "keys/cinc.pub")).toThrow(ConfigError);
    expect(() => loadPublicKey("not a key", "keys/cinc.pub")).toThrow(
      /keys\/cinc\.pub: not a PEM public key/,
    );
  });
});

describe("writeKeyPair", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "airgap-keys-"));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it("writes PREFIX.key mode 0600 without the password in it, and PREFIX.pub that matches", async () => {
    const prefix = path.join(dir, "cosign");
    const { keyPath, pubPath } = await writeKeyPair(prefix, PASSWORD);
    expect(keyPath).toBe(`${prefix}.key`);
    expect(pubPath).toBe(`${prefix}.pub`);
    expect((await fs.stat(keyPath)).mode & 0o777).toBe(0o600);

    const keyBytes = await fs.readFile(keyPath);
    const keyText = keyBytes.toString("utf8");
    expect(keyText.startsWith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")).toBe(true);
    const decodedEnvelope = pemBody(keyText, "ENCRYPTED SIGSTORE PRIVATE KEY").toString("utf8");
    for (const haystack of [keyText, decodedEnvelope]) {
      expect(haystack).not.toContain(PASSWORD);
      expect(haystack).not.toContain(Buffer.from(PASSWORD).toString("base64"));
    }

    const key = loadPrivateKey(keyText, PASSWORD, keyPath);
    const pub = loadPublicKey(await fs.readFile(pubPath, "utf8"), pubPath);
    const data = Buffer.from("payload");
    expect(verifyBlob(data, signBlob(data, key), pub)).toBe(true);
  });

  it("refuses to overwrite an existing key or public key, leaving both untouched", async () => {
    const prefix = path.join(dir, "cosign");
    await fs.writeFile(`${prefix}.key`, "ORIGINAL KEY");
    await expect(writeKeyPair(prefix, PASSWORD)).rejects.toThrow(UsageError);
    await expect(writeKeyPair(prefix, PASSWORD)).rejects.toThrow(
      /refusing to overwrite existing .*cosign\.key/,
    );
    expect(await fs.readFile(`${prefix}.key`, "utf8")).toBe("ORIGINAL KEY");
    await expect(fs.stat(`${prefix}.pub`)).rejects.toThrow(/ENOENT/);

    const other = path.join(dir, "other");
    await fs.writeFile(`${other}.pub`, "ORIGINAL PUB");
    await expect(writeKeyPair(other, PASSWORD)).rejects.toThrow(
      /refusing to overwrite existing .*other\.pub/,
    );
    expect(await fs.readFile(`${other}.pub`, "utf8")).toBe("ORIGINAL PUB");
    await expect(fs.stat(`${other}.key`)).rejects.toThrow(/ENOENT/);
  });

  it("with force, replaces both files and the key is still 0600", async () => {
    const prefix = path.join(dir, "cosign");
    await fs.writeFile(`${prefix}.key`, "OLD", { mode: 0o644 });
    await fs.writeFile(`${prefix}.pub`, "OLD");
    await writeKeyPair(prefix, PASSWORD, { force: true });
    expect((await fs.stat(`${prefix}.key`)).mode & 0o777).toBe(0o600);
    const key = loadPrivateKey(await fs.readFile(`${prefix}.key`, "utf8"), PASSWORD, "cosign.key");
    const pub = loadPublicKey(await fs.readFile(`${prefix}.pub`, "utf8"));
    const data = Buffer.from("x");
    expect(verifyBlob(data, signBlob(data, key), pub)).toBe(true);
    expect((await fs.readdir(dir)).sort()).toEqual(["cosign.key", "cosign.pub"]);
  });
});
