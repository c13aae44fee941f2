import { AirgapError, IntegrityError } from "../errors.js";
import { redactDeep, redactSecrets } from "../redact.js";
import { forTerminal } from "./terminal.js";

/**
 * Print an error the way users and scripts expect: one clear line on stderr, or JSON on stdout.
 * Secrets are redacted and control characters escaped: messages quote URLs, bundle paths and
 * remote answers.
 */
export function printError(err: unknown, json: boolean): void {
  const message = err instanceof Error ? err.message : String(err);
  if (json) {
    const out: Record<string, unknown> = { error: redactSecrets(message) };
    if (err instanceof AirgapError) out.code = err.code;
    if (err instanceof IntegrityError && err.item) out.item = redactSecrets(err.item);
    if (err instanceof AirgapError && err.details) out.details = err.details.map(redactSecrets);
    writeJson(out, 0);
  }
  process.stderr.write(`airgap: ${forTerminal(message)}\n`);
  // each line escaped on its own: a detail cannot forge another line
  if (err instanceof AirgapError && err.details)
    for (const d of err.details) process.stderr.write(`  ${forTerminal(d)}\n`);
  if (process.env.AIRGAP_DEBUG && err instanceof Error && err.stack)
    for (const line of err.stack.split("\n")) process.stderr.write(`${forTerminal(line)}\n`);
  let cause = err instanceof Error ? err.cause : undefined;
  while (cause instanceof Error && process.env.AIRGAP_DEBUG) {
    process.stderr.write(`  caused by: ${forTerminal(cause.message)}\n`);
    cause = cause.cause;
  }
}

/** --json output: secrets redacted, and C1 controls escaped too (JSON.stringify leaves them raw). */
export function printJson(value: unknown): void {
  writeJson(value, 2);
}

function writeJson(value: unknown, indent: number): void {
  const text = JSON.stringify(redactDeep(value), null, indent).replace(
    /[\u007f-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  process.stdout.write(`${text}\n`);
}

export { forTerminal } from "./terminal.js";

/** One human-readable line (default stderr), passed through forTerminal: it quotes data from bundles and remotes. */
export function printLine(line: string, to: NodeJS.WritableStream = process.stderr): void {
  to.write(`${forTerminal(line)}\n`);
}

/** Bytes for people: 512 B, 1.5 MiB. */
export { human as humanBytes } from "../pipeline/progress.js";
