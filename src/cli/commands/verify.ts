import { readFile } from "node:fs/promises";
import { type VerifyReport, verifyBundle } from "../../bundle/verify.js";
import { UsageError } from "../../errors.js";
import { humanBytes, printJson } from "../output.js";
import { progressFor } from "../progress.js";

export interface VerifyFlags {
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
  try {
    return await readFile(flags.key, "utf8");
  } catch (err) {
    throw new UsageError(`cannot read public key ${flags.key}: ${(err as Error).message}`);
  }
}

export function printReport(report: VerifyReport, input: string): void {
  for (const w of report.warnings) process.stderr.write(`warning: ${w}\n`);
  for (const p of report.problems) process.stderr.write(`FAIL ${p.code} ${p.item}: ${p.message}\n`);
  const sig = {
    verified: "signature verified",
    invalid: "signature INVALID",
    absent: "no signature",
    "not-checked": report.signed
      ? "signature present, not checked (no --key)"
      : "unsigned, not checked (no --key)",
  }[report.signature];
  const verdict = report.ok
    ? "OK"
    : `FAILED (${report.problems.length} problem${report.problems.length === 1 ? "" : "s"})`;
  process.stderr.write(
    `${input}: ${verdict}; ${sig}; ${report.files} files, ${report.blobs} blobs, ${humanBytes(report.bytes)} checked in ${report.seconds.toFixed(1)}s\n`,
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
