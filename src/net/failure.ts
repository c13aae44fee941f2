/**
 * What a failed connection says about itself: the error codes and messages down its `cause` chain
 * (undici and the AWS SDK wrap the TLS error), which codes mean "certificate not trusted", and which
 * mean "nothing answered".
 */

/** OpenSSL verification codes that a missing or wrong CA produces. */
export const UNTRUSTED_CERT_CODES: ReadonlySet<string> = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_UNTRUSTED",
]);

/** Failures to connect at all: a wrong endpoint, a name that does not resolve, a server that is down. */
export const UNREACHABLE_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);

/** Error codes and messages down the `cause` chain (at most six levels). */
export function failureChain(err: unknown): { codes: string[]; messages: string[] } {
  const codes: string[] = [];
  const messages: string[] = [];
  for (let e: unknown = err, depth = 0; e && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
    const m = (e as { message?: unknown }).message;
    if (typeof m === "string") messages.push(m);
  }
  return { codes, messages };
}
