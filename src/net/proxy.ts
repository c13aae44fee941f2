/**
 * HTTP(S) proxies, as curl, git and most tools read them: HTTPS_PROXY for https:// targets,
 * HTTP_PROXY for http:// targets, NO_PROXY for exceptions (lower-case names win over upper case).
 * Every target is reached through a CONNECT tunnel (TLS stays end to end, so the trust module
 * verifies the target exactly as without a proxy). `user:password@` in the proxy URL becomes
 * Proxy-Authorization on the CONNECT request, and only there.
 */
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP, type Socket } from "node:net";
import type { ConnectionOptions } from "node:tls";
import { ConfigError, RemoteError } from "../errors.js";

export interface ProxySettings {
  /** Proxy for http:// targets. */
  httpProxy?: string;
  /** Proxy for https:// targets. */
  httpsProxy?: string;
  /** Comma-separated exceptions: `*`, host names (matching their subdomains too), `.domain`, IPs, each with an optional `:port`. */
  noProxy?: string;
}

/** Proxy settings from the environment. */
export function proxyFromEnv(env: NodeJS.ProcessEnv = process.env): ProxySettings {
  const pick = (name: string) => env[name.toLowerCase()] || env[name.toUpperCase()] || undefined;
  const out: ProxySettings = {};
  const http = pick("http_proxy");
  const https = pick("https_proxy");
  const no = pick("no_proxy");
  if (http) out.httpProxy = http;
  if (https) out.httpsProxy = https;
  if (no) out.noProxy = no;
  return out;
}

/** A proxy URL given as `host:port` is http://host:port, as curl reads it. */
export function parseProxyUrl(value: string): URL {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new ConfigError(`proxy ${redactProxy(value)} is not a URL`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new ConfigError(`proxy ${redactProxy(value)}: only http:// and https:// proxies are supported`);
  }
  return u;
}

/** The proxy URL without its password, for messages. */
export function redactProxy(value: string | URL): string {
  return String(value).replace(/\/\/([^/@:]*):[^/@]*@/, "//$1:***@");
}

function defaultPort(protocol: string): string {
  return protocol === "https:" ? "443" : "80";
}

/** Does NO_PROXY exempt this host and port? */
export function bypassesProxy(hostname: string, port: string, noProxy: string | undefined): boolean {
  if (!noProxy) return false;
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  for (const raw of noProxy.split(/[\s,]+/)) {
    const entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === "*") return true;
    let name = entry;
    let entryPort: string | undefined;
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (m) {
      name = m[1]!;
      entryPort = m[2];
    }
    name = name.replace(/^\[|\]$/g, "");
    if (entryPort && entryPort !== port) continue;
    if (isIP(name)) {
      if (name === host) return true;
      continue;
    }
    const bare = name.replace(/^\*?\./, "");
    if (host === bare || host.endsWith(`.${bare}`)) return true;
  }
  return false;
}

/** The proxy for a target URL's scheme, host and port; undefined when it is reached directly. */
export function proxyFor(
  settings: ProxySettings,
  protocol: string,
  hostname: string,
  port: string | number | undefined,
): URL | undefined {
  const value = protocol === "https:" ? settings.httpsProxy : settings.httpProxy;
  if (!value) return undefined;
  const p = port === undefined || port === "" ? defaultPort(protocol) : String(port);
  if (bypassesProxy(hostname, p, settings.noProxy)) return undefined;
  return parseProxyUrl(value);
}

/** A proxy refused or failed to open a tunnel; the message names the proxy (never its password) and the target. */
export class ProxyError extends RemoteError {
  constructor(message: string, status?: number, code = "PROXY", options?: { cause?: unknown }) {
    super(message, status, code, options);
  }
}

/**
 * Open a CONNECT tunnel through `proxy` to host:port. `proxyTls` is used when the proxy itself
 * speaks https. Resolves with the raw socket to the target.
 */
export function openTunnel(
  proxy: URL,
  hostname: string,
  port: string | number,
  proxyTls: ConnectionOptions = {},
  timeoutMs = 30_000,
): Promise<Socket> {
  const target = `${hostname.includes(":") && !hostname.startsWith("[") ? `[${hostname}]` : hostname}:${port}`;
  const shown = redactProxy(proxy.origin);
  return new Promise<Socket>((resolve, reject) => {
    const headers: Record<string, string> = { host: target };
    if (proxy.username || proxy.password) {
      const cred = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
      headers["proxy-authorization"] = `Basic ${Buffer.from(cred).toString("base64")}`;
    }
    const options = {
      host: proxy.hostname.replace(/^\[|\]$/g, ""),
      port: proxy.port || defaultPort(proxy.protocol),
      method: "CONNECT",
      path: target,
      headers,
      agent: false as const,
      timeout: timeoutMs,
    };
    const req =
      proxy.protocol === "https:" ? httpsRequest({ ...options, ...proxyTls }) : httpRequest(options);
    req.once("connect", (res: IncomingMessage, socket: Socket, head: Buffer) => {
      const status = res.statusCode ?? 0;
      if (status === 200) {
        socket.setTimeout(0);
        if (head.length > 0) socket.unshift(head);
        resolve(socket);
        return;
      }
      socket.destroy();
      // 407 is the standard answer; some proxies (tinyproxy 1.11) answer a CONNECT with 401.
      if (status === 407 || status === 401) {
        const given = proxy.username ? "refused the credentials in the proxy URL" : "requires credentials";
        reject(
          new ProxyError(
            `proxy ${shown} ${given} (HTTP ${status} ${res.statusMessage ?? ""}) for a tunnel to ${target}; put user:password into the proxy URL (HTTPS_PROXY=http://user:password@proxy:port)`,
            status,
            "PROXY_AUTH",
          ),
        );
        return;
      }
      reject(
        new ProxyError(
          `proxy ${shown} refused to open a tunnel (CONNECT) to ${target}: HTTP ${status} ${res.statusMessage ?? ""}`.trim() +
            `; the proxy may allow CONNECT only to some ports, or the host may need to be in NO_PROXY`,
          status,
          "PROXY_REFUSED",
        ),
      );
    });
    req.once("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.once("error", (err: NodeJS.ErrnoException) => {
      reject(
        new ProxyError(
          `cannot reach proxy ${shown} for ${target}: ${err.code ? `${err.code} ` : ""}${err.message}`,
          undefined,
          "PROXY_UNREACHABLE",
          { cause: err },
        ),
      );
    });
    req.end();
  });
}
