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

export function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}
