import { openBundle } from "../../bundle/archive/reader.js";
import { verifyBundle } from "../../bundle/verify.js";
import { UsageError } from "../../errors.js";
import { serveBundle } from "../../pipeline/serve.js";
import { assertInputsReadable, type S3Flags, s3OptionsFrom } from "../inputs.js";
import { printLine } from "../output.js";
import { printReport, publicKeyFrom, requireSignatureFrom } from "./verify.js";

export interface ServeFlags extends S3Flags {
  listen: string;
  tlsCert?: string;
  tlsKey?: string;
  key?: string;
  requireSignature?: boolean;
}

/** Verify a bundle, then serve it as a read-only registry until interrupted. */
export async function runServe(input: string, flags: ServeFlags): Promise<void> {
  const m = /^(.*):(\d+)$/.exec(flags.listen);
  if (!m) throw new UsageError(`--listen ${flags.listen} is not HOST:PORT`);
  if (Boolean(flags.tlsCert) !== Boolean(flags.tlsKey))
    throw new UsageError("--tls-cert and --tls-key go together");
  await assertInputsReadable([
    ...(flags.tlsCert ? [{ file: flags.tlsCert, what: "the TLS certificate (--tls-cert)" }] : []),
    ...(flags.tlsKey ? [{ file: flags.tlsKey, what: "the TLS key (--tls-key)" }] : []),
  ]);
  const publicKeyPem = await publicKeyFrom(flags);
  const reader = await openBundle(input, { s3: s3OptionsFrom(flags) });
  if (!reader.seekable) {
    await reader.close();
    throw new UsageError(
      "serve needs a directory or an uncompressed tar, on disk or in S3 (it reads blobs on demand)",
    );
  }
  const report = await verifyBundle(reader, {
    publicKeyPem,
    requireSignature: requireSignatureFrom(flags),
  });
  if (!report.ok) {
    printReport(report, input);
    await reader.close();
    process.exitCode = 3;
    return;
  }
  for (const w of report.warnings) printLine(`warning: ${w}`);
  const host = m[1]!.replace(/^\[|\]$/g, "");
  const server = await serveBundle({
    reader,
    label: input,
    host,
    port: Number(m[2]),
    tlsCert: flags.tlsCert,
    tlsKey: flags.tlsKey,
  });
  process.stderr.write(
    `serving ${input} read-only on ${flags.tlsCert ? "https" : "http"}://${flags.listen}/v2/ (Ctrl-C to stop)\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => server.close(() => resolve());
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await reader.close();
}
