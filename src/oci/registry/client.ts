/**
 * The OCI registry client: one per run. It owns one undici agent per host (TLS from the run's Trust,
 * one SecureContext per trust setting), the authentication state per host, the manifest cache and
 * the counters. Repository-scoped stores on top of it live in store/registry.ts.
 */
import { type HostTlsConfig, Trust } from "../../net/trust.js";
import { AgentPool, RegistryHost } from "./host.js";
import { DEFAULT_RETRY } from "./retry.js";

export type RegistryHostConfig = HostTlsConfig;

export interface RegistryClientOptions {
  /** TLS for every host; when given, `hosts`, `caFiles` and `certsDirs` only serve to build it if absent. */
  trust?: Trust;
  /** Per-host TLS settings (file paths). */
  hosts?: RegistryHostConfig[];
  /** Extra trusted CA files for every host. */
  caFiles?: string[];
  /** Folders of `<host[:port]>/` sub-folders with `*.crt` CAs and `client.cert`/`client.key`; default /etc/docker/certs.d, /etc/containers/certs.d. */
  certsDirs?: string[];
  /** A Docker config folder (its config.json) consulted before the environment's credential files. */
  dockerConfigDir?: string;
  /** A containers auth.json or Docker config.json consulted first. */
  authFile?: string;
  userAgent?: string;
  /** Further attempts of a failed replayable request (default 4). */
  retries?: number;
  /** Blobs larger than this many bytes are uploaded in chunks (default 64 MiB). */
  chunkThreshold?: number;
  /** Size of one chunk of a chunked upload (default 16 MiB). */
  chunkSize?: number;
  /** Aborts every request of this client. */
  signal?: AbortSignal;
  /** Base delay of the retry backoff in ms (default 200). */
  retryBaseDelayMs?: number;
  /**
   * How long a request may wait for response headers, and a body may go without a byte, before the
   * attempt counts as failed and is retried (ms; default AIRGAP_REGISTRY_TIMEOUT_MS or 30 s).
   */
  timeoutMs?: number;
}

export interface RegistryStats {
  blobsUploaded: number;
  blobsMounted: number;
  bytesUploaded: number;
  requests: number;
  /** Attempts repeated after a failure (status, connection, timeout, broken body). */
  retries: number;
  /** Broken blob downloads continued from their last byte with a Range request. */
  resumes: number;
  /** Broken blob downloads started over because the server ignored Range. */
  restarts: number;
}

export const DEFAULT_TIMEOUT_MS = 30_000;

/** The request timeout of a run: the option, else AIRGAP_REGISTRY_TIMEOUT_MS, else 30 s. */
export function requestTimeoutMs(option: number | undefined, env = process.env): number {
  if (option !== undefined && option > 0) return option;
  const fromEnv = Number(env.AIRGAP_REGISTRY_TIMEOUT_MS);
  return Number.isFinite(fromEnv) && fromEnv > 0 ? fromEnv : DEFAULT_TIMEOUT_MS;
}

export const DEFAULT_CHUNK_THRESHOLD = 64 * 1024 * 1024;
export const DEFAULT_CHUNK_SIZE = 16 * 1024 * 1024;

/** Recently seen manifest bytes by digest, so tagging needs no second download. */
export class ManifestCache {
  private readonly map = new Map<string, Buffer>();
  private bytes = 0;
  constructor(private readonly maxBytes = 32 * 1024 * 1024) {}
  get(digest: string): Buffer | undefined {
    return this.map.get(digest);
  }
  set(digest: string, b: Buffer): void {
    if (this.map.has(digest)) return;
    this.map.set(digest, b);
    this.bytes += b.length;
    for (const [k, v] of this.map) {
      if (this.bytes <= this.maxBytes) break;
      this.map.delete(k);
      this.bytes -= v.length;
    }
  }
}

export class RegistryClient {
  readonly stats: RegistryStats = {
    blobsUploaded: 0,
    blobsMounted: 0,
    bytesUploaded: 0,
    requests: 0,
    retries: 0,
    resumes: 0,
    restarts: 0,
  };
  readonly trust: Trust;
  private readonly agents: AgentPool;
  private readonly hosts = new Map<string, RegistryHost>();
  /** Manifest bytes seen by any repository of this client. */
  readonly manifests = new ManifestCache();
  readonly chunkThreshold: number;
  readonly chunkSize: number;

  constructor(private readonly opts: RegistryClientOptions = {}) {
    this.trust =
      opts.trust ??
      new Trust({
        ...(opts.hosts ? { hosts: opts.hosts } : {}),
        ...(opts.caFiles ? { caFiles: opts.caFiles } : {}),
        ...(opts.certsDirs ? { certsDirs: opts.certsDirs } : {}),
      });
    this.agents = new AgentPool(this.trust, requestTimeoutMs(opts.timeoutMs));
    this.chunkThreshold = opts.chunkThreshold ?? DEFAULT_CHUNK_THRESHOLD;
    this.chunkSize = Math.max(1, opts.chunkSize ?? DEFAULT_CHUNK_SIZE);
  }

  /** The connection and auth state of one registry (shared by its repositories). */
  host(registry: string): RegistryHost {
    const key = registry === "index.docker.io" ? "docker.io" : registry;
    let h = this.hosts.get(key);
    if (!h) {
      h = new RegistryHost(
        key,
        this.agents,
        {
          ...(this.opts.authFile ? { authFile: this.opts.authFile } : {}),
          ...(this.opts.dockerConfigDir ? { dockerConfigDir: this.opts.dockerConfigDir } : {}),
          ...(this.opts.signal ? { signal: this.opts.signal } : {}),
          userAgent: this.opts.userAgent ?? "cinc-airgap",
          retry: {
            ...DEFAULT_RETRY,
            retries: this.opts.retries ?? DEFAULT_RETRY.retries,
            baseDelayMs: this.opts.retryBaseDelayMs ?? DEFAULT_RETRY.baseDelayMs,
          },
          stats: this.stats,
        },
        this.opts.signal,
      );
      this.hosts.set(key, h);
    }
    return h;
  }

  /** Close every connection; stores of this client must not be used afterwards. */
  async close(): Promise<void> {
    await this.agents.close();
  }
}
