import { writeKeyPair } from "../../bundle/keys.js";
import { readPassword } from "../../bundle/password.js";

export async function runKeyGenerate(flags: { outputPrefix: string; force?: boolean }): Promise<void> {
  const password = await readPassword({ confirm: true, purpose: "the new private key" });
  const { keyPath, pubPath } = await writeKeyPair(flags.outputPrefix, password, {
    force: Boolean(flags.force),
  });
  process.stderr.write(`Private key written to ${keyPath}\nPublic key written to ${pubPath}\n`);
}
