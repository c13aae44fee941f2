import { createPublicKey } from "node:crypto";
import { readFile } from "node:fs/promises";
import { loadPrivateKey } from "../bundle/keys.js";
import { readPassword } from "../bundle/password.js";
import { signChecksums } from "../bundle/signing.js";

/** Load a cosign private key (asking for its password once) and return a SHA256SUMS signer. */
export async function makeSigner(
  keyFile: string,
): Promise<(sums: Buffer) => { sigBase64: string; sigstoreBundleJson: string }> {
  const pem = await readFile(keyFile, "utf8");
  const encrypted = pem.includes("ENCRYPTED");
  const password = encrypted ? await readPassword({ purpose: keyFile }) : undefined;
  const privateKey = loadPrivateKey(pem, password, keyFile);
  const publicKey = createPublicKey(privateKey);
  return (sums) => signChecksums(sums, privateKey, publicKey);
}
