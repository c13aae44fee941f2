/** Turning registry answers and network failures into errors a person can act on. */
import { RemoteError } from "../../errors.js";
import { failureChain, UNTRUSTED_CERT_CODES } from "../../net/failure.js";
import { ProxyError } from "../../net/proxy.js";

export interface RegistryErrorDetail {
  code: string;
  message?: string;
  detail?: unknown;
}

/** What a failing request was about, so the message names registry, repository and content. */
export interface RequestContext {
  registry: string;
  repository?: string;
  /** Tag, digest or a short description such as "tag list". */
  subject?: string;
  method: string;
  url: string;
}

/** A registry answered with an error status. `registryCode` is the first code of its JSON error body. */
export class RegistryError extends RemoteError {
  readonly registry: string;
  readonly repository?: string;
  readonly method: string;
  readonly url: string;
  readonly errors: RegistryErrorDetail[];
  readonly registryCode?: string;

  constructor(
    message: string,
    ctx: RequestContext,
    status: number | undefined,
    errors: RegistryErrorDetail[] = [],
    code?: string,
    cause?: unknown,
  ) {
    super(
      message,
      status,
      code ?? errors[0]?.code ?? (status ? `HTTP_${status}` : "REMOTE"),
      cause ? { cause } : undefined,
    );
    this.registry = ctx.registry;
    if (ctx.repository !== undefined) this.repository = ctx.repository;
    this.method = ctx.method;
    this.url = ctx.url;
    this.errors = errors;
    if (errors[0]?.code !== undefined) this.registryCode = errors[0].code;
  }
}

/** Parse the `{"errors":[{code,message,detail}]}` body of the distribution spec; [] when it is not one. */
export function parseErrorBody(text: string): RegistryErrorDetail[] {
  if (!text) return [];
  try {
    const json = JSON.parse(text) as { errors?: unknown };
    if (!Array.isArray(json.errors)) return [];
    return json.errors
      .filter(
        (e): e is { code: unknown; message?: unknown; detail?: unknown } =>
          typeof e === "object" && e !== null,
      )
      .map((e) => {
        const d: RegistryErrorDetail = { code: String(e.code ?? "UNKNOWN") };
        if (typeof e.message === "string") d.message = e.message;
        if (e.detail !== undefined) d.detail = e.detail;
        return d;
      });
  } catch {
    return [];
  }
}

export function where(ctx: RequestContext): string {
  const parts = [`registry ${ctx.registry}`];
  if (ctx.repository) parts.push(`repository ${ctx.repository}`);
  if (ctx.subject) parts.push(ctx.subject);
  return parts.join(", ");
}

function statusText(status: number): string {
  const texts: Record<number, string> = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    416: "Range Not Satisfiable",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
  };
  return texts[status] ? `${status} ${texts[status]}` : String(status);
}

/**
 * The code of a 404 whose registry has no API at the root of its host (the base endpoint answers
 * 404 too): the fix is a `pathPrefix`, not the missing item.
 */
export const NO_REGISTRY_API = "NO_REGISTRY_API";

export function errorFromResponse(
  ctx: RequestContext,
  status: number,
  bodyText: string,
  extra = "",
  code?: string,
): RegistryError {
  const errors = parseErrorBody(bodyText);
  let detail = errors.map((e) => (e.message ? `${e.code}: ${e.message}` : e.code)).join("; ");
  if (!detail && bodyText && !bodyText.trimStart().startsWith("<")) detail = bodyText.trim().slice(0, 200);
  const msg = `${ctx.method} ${ctx.url} failed with ${statusText(status)}${detail ? ` (${detail})` : ""} [${where(ctx)}]${extra ? `: ${extra}` : ""}`;
  return new RegistryError(msg, ctx, status, errors, code);
}

/** Explain a failure below HTTP (TLS, connection) for one registry host. */
export function errorFromNetwork(
  ctx: RequestContext,
  host: string,
  err: unknown,
  trustHint: string,
): RemoteError {
  const { codes, messages } = failureChain(err);
  const text = messages.join(" ");
  const base = `${ctx.method} ${ctx.url} [${where(ctx)}]`;
  for (let e: unknown = err, depth = 0; e && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof ProxyError)
      return new RegistryError(`${base}: ${e.message}`, ctx, e.status, [], e.code, err);
  }
  if (codes.some((c) => UNTRUSTED_CERT_CODES.has(c))) {
    return new RegistryError(
      `${base}: the TLS certificate of ${host} is not trusted (${codes.find((c) => UNTRUSTED_CERT_CODES.has(c))}). ` +
        `Trust its CA with --ca-file FILE or the registry's \`ca:\` setting, or put the CA as *.crt into /etc/docker/certs.d/${host}/ ` +
        `(or /etc/containers/certs.d/${host}/). ${trustHint}`,
      ctx,
      undefined,
      [],
      "TLS_UNTRUSTED",
      err,
    );
  }
  if (codes.includes("CERT_HAS_EXPIRED") || codes.includes("CERT_NOT_YET_VALID")) {
    return new RegistryError(
      `${base}: the TLS certificate of ${host} is not valid now (${codes.join(", ")})`,
      ctx,
      undefined,
      [],
      "TLS_EXPIRED",
      err,
    );
  }
  if (codes.includes("ERR_TLS_CERT_ALTNAME_INVALID")) {
    return new RegistryError(
      `${base}: the TLS certificate of ${host} does not name this host: ${messages[0] ?? ""}`,
      ctx,
      undefined,
      [],
      "TLS_HOSTNAME",
      err,
    );
  }
  if (
    /certificate required|handshake failure|alert bad certificate|peer did not return a certificate/i.test(
      text,
    )
  ) {
    return new RegistryError(
      `${base}: ${host} refused the TLS connection, it probably requires a client certificate: configure \`cert:\` and \`key:\` for this registry ` +
        `or put client.cert and client.key into /etc/docker/certs.d/${host}/ (${codes[0] ?? ""})`,
      ctx,
      undefined,
      [],
      "TLS_CLIENT_CERT",
      err,
    );
  }
  if (codes.includes("ERR_SSL_WRONG_VERSION_NUMBER") || /wrong version number/i.test(text)) {
    return new RegistryError(
      `${base}: ${host} does not speak TLS; if it is a plain-HTTP registry, name it with \`plainHTTP: true\``,
      ctx,
      undefined,
      [],
      "TLS_PLAIN_HTTP",
      err,
    );
  }
  if (codes.some((c) => c.startsWith("ERR_SSL") || c.startsWith("ERR_TLS"))) {
    return new RegistryError(
      `${base}: TLS with ${host} failed: ${messages.join(": ")}`,
      ctx,
      undefined,
      [],
      "TLS",
      err,
    );
  }
  const code = codes.find((c) => /^E[A-Z]+$/.test(c) || c.startsWith("UND_ERR"));
  return new RegistryError(
    `${base}: cannot reach ${host}: ${code ? `${code} ` : ""}${messages[0] ?? String(err)}`,
    ctx,
    undefined,
    [],
    "NETWORK",
    err,
  );
}
