/**
 * TLS settings of one registry host, gathered once from the per-host config, global CA files and the
 * certs.d folders that Docker and podman use. Certificates are always verified unless the host is
 * named insecure; extra CAs add to the machine's trust, they never replace it.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { rootCertificates } from "node:tls";
import { ConfigError } from "../../errors.js";

export interface RegistryHostConfig {
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
}

export const DEFAULT_CERTS_DIRS = ["/etc/docker/certs.d", "/etc/containers/certs.d"];

export interface HostTls {
  host: string;
  plainHTTP: boolean;
  insecure: boolean;
  /** Extra CA PEMs (beyond the machine's trust); empty when none. */
  extraCAs: string[];
  cert?: string;
  key?: string;
  /** Where the settings came from, for messages. */
  sources: string[];
  /** Options for tls.connect (undici `connect`). */
  connect: {
    minVersion: "TLSv1.2";
    rejectUnauthorized: boolean;
    ca?: string[];
    cert?: string;
    key?: string;
  };
}

/** Hosts that are the same registry under different names (Docker Hub). */
export function hostAliases(host: string): string[] {
  const hub = ["docker.io", "index.docker.io", "registry-1.docker.io"];
  if (hub.includes(host)) return hub;
  return [host];
}

function normalizeHostKey(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, "").replace(/\/.*$/, "");
}

export function findHostConfig(
  host: string,
  hosts: RegistryHostConfig[] | undefined,
): RegistryHostConfig | undefined {
  if (!hosts) return undefined;
  const names = hostAliases(host);
  return hosts.find((h) => names.includes(normalizeHostKey(h.host)));
}

function readPem(path: string, what: string, host: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(
      `cannot read the ${what} for registry ${host}: ${path}: ${(err as Error).message}`,
      undefined,
      {
        cause: err,
      },
    );
  }
}

/** CAs that Node adds to its roots from NODE_EXTRA_CA_CERTS; kept when we pass our own list. */
function nodeExtraCAs(): string[] {
  const file = process.env.NODE_EXTRA_CA_CERTS;
  if (!file) return [];
  try {
    return [readFileSync(file, "utf8")];
  } catch {
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

export interface TlsOptions {
  hosts?: RegistryHostConfig[];
  caFiles?: string[];
  certsDirs?: string[];
}

export function loadHostTls(host: string, opts: TlsOptions): HostTls {
  const cfg = findHostConfig(host, opts.hosts);
  const sources: string[] = [];
  const extraCAs: string[] = [];
  let cert: string | undefined;
  let key: string | undefined;

  for (const f of opts.caFiles ?? []) {
    extraCAs.push(readPem(f, "CA file", host));
    sources.push(`CA file ${f}`);
  }
  if (cfg?.ca) {
    extraCAs.push(readPem(cfg.ca, "CA file", host));
    sources.push(`CA ${cfg.ca}`);
  }
  if (cfg?.cert || cfg?.key) {
    if (!cfg.cert || !cfg.key) {
      throw new ConfigError(`registry ${host}: a client certificate needs both cert and key`);
    }
    cert = readPem(cfg.cert, "client certificate", host);
    key = readPem(cfg.key, "client key", host);
    sources.push(`client certificate ${cfg.cert}`);
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
        if (e.endsWith(".crt")) {
          extraCAs.push(readPem(join(dir, e), "CA file", host));
          sources.push(`CA ${join(dir, e)}`);
        } else if (e.endsWith(".cert") && !cert) {
          const keyFile = `${e.slice(0, -".cert".length)}.key`;
          if (!entries.includes(keyFile)) {
            throw new ConfigError(`registry ${host}: ${join(dir, e)} has no matching ${keyFile}`);
          }
          cert = readPem(join(dir, e), "client certificate", host);
          key = readPem(join(dir, keyFile), "client key", host);
          sources.push(`client certificate ${join(dir, e)}`);
        }
      }
    }
  }

  const insecure = cfg?.insecure === true;
  const connect: HostTls["connect"] = { minVersion: "TLSv1.2", rejectUnauthorized: !insecure };
  // Node replaces its whole trust store when `ca` is given, so the roots come along explicitly.
  if (extraCAs.length > 0) connect.ca = [...rootCertificates, ...nodeExtraCAs(), ...extraCAs];
  if (cert && key) {
    connect.cert = cert;
    connect.key = key;
  }
  const out: HostTls = { host, plainHTTP: cfg?.plainHTTP === true, insecure, extraCAs, sources, connect };
  if (cert) out.cert = cert;
  if (key) out.key = key;
  return out;
}

/** A sentence on where trust for a host was looked for, for certificate errors. */
export function trustHint(t: HostTls, opts: TlsOptions): string {
  const dirs = (opts.certsDirs ?? DEFAULT_CERTS_DIRS).map((d) => join(d, t.host));
  const used = t.sources.length ? `Used: ${t.sources.join("; ")}.` : "No extra CA was configured for it.";
  return dirs.length ? `${used} Looked in: ${dirs.join(", ")}.` : used;
}
