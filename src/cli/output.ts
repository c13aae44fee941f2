import { AirgapError, IntegrityError } from "../errors.js";

/** Print an error the way users and scripts expect: one clear line on stderr, or JSON on stdout. */
export function printError(err: unknown, json: boolean): void {
  const message = err instanceof Error ? err.message : String(err);
  if (json) {
    const out: Record<string, unknown> = { error: message };
    if (err instanceof AirgapError) out.code = err.code;
    if (err instanceof IntegrityError && err.item) out.item = err.item;
    process.stdout.write(`${JSON.stringify(out)}\n`);
  }
  process.stderr.write(`airgap: ${message}\n`);
  if (process.env.AIRGAP_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  let cause = err instanceof Error ? err.cause : undefined;
  while (cause instanceof Error && process.env.AIRGAP_DEBUG) {
    process.stderr.write(`  caused by: ${cause.message}\n`);
    cause = cause.cause;
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Bytes for people: 512 B, 1.5 MiB. */
export { human as humanBytes } from "../pipeline/progress.js";
