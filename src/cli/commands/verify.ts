import { readFile } from "node:fs/promises";
import { loadPublicKey } from "../../bundle/keys.js";
import { type VerifyReport, verifyBundle } from "../../bundle/verify.js";
import { UsageError } from "../../errors.js";
import { type S3Flags, s3OptionsFrom } from "../inputs.js";
import { humanBytes, printJson, printLine } from "../output.js";
import { progressFor } from "../progress.js";

export interface VerifyFlags extends S3Flags {
  key?: string;
  requireSignature?: boolean;
  concurrency?: number;
  json?: boolean;
}

export function requireSignatureFrom(flags: { requireSignature?: boolean }): boolean {
  return Boolean(flags.requireSignature) || process.env.AIRGAP_REQUIRE_SIGNATURE === "1";
}

/** Read the public key a bundle must be signed with, and refuse to go on without one when required. */
export async function publicKeyFrom(flags: {
  key?: string;
  requireSignature?: boolean;
}): Promise<string | undefined> {
  if (!flags.key) {
    if (requireSignatureFrom(flags)) {
      throw new UsageError(
        "a signature is required (--require-signature or AIRGAP_REQUIRE_SIGNATURE=1): pass --key cosign.pub",
      );
    }
    return undefined;
  }
  let pem: string;
  try {
    pem = await readFile(flags.key, "utf8");
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
    throw new UsageError(
      `cannot read the public key (--key) ${flags.key}: ${missing ? "no such file" : (err as Error).message}`,
    );
  }
  // checked now, not after reading a whole bundle: a private or damaged key is a usage mistake
  loadPublicKey(pem, `--key ${flags.key}`);
  return pem;
}

export function printReport(report: VerifyReport, input: string): void {
  for (const w of report.warnings) printLine(`warning: ${w}`);
  for (const p of report.problems) printLine(`FAIL ${p.code} ${p.item}: ${p.message}`);
  const sig = {
    verified: "signature verified",
    invalid: "signature INVALID",
    absent: "no signature",
    "not-checked": report.problems.some((p) => p.code === "TRUNCATED" || p.code === "MALFORMED")
      ? "signature not checked (the bundle could not be read)"
      : report.signed
        ? "signature present, not checked (no --key)"
        : "unsigned, not checked (no --key)",
  }[report.signature];
  const verdict = report.ok
    ? "OK"
    : `FAILED (${report.problems.length} problem${report.problems.length === 1 ? "" : "s"})`;
  printLine(
    `${input}: ${verdict}; ${sig}; ${report.files} files, ${report.blobs} blobs, ${humanBytes(report.bytes)} checked in ${report.seconds.toFixed(1)}s`,
  );
}

export async function runVerify(input: string, flags: VerifyFlags): Promise<void> {
  const publicKeyPem = await publicKeyFrom(flags);
  const progress = await progressFor(flags.json ? "silent" : "auto", [
    { key: "verifying", title: "Verify the bundle" },
  ]);
  let report: VerifyReport;
  try {
    progress.phase("verifying", 0);
    let hashed = 0;
    report = await verifyBundle(input, {
      publicKeyPem,
      requireSignature: requireSignatureFrom(flags),
      concurrency: flags.concurrency,
      s3: s3OptionsFrom(flags),
      // verify reports bytes hashed so far (and, from a file or folder, the total up front)
      onProgress: (e) => {
        if (e.totalBytes !== undefined) progress.expect(e.totalBytes);
        progress.bytes(e.path, e.bytes - hashed);
        hashed = e.bytes;
      },
    });
    await progress.close();
  } catch (err) {
    await progress.close(err);
    throw err;
  }
  if (flags.json) printJson(report);
  printReport(report, input);
  if (!report.ok) process.exitCode = 3;
}
