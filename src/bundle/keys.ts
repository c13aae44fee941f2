/**
 * Cosign-compatible signing keys.
 *
 * The private key file is the format `cosign generate-key-pair` writes: a PEM block labelled
 * `ENCRYPTED SIGSTORE PRIVATE KEY` (older cosign: `ENCRYPTED COSIGN PRIVATE KEY`) whose body is a JSON
 * envelope
 *
 *   {"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"<b64>"},
 *    "cipher":{"name":"nacl/secretbox","nonce":"<b64>"},"ciphertext":"<b64>"}
 *
 * where the key for NaCl secretbox (XSalsa20-Poly1305) is scrypt(password, salt) and the plaintext is
 * the PKCS#8 DER of the private key. The public key is a plain SPKI `PUBLIC KEY` PEM.
 */
import crypto from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import nacl from "tweetnacl";
import { ConfigError, UsageError } from "../errors.js";

export const SIGSTORE_PRIVATE_KEY_LABEL = "ENCRYPTED SIGSTORE PRIVATE KEY";
export const COSIGN_PRIVATE_KEY_LABEL = "ENCRYPTED COSIGN PRIVATE KEY";

const SALT_BYTES = 32;
const BOX_KEY_BYTES = 32;
const BOX_NONCE_BYTES = 24;

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/** What cosign writes today. */
export const DEFAULT_SCRYPT: ScryptParams = { N: 65536, r: 8, p: 1 };

/*
 * The envelope names its own cost, so a hostile key file could ask for gigabytes of memory. Like cosign
 * (go-securesystemslib), accept only the three parameter sets it has ever written.
 */
const ACCEPTED_SCRYPT: readonly ScryptParams[] = [
  { N: 32768, r: 8, p: 1 },
  { N: 65536, r: 8, p: 1 },
  { N: 131072, r: 8, p: 1 },
];

interface Envelope {
  kdf: { name: "scrypt"; params: ScryptParams; salt: string };
  cipher: { name: "nacl/secretbox"; nonce: string };
  ciphertext: string;
}

function scryptOptions(params: ScryptParams): crypto.ScryptOptions {
  // Node refuses anything above 32 MiB by default; scrypt needs 128*N*r*p bytes, so leave headroom.
  return { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r * params.p };
}

function scryptAsync(password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    crypto.scrypt(Buffer.from(password, "utf8"), salt, BOX_KEY_BYTES, scryptOptions(params), (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

/** Wraps DER bytes in a PEM block with 64-column lines, as Go's encoding/pem does. */
export function toPem(label: string, der: Buffer): string {
  const b64 = der.toString("base64");
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

export interface PemBlock {
  label: string;
  der: Buffer;
}

/** All PEM blocks in a text, in order. Headers (Proc-Type etc.) are skipped. */
export function parsePemBlocks(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const body = (m[2] ?? "")
      .split(/\r?\n/)
      .filter((line) => !line.includes(":"))
      .join("")
      .replace(/\s+/g, "");
    blocks.push({ label: m[1] ?? "", der: Buffer.from(body, "base64") });
  }
  return blocks;
}

/** Encrypts PKCS#8 DER into cosign's JSON envelope. */
export async function encryptPrivateKey(
  pkcs8Der: Buffer,
  password: string,
  params: ScryptParams = DEFAULT_SCRYPT,
): Promise<Buffer> {
  const salt = crypto.randomBytes(SALT_BYTES);
  const nonce = crypto.randomBytes(BOX_NONCE_BYTES);
  const boxKey = await scryptAsync(password, salt, params);
  const sealed = nacl.secretbox(pkcs8Der, nonce, boxKey);
  boxKey.fill(0);
  // Key order matches Go's json.Marshal of cosign's structs, so our files are byte-for-byte its shape.
  const envelope: Envelope = {
    kdf: { name: "scrypt", params: { N: params.N, r: params.r, p: params.p }, salt: salt.toString("base64") },
    cipher: { name: "nacl/secretbox", nonce: nonce.toString("base64") },
    ciphertext: Buffer.from(sealed).toString("base64"),
  };
  return Buffer.from(JSON.stringify(envelope), "utf8");
}

function parseEnvelope(body: Buffer, source: string): Envelope {
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString("utf8"));
  } catch {
    throw new ConfigError(`${source}: encrypted private key is not a cosign key envelope (bad JSON)`);
  }
  const env = raw as Partial<Envelope> | null;
  const kdf = env?.kdf;
  const cipher = env?.cipher;
  if (kdf?.name !== "scrypt" || typeof kdf.salt !== "string" || !kdf.params) {
    throw new ConfigError(`${source}: unsupported key derivation (expected scrypt)`);
  }
  if (cipher?.name !== "nacl/secretbox" || typeof cipher.nonce !== "string") {
    throw new ConfigError(`${source}: unsupported cipher (expected nacl/secretbox)`);
  }
  if (typeof env?.ciphertext !== "string") {
    throw new ConfigError(`${source}: encrypted private key has no ciphertext`);
  }
  const { N, r, p } = kdf.params;
  if (!ACCEPTED_SCRYPT.some((a) => a.N === N && a.r === r && a.p === p)) {
    throw new ConfigError(
      `${source}: unsupported scrypt parameters N=${N} r=${r} p=${p} (accepted: N=32768, 65536 or 131072 with r=8 p=1)`,
    );
  }
  return env as Envelope;
}

/** Decrypts cosign's JSON envelope to the PKCS#8 DER inside; wrong password → ConfigError. */
export function decryptPrivateKey(body: Buffer, password: string, source = "private key"): Buffer {
  const env = parseEnvelope(body, source);
  const salt = Buffer.from(env.kdf.salt, "base64");
  const nonce = Buffer.from(env.cipher.nonce, "base64");
  if (nonce.length !== BOX_NONCE_BYTES)
    throw new ConfigError(`${source}: encrypted private key has a bad nonce`);
  const boxKey = crypto.scryptSync(
    Buffer.from(password, "utf8"),
    salt,
    BOX_KEY_BYTES,
    scryptOptions(env.kdf.params),
  );
  const opened = nacl.secretbox.open(Buffer.from(env.ciphertext, "base64"), nonce, boxKey);
  boxKey.fill(0);
  if (!opened) {
    throw new ConfigError(`cannot decrypt ${source}: wrong password for ${source}? (COSIGN_PASSWORD)`);
  }
  return Buffer.from(opened);
}

/**
 * A new ECDSA P-256 key pair, the private key encrypted exactly as `cosign generate-key-pair` writes it,
 * so `cosign sign-blob --key` loads it.
 */
export async function generateKeyPair(
  password: string,
): Promise<{ privateKeyPem: string; publicKeyPem: string }> {
  const { privateKey, publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const pkcs8 = privateKey.export({ format: "der", type: "pkcs8" });
  const envelope = await encryptPrivateKey(pkcs8, password);
  pkcs8.fill(0);
  return {
    privateKeyPem: toPem(SIGSTORE_PRIVATE_KEY_LABEL, envelope),
    publicKeyPem: publicKeyToPem(publicKey),
  };
}

export function publicKeyToPem(publicKey: crypto.KeyObject): string {
  return toPem("PUBLIC KEY", publicKey.export({ format: "der", type: "spki" }));
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.lstat(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

/*
 * Overwriting goes through a fresh 0600 file renamed into place, so there is never a moment where the
 * new private key sits in a file with the old (maybe wider) mode.
 */
async function writeFileReplacing(file: string, data: string, mode: number): Promise<void> {
  const tmp = path.join(
    path.dirname(file),
    `.${path.basename(file)}.${crypto.randomBytes(6).toString("hex")}.tmp`,
  );
  const fh = await fs.open(tmp, "wx", mode);
  try {
    await fh.writeFile(data, "utf8");
    await fh.chmod(mode);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

async function writeFileExclusive(file: string, data: string, mode: number): Promise<void> {
  const fh = await fs.open(file, "wx", mode);
  try {
    await fh.writeFile(data, "utf8");
    // The umask may have narrowed or the mode argument been ignored on some filesystems: set it exactly.
    await fh.chmod(mode);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes `PREFIX.key` (mode 0600) and `PREFIX.pub`. Refuses to replace either file unless `force`,
 * and checks both before writing anything so a refusal leaves no half-written pair.
 */
export async function writeKeyPair(
  prefix: string,
  password: string,
  options: { force?: boolean } = {},
): Promise<{ keyPath: string; pubPath: string }> {
  const keyPath = `${prefix}.key`;
  const pubPath = `${prefix}.pub`;
  if (!options.force) {
    for (const file of [keyPath, pubPath]) {
      if (await exists(file)) {
        throw new UsageError(`refusing to overwrite existing ${file} (remove it or use --force)`);
      }
    }
  }
  const { privateKeyPem, publicKeyPem } = await generateKeyPair(password);
  if (options.force) {
    await writeFileReplacing(keyPath, privateKeyPem, 0o600);
    await writeFileReplacing(pubPath, publicKeyPem, 0o644);
    return { keyPath, pubPath };
  }
  try {
    await writeFileExclusive(keyPath, privateKeyPem, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      throw new UsageError(`refusing to overwrite existing ${keyPath} (remove it or use --force)`);
    }
    throw err;
  }
  try {
    await writeFileExclusive(pubPath, publicKeyPem, 0o644);
  } catch (err) {
    // Never leave a private key without its public half: the pair would look complete but be useless.
    await fs.rm(keyPath, { force: true });
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      throw new UsageError(`refusing to overwrite existing ${pubPath} (remove it or use --force)`);
    }
    throw err;
  }
  return { keyPath, pubPath };
}

const PLAIN_PRIVATE_LABELS = new Set([
  "PRIVATE KEY",
  "EC PRIVATE KEY",
  "RSA PRIVATE KEY",
  "ENCRYPTED PRIVATE KEY",
]);

/**
 * Loads a private key: cosign's encrypted formats (both labels), or plain PKCS#8 / SEC1 / PKCS#1 PEM.
 * `source` names the file in messages; the password never appears in any message.
 */
export function loadPrivateKey(
  pem: string,
  password: string | undefined,
  source = "private key",
): crypto.KeyObject {
  const blocks = parsePemBlocks(pem);
  const block = blocks.find(
    (b) =>
      b.label === SIGSTORE_PRIVATE_KEY_LABEL ||
      b.label === COSIGN_PRIVATE_KEY_LABEL ||
      PLAIN_PRIVATE_LABELS.has(b.label),
  );
  if (!block) {
    const found = blocks.map((b) => b.label).join(", ");
    throw new ConfigError(
      `${source}: no private key found${found ? ` (found PEM blocks: ${found})` : " (not a PEM file)"}`,
    );
  }
  let key: crypto.KeyObject;
  try {
    switch (block.label) {
      case SIGSTORE_PRIVATE_KEY_LABEL:
      case COSIGN_PRIVATE_KEY_LABEL: {
        if (password === undefined) {
          throw new UsageError(
            `${source} is encrypted: set COSIGN_PASSWORD (it may be empty) or run on a terminal`,
          );
        }
        const der = decryptPrivateKey(block.der, password, source);
        try {
          key = crypto.createPrivateKey({ key: der, format: "der", type: "pkcs8" });
        } finally {
          der.fill(0);
        }
        break;
      }
      case "PRIVATE KEY":
        key = crypto.createPrivateKey({ key: block.der, format: "der", type: "pkcs8" });
        break;
      case "EC PRIVATE KEY":
        key = crypto.createPrivateKey({ key: block.der, format: "der", type: "sec1" });
        break;
      case "RSA PRIVATE KEY":
        key = crypto.createPrivateKey({ key: block.der, format: "der", type: "pkcs1" });
        break;
      default: {
        // PKCS#8 EncryptedPrivateKeyInfo, as `openssl genpkey -aes256` writes.
        if (password === undefined) {
          throw new UsageError(`${source} is encrypted: set COSIGN_PASSWORD or run on a terminal`);
        }
        try {
          key = crypto.createPrivateKey({
            key: block.der,
            format: "der",
            type: "pkcs8",
            passphrase: password,
          });
        } catch {
          throw new ConfigError(`cannot decrypt ${source}: wrong password for ${source}?`);
        }
      }
    }
  } catch (err) {
    if (err instanceof ConfigError || err instanceof UsageError) throw err;
    throw new ConfigError(`${source}: cannot parse ${block.label}: ${(err as Error).message}`, undefined, {
      cause: err,
    });
  }
  assertSupportedKey(key, source);
  return key;
}

function assertSupportedKey(key: crypto.KeyObject, source: string): void {
  const type = key.asymmetricKeyType;
  if (type === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve !== "prime256v1" && curve !== "secp384r1" && curve !== "secp521r1") {
      throw new ConfigError(`${source}: unsupported elliptic curve ${curve ?? "(unknown)"} (use P-256)`);
    }
    return;
  }
  if (type === "rsa") {
    if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
      throw new ConfigError(`${source}: RSA keys shorter than 2048 bits are not accepted`);
    }
    return;
  }
  throw new ConfigError(
    `${source}: unsupported key type ${type ?? "(unknown)"} (use ECDSA P-256, as cosign does)`,
  );
}

/** Loads an SPKI `PUBLIC KEY` PEM (a certificate or private key PEM also yields its public key). */
export function loadPublicKey(pem: string, source = "public key"): crypto.KeyObject {
  let key: crypto.KeyObject;
  let labels: string[] = [];
  try {
    labels = parsePemBlocks(pem).map((b) => b.label);
  } catch {
    // not PEM at all: said below
  }
  if (labels.some((l) => l.includes("PRIVATE KEY"))) {
    throw new ConfigError(`${source} is a private key; pass the public key (cosign.pub) instead`);
  }
  try {
    const blocks = parsePemBlocks(pem);
    const cert = blocks.find((b) => b.label === "CERTIFICATE");
    key = cert ? new crypto.X509Certificate(cert.der).publicKey : crypto.createPublicKey(pem);
  } catch (err) {
    throw new ConfigError(`${source}: not a PEM public key (${(err as Error).message})`, undefined, {
      cause: err,
    });
  }
  assertSupportedKey(key, source);
  return key;
}
