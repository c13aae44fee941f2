import { randomBytes } from "node:crypto";
import { rename, writeFile } from "node:fs/promises";
import { extname } from "node:path";
import { buildBundleReport, renderHtml, renderMarkdown } from "../../bundle/report.js";
import { UsageError } from "../../errors.js";
import { type S3Flags, s3OptionsFrom } from "../inputs.js";
import { printJson } from "../output.js";
import { publicKeyFrom, requireSignatureFrom } from "./verify.js";

export interface ReportFlags extends S3Flags {
  output?: string;
  key?: string;
  requireSignature?: boolean;
  concurrency?: number;
  json?: boolean;
}

function formatOf(output: string | undefined): "md" | "html" {
  if (!output || output === "-") return "md";
  const ext = extname(output).toLowerCase();
  if (ext === ".md" || ext === ".markdown") return "md";
  if (ext === ".html" || ext === ".htm") return "html";
  throw new UsageError(`report output ${output}: name it FILE.md or FILE.html`);
}

export async function runReport(input: string, flags: ReportFlags): Promise<void> {
  const format = formatOf(flags.output);
  const publicKeyPem = await publicKeyFrom(flags);
  const data = await buildBundleReport(input, {
    publicKeyPem,
    requireSignature: requireSignatureFrom(flags),
    concurrency: flags.concurrency,
    s3: s3OptionsFrom(flags),
  });
  for (const w of data.verification.warnings) process.stderr.write(`warning: ${w}\n`);
  const text = format === "html" ? renderHtml(data) : renderMarkdown(data);
  if (flags.output && flags.output !== "-") {
    // Written whole or not at all: a reviewer never signs a half-written report.
    const temp = `${flags.output}.partial-${randomBytes(4).toString("hex")}`;
    await writeFile(temp, text);
    await rename(temp, flags.output);
    process.stderr.write(`report written to ${flags.output} (${data.items.length} items)\n`);
  }
  if (flags.json) printJson(data);
  else if (!flags.output || flags.output === "-") process.stdout.write(text);
}
