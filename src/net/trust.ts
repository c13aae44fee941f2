/**
 * TLS for every client of airgap (registries, git, profile downloads, HTTP and S3 artifact
 * repositories): which CAs are trusted, which client certificate is shown, which hosts are exempt
 * from verification or spoken to in plain HTTP.
 *
 * Trust sources, in the order they are read (each adds to the machine's trust, none replaces it):
 *   1. Node's bundled root CAs, plus NODE_EXTRA_CA_CERTS when set;
 *   2. CA files for every host (`--ca-file`);
 *   3. the host's `ca` in the config (`registries:`);
 *   4. `<certs dir>/<host>/*.crt` in /etc/docker/certs.d and /etc/containers/certs.d (as Docker and
 *      podman read them), with `client.cert`/`client.key` there as the client certificate unless
 *      the config names one.
 * Certificates are always verified with TLS 1.2 at least, unless the user names a host insecure.
 *
 * Parsing the root list costs tens of milliseconds, and Node parses it again for every connection
 * given `ca` options. So each distinct trust setting becomes one SecureContext, built on first use
 * and handed to every connection (undici `connect`, https.Agent, tls.connect) after that.
 *
 * Proxies (HTTPS_PROXY, HTTP_PROXY, NO_PROXY; see proxy.ts) are applied here too, by the same
 * connectors, so every client goes through them alike.
 */
import { readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { mkdtemp, writeFile } from "node:fs/promises";
import { type ClientRequestArgs, Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import {
  type ConnectionOptions,
  createSecureContext,
  rootCertificates,
  type SecureContext,
  connect as tlsConnect,
} from "node:tls";
import { Agent, buildConnector, Pool } from "undici";
import { ConfigError } from "../errors.js";
import { openTunnel, type ProxySettings, parseProxyUrl, proxyFor, proxyFromEnv } from "./proxy.js";

/** TLS settings of one host in the config (file paths). */
export interface HostTlsConfig {
  host: string;
  /** PEM file of an extra trusted CA. */
  ca?: string;
  /** PEM client certificate for mTLS. */
  cert?: string;
  /** PEM private key of the client certificate. */
  key?: string;
  /** Skip certificate verification for this host only. */
  insecure?: boolean;
  /** Speak http:// to this host only. */
  plainHTTP?: boolean;
  /** URL path a registry's API lives under, before `/v2/` (no trailing slash). */
  pathPrefix?: string;
}

export const DEFAULT_CERTS_DIRS = ["/etc/docker/certs.d", "/etc/containers/certs.d"];

export interface TrustOptions {
  /** Per-host settings. */
  hosts?: HostTlsConfig[];
  /** Extra trusted CA files for every host. */
  caFiles?: string[];
  /** Folders of `<host[:port]>/` sub-folders; default /etc/docker/certs.d, /etc/containers/certs.d. */
  certsDirs?: string[];
  /** Skip verification for every host (a client the user named insecure as a whole). */
  insecure?: boolean;
  /** Proxies; default: the environment's HTTPS_PROXY, HTTP_PROXY, NO_PROXY at construction. */
  proxy?: ProxySettings;
}

/** What was decided for one host. */
export interface HostTrust {
  host: string;
  plainHTTP: boolean;
  insecure: boolean;
  /** URL path a registry's API lives under, before `/v2/`; "" at the root. */
  pathPrefix: string;
  /** Extra CA PEMs (beyond the machine's trust); empty when none. */
  extraCAs: string[];
  cert?: string;
  key?: string;
  /** Where the settings came from, for messages. */
  sources: string[];
  /** Files behind the settings, for child processes (git). */
  files: { cas: string[]; cert?: string; key?: string };
}

/** Options for tls.connect / undici `connect` / https.Agent: the shared context and the verification switch. */
export interface ConnectTls {
  secureContext: SecureContext;
  rejectUnauthorized: boolean;
}

/** How many SecureContexts the trust module built in this process (each parses the whole CA list). */
export const trustStats = { secureContexts: 0 };

/** Hosts that are the same registry under different names (Docker Hub). */
export function hostAliases(host: string): string[] {
  const hub = ["docker.io", "index.docker.io", "registry-1.docker.io"];
  if (hub.includes(host)) return hub;
  return [host];
}

function normalizeHostKey(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, "").replace(/\/.*$/, "");
}

export function findHostConfig(host: string, hosts: HostTlsConfig[] | undefined): HostTlsConfig | undefined {
  if (!hosts) return undefined;
  const names = hostAliases(host);
  return hosts.find((h) => names.includes(normalizeHostKey(h.host)));
}

function readPem(path: string, what: string, host: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    const of = host === "*" ? "" : ` for ${host}`;
    throw new ConfigError(`cannot read the ${what}${of}: ${path}: ${(err as Error).message}`, undefined, {
      cause: err,
    });
  }
}

/** CAs that Node adds to its roots from NODE_EXTRA_CA_CERTS; kept when we pass our own list. */
function nodeExtraCAs(): string[] {
  const file = process.env.NODE_EXTRA_CA_CERTS;
  if (!file) return [];
  try {
    return [readFileSync(file, "utf8")];
  } catch {
    // Node itself ignores an unreadable NODE_EXTRA_CA_CERTS with a warning
    return [];
  }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Read the settings of one host from the config, the CA files and the certs.d folders. */
export function loadHostTrust(host: string, opts: TrustOptions): HostTrust {
  const cfg = findHostConfig(host, opts.hosts);
  const sources: string[] = [];
  const extraCAs: string[] = [];
  const files: HostTrust["files"] = { cas: [] };
  let cert: string | undefined;
  let key: string | undefined;
  const addCa = (file: string, label: string) => {
    extraCAs.push(readPem(file, "CA file", host));
    files.cas.push(file);
    sources.push(`${label} ${file}`);
  };
  const setCert = (certFile: string, keyFile: string) => {
    cert = readPem(certFile, "client certificate", host);
    key = readPem(keyFile, "client key", host);
    files.cert = certFile;
    files.key = keyFile;
    sources.push(`client certificate ${certFile}`);
  };

  for (const f of opts.caFiles ?? []) addCa(f, "CA file");
  if (cfg?.ca) addCa(cfg.ca, "CA");
  if (cfg?.cert || cfg?.key) {
    if (!cfg.cert || !cfg.key) throw new ConfigError(`${host}: a client certificate needs both cert and key`);
    setCert(cfg.cert, cfg.key);
  }
  for (const base of opts.certsDirs ?? DEFAULT_CERTS_DIRS) {
    for (const name of hostAliases(host)) {
      const dir = join(base, name);
      if (!isDir(dir)) continue;
      let entries: string[];
      try {
        entries = readdirSync(dir).sort();
      } catch {
        continue;
      }
      for (const e of entries) {
        if (e.endsWith(".crt")) addCa(join(dir, e), "CA");
        else if (e.endsWith(".cert") && !cert) {
          const keyFile = `${e.slice(0, -".cert".length)}.key`;
          if (!entries.includes(keyFile))
            throw new ConfigError(`${host}: ${join(dir, e)} has no matching ${keyFile}`);
          setCert(join(dir, e), join(dir, keyFile));
        }
      }
    }
  }

  const out: HostTrust = {
    host,
    plainHTTP: cfg?.plainHTTP === true,
    insecure: opts.insecure === true || cfg?.insecure === true,
    pathPrefix: cfg?.pathPrefix ?? "",
    extraCAs,
    sources,
    files,
  };
  if (cert) out.cert = cert;
  if (key) out.key = key;
  return out;
}

/**
 * A SecureContext trusting the machine's roots (with NODE_EXTRA_CA_CERTS) plus `extraCAs`. Given
 * `ca`, Node replaces its whole store, so the roots must come along as PEM text and are parsed
 * again (~20 ms, every context of every run). Adding the extra CAs to a context built on the
 * default store copies the roots already parsed instead. That method belongs to Node's context
 * handle (createSecureContext itself uses it for `ca`); where it is missing, the PEM list is used.
 */
function withExtraCAs(o: Parameters<typeof createSecureContext>[0], extraCAs: string[]): SecureContext {
  if (extraCAs.length === 0) return createSecureContext(o);
  const ctx = createSecureContext(o);
  const handle = (ctx as { context?: { addCACert?: unknown } }).context;
  if (handle && typeof handle.addCACert === "function") {
    // Node adds NODE_EXTRA_CA_CERTS to its shared store only, not to the copy a context gets.
    for (const pem of [...nodeExtraCAs(), ...extraCAs])
      (handle.addCACert as (pem: string) => void).call(handle, pem);
    return ctx;
  }
  return createSecureContext({ ...o, ca: [...rootCertificates, ...nodeExtraCAs(), ...extraCAs] });
}

/** The TLS side of one run: settings and SecureContexts per host, built once each. */
export class Trust {
  private readonly hosts = new Map<string, HostTrust>();
  /** By the content they were built from: hosts with the same trust share one context. */
  private readonly contexts = new Map<string, SecureContext>();
  private dispatcherCache: Agent | undefined;
  private readonly nodeAgentCache = new Map<string, { httpAgent: HttpAgent; httpsAgent: HttpsAgent }>();
  private readonly caBundles = new Map<string, Promise<string>>();

  /** Reads the CA files for every host at once, so an unreadable one is a config error before any request. */
  readonly proxy: ProxySettings;
  private readonly connectors = new Map<string, buildConnector.connector>();

  constructor(readonly options: TrustOptions = {}) {
    this.hosts.set("*", loadHostTrust("*", { ...options, hosts: [], certsDirs: [] }));
    this.proxy = options.proxy ?? proxyFromEnv();
    // A malformed proxy URL is a config error now, not a network error on the first request.
    for (const p of [this.proxy.httpProxy, this.proxy.httpsProxy]) if (p) parseProxyUrl(p);
  }

  /** The proxy for a target, undefined when it is reached directly. */
  proxyFor(protocol: string, hostname: string, port?: string | number): URL | undefined {
    return proxyFor(this.proxy, protocol, hostname, port);
  }

  /** A CONNECT tunnel to host:port through `proxy` (TLS to an https proxy with that proxy's trust). */
  tunnel(proxy: URL, hostname: string, port: string | number): Promise<Socket> {
    const proxyTls: ConnectionOptions = proxy.protocol === "https:" ? this.connectOptions(proxy.host) : {};
    return openTunnel(proxy, hostname, port, proxyTls);
  }

  /**
   * The undici connector for connections to `host`: through the proxy when one applies, TLS with
   * the host's SecureContext (built on the first https connection, so a plain-HTTP host needs none).
   */
  connector(host: string): buildConnector.connector {
    let c = this.connectors.get(host);
    if (c) return c;
    let secure: buildConnector.connector | undefined;
    const plain = buildConnector({});
    const endpointFor = (protocol: string): buildConnector.connector => {
      if (protocol !== "https:") return plain;
      secure ??= buildConnector({ ...this.connectOptions(host) });
      return secure;
    };
    c = (opts, callback) => {
      let endpoint: buildConnector.connector;
      try {
        endpoint = endpointFor(opts.protocol);
      } catch (err) {
        callback(err as Error, null);
        return;
      }
      const proxy = this.proxyFor(opts.protocol, opts.hostname, opts.port);
      if (!proxy) {
        endpoint(opts, callback);
        return;
      }
      const port = opts.port || (opts.protocol === "https:" ? "443" : "80");
      this.tunnel(proxy, opts.hostname, port).then(
        (socket) => {
          if (opts.protocol !== "https:") callback(null, socket);
          else endpoint({ ...opts, httpSocket: socket }, callback);
        },
        (err: Error) => callback(err, null),
      );
    };
    this.connectors.set(host, c);
    return c;
  }

  /** The settings of `host` (host[:port]); read once. Throws ConfigError for unreadable files. */
  host(host: string): HostTrust {
    let t = this.hosts.get(host);
    if (!t) {
      t = loadHostTrust(host, this.options);
      this.hosts.set(host, t);
    }
    return t;
  }

  /** The SecureContext for `host`: TLS 1.2 minimum, the machine's roots plus the extra CAs, the client certificate. */
  secureContext(host: string): SecureContext {
    const t = this.host(host);
    const key = JSON.stringify([t.extraCAs, t.cert ?? "", t.key ?? ""]);
    let ctx = this.contexts.get(key);
    if (!ctx) {
      const o: Parameters<typeof createSecureContext>[0] = { minVersion: "TLSv1.2" };
      if (t.cert && t.key) {
        o.cert = t.cert;
        o.key = t.key;
      }
      ctx = withExtraCAs(o, t.extraCAs);
      trustStats.secureContexts++;
      this.contexts.set(key, ctx);
    }
    return ctx;
  }

  /** Options for a TLS connection to `host`. */
  connectOptions(host: string): ConnectTls {
    return { secureContext: this.secureContext(host), rejectUnauthorized: !this.host(host).insecure };
  }

  /**
   * One undici dispatcher for any number of hosts: a keep-alive pool per origin, each connecting
   * with that host's trust.
   */
  dispatcher(): Agent {
    this.dispatcherCache ??= new Agent({
      factory: (origin, opts) =>
        new Pool(origin, { ...opts, connect: this.connector(new URL(String(origin)).host) }),
    });
    return this.dispatcherCache;
  }

  /**
   * Keep-alive node:http(s) agents for `host` (clients built on node:https, such as the AWS SDK),
   * with the host's SecureContext and the proxy.
   */
  nodeAgents(host: string): { httpAgent: HttpAgent; httpsAgent: HttpsAgent } {
    let a = this.nodeAgentCache.get(host);
    if (!a) {
      const tunnelled = (protocol: string, options: ClientRequestArgs, cb: SocketCallback): boolean => {
        const target = options.hostname || options.host || host;
        const port = options.port ?? (protocol === "https:" ? 443 : 80);
        const proxy = this.proxyFor(protocol, target, port);
        if (!proxy) return false;
        this.tunnel(proxy, target, port).then(
          (socket) => {
            if (protocol !== "https:") return cb(null, socket);
            const tlsSocket = tlsConnect({ ...(options as ConnectionOptions), socket });
            tlsSocket.once("secureConnect", () => cb(null, tlsSocket));
            tlsSocket.once("error", (err) => cb(err, tlsSocket));
          },
          (err: Error) => cb(err, undefined as never),
        );
        return true;
      };
      class ProxiedHttpsAgent extends HttpsAgent {
        override createConnection(options: ClientRequestArgs, cb?: SocketCallback) {
          if (cb && tunnelled("https:", options, cb)) return undefined;
          return super.createConnection(options as never, cb as never);
        }
      }
      class ProxiedHttpAgent extends HttpAgent {
        override createConnection(options: ClientRequestArgs, cb?: SocketCallback) {
          if (cb && tunnelled("http:", options, cb)) return undefined;
          return super.createConnection(options as never, cb as never);
        }
      }
      a = {
        httpAgent: new ProxiedHttpAgent({ keepAlive: true }),
        httpsAgent: new ProxiedHttpsAgent({ keepAlive: true, ...this.connectOptions(host) }),
      };
      this.nodeAgentCache.set(host, a);
    }
    return a;
  }

  /**
   * Environment for a child `git` that talks to `host` (or to any host when omitted). git reads one
   * CA file that replaces its trust, so the roots and the extra CAs are written into one bundle.
   */
  async gitEnv(host?: string): Promise<Record<string, string>> {
    // Without a host only what holds for every host counts: the CA files and the global insecure switch.
    const t = this.host(host ?? "*");
    const env: Record<string, string> = {};
    if (t.extraCAs.length > 0) env.GIT_SSL_CAINFO = await this.caBundleFile(t);
    if (t.files.cert && t.files.key) {
      env.GIT_SSL_CERT = t.files.cert;
      env.GIT_SSL_KEY = t.files.key;
    }
    if (t.insecure) env.GIT_SSL_NO_VERIFY = "true";
    // git (libcurl) reads only the lower-case http_proxy: hand it what this trust uses.
    if (this.proxy.httpProxy) env.http_proxy = this.proxy.httpProxy;
    if (this.proxy.httpsProxy) env.https_proxy = this.proxy.httpsProxy;
    if (this.proxy.noProxy) env.no_proxy = this.proxy.noProxy;
    return env;
  }

  /** One bundle file per distinct CA set, removed when the process exits. */
  private caBundleFile(t: HostTrust): Promise<string> {
    const key = JSON.stringify(t.extraCAs);
    let p = this.caBundles.get(key);
    if (!p) {
      p = (async () => {
        const dir = await mkdtemp(join(tmpdir(), "airgap-ca-"));
        process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
        const file = join(dir, "ca-bundle.pem");
        await writeFile(file, `${[...rootCertificates, ...nodeExtraCAs(), ...t.extraCAs].join("\n")}\n`, {
          mode: 0o600,
        });
        return file;
      })();
      this.caBundles.set(key, p);
    }
    return p;
  }

  /** A sentence on where trust for a host was looked for, for certificate errors. */
  hint(host: string): string {
    const t = this.host(host);
    const dirs = (this.options.certsDirs ?? DEFAULT_CERTS_DIRS).map((d) => join(d, host));
    const used = t.sources.length ? `Used: ${t.sources.join("; ")}.` : "No extra CA was configured for it.";
    return dirs.length ? `${used} Looked in: ${dirs.join(", ")}.` : used;
  }

  /** Close the connections this trust's agents keep alive. */
  async close(): Promise<void> {
    const d = this.dispatcherCache;
    this.dispatcherCache = undefined;
    for (const a of this.nodeAgentCache.values()) {
      a.httpAgent.destroy();
      a.httpsAgent.destroy();
    }
    this.nodeAgentCache.clear();
    await d?.close().catch(() => undefined);
  }
}

type SocketCallback = (err: Error | null, stream: Duplex) => void;

const shared = new Map<string, Trust>();

/**
 * The Trust for these options, one per distinct set in the process: clients configured alike
 * (the registry, git and profile downloads of one `create`) share SecureContexts and connections.
 */
export function trustFor(opts: TrustOptions): Trust {
  const proxy = opts.proxy ?? proxyFromEnv();
  const key = JSON.stringify([
    opts.hosts ?? [],
    opts.caFiles ?? [],
    opts.certsDirs ?? null,
    opts.insecure === true,
    proxy,
  ]);
  let t = shared.get(key);
  if (!t) {
    t = new Trust({ ...opts, proxy });
    shared.set(key, t);
  }
  return t;
}
