/**
 * Error classes with a typed code. The CLI maps classes to exit codes:
 * UsageError/ConfigError → 2, IntegrityError → 3, everything else → 1.
 */
export type IntegrityCode =
  | "DIGEST_MISMATCH"
  | "SIZE_MISMATCH"
  | "SIGNATURE_INVALID"
  | "SIGNATURE_MISSING"
  | "CHECKSUM_MISMATCH"
  | "UNLISTED_FILE"
  | "MISSING_FILE"
  | "DANGLING_REFERENCE"
  | "MALFORMED"
  | "PATH_ESCAPE"
  | "TRUNCATED"
  | "POLICY_FAILED";

export class AirgapError extends Error {
  readonly exitCode: number = 1;
  /** Further lines (each one item of a list the message announces), printed one per line. */
  readonly details?: string[];
  constructor(
    message: string,
    readonly code: string = "FAILED",
    options?: { cause?: unknown; details?: string[] },
  ) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = new.target.name;
    if (options?.details) this.details = options.details;
  }
}

/** Bad flags or arguments. */
export class UsageError extends AirgapError {
  override readonly exitCode = 2;
  constructor(message: string, options?: { cause?: unknown; details?: string[] }) {
    super(message, "USAGE", options);
  }
}

/** A config file that does not parse or validate; `location` is file:line:column when known. */
export class ConfigError extends AirgapError {
  override readonly exitCode = 2;
  constructor(
    message: string,
    readonly location?: string,
    options?: { cause?: unknown; details?: string[] },
  ) {
    super(location ? `${location}: ${message}` : message, "CONFIG", options);
  }
}

/** Content that does not match what vouches for it: digests, checksums, signatures. `item` names it. */
export class IntegrityError extends AirgapError {
  override readonly exitCode = 3;
  constructor(
    override readonly code: IntegrityCode,
    message: string,
    readonly item?: string,
    options?: { cause?: unknown },
  ) {
    super(message, code, options);
  }
}

/** A registry, S3 or HTTP endpoint answered with an error; the message names host, repository and status. */
export class RemoteError extends AirgapError {
  constructor(
    message: string,
    readonly status?: number,
    code = "REMOTE",
    options?: { cause?: unknown },
  ) {
    super(message, code, options);
  }
}

export function exitCodeOf(err: unknown): number {
  if (err instanceof AirgapError) return err.exitCode;
  return 1;
}

/** A tag, manifest or blob the store does not hold. Stores throw it so callers can tell absence from failure. */
export class NotFoundError extends AirgapError {
  constructor(
    message: string,
    readonly item?: string,
    options?: { cause?: unknown },
  ) {
    super(message, "NOT_FOUND", options);
  }
}

/**
 * The run was stopped by SIGINT or SIGTERM. Exit code 128 + the signal's number (130, 143), as shells
 * report a process the signal ended; the message says how to pick up where it stopped.
 */
export class InterruptedError extends AirgapError {
  override readonly exitCode: number;
  constructor(
    readonly signal: "SIGINT" | "SIGTERM",
    resume: string,
  ) {
    super(`interrupted by ${signal}; ${resume}`, "INTERRUPTED");
    this.exitCode = signal === "SIGINT" ? 130 : 143;
  }
}
