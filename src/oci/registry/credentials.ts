/**
 * Registry credentials from the files and helpers Docker and podman users already have, in order:
 * explicit options, REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, $DOCKER_CONFIG/config.json
 * (default ~/.docker/config.json). In each file: credHelpers for the host, then an `auths` entry, then
 * credsStore. Credentials are never written anywhere, nor printed.
 */
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { hostAliases } from "../../net/trust.js";

export interface Credential {
  username?: string;
  password?: string;
  /** OAuth2 refresh token ("identitytoken"), exchanged with a refresh_token grant. */
  identityToken?: string;
  /** A ready bearer token ("registrytoken"). */
  registryToken?: string;
}

export interface CredentialLookup {
  credential?: Credential;
  /** Where the credential came from (file or helper), when found. */
  source?: string;
  /** Every place looked at, in order, for messages. */
  searched: string[];
}

export interface CredentialOptions {
  authFile?: string;
  dockerConfigDir?: string;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
}

interface ConfigFile {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** The credential files to consult, explicit ones first, without duplicates. */
export function credentialFiles(opts: CredentialOptions): string[] {
  const env = opts.env ?? process.env;
  const files: string[] = [];
  if (opts.authFile) files.push(opts.authFile);
  if (opts.dockerConfigDir) files.push(join(opts.dockerConfigDir, "config.json"));
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) files.push(join(env.XDG_RUNTIME_DIR, "containers", "auth.json"));
  files.push(join(env.DOCKER_CONFIG || join(env.HOME || homedir(), ".docker"), "config.json"));
  return [...new Set(files)];
}

function keyHost(key: string): { host: string; path: string } {
  const noScheme = key.replace(/^[a-z]+:\/\//i, "");
  const slash = noScheme.indexOf("/");
  if (slash < 0) return { host: noScheme, path: "" };
  const path = noScheme.slice(slash + 1).replace(/\/+$/, "");
  // Docker Hub's legacy key is https://index.docker.io/v1/: "v1" is an API version, not a namespace.
  return { host: noScheme.slice(0, slash), path: path === "v1" ? "" : path };
}

/** The best `auths` key for host (and repository): podman-style namespaced keys win over the host key. */
function matchKey(keys: string[], host: string, repository?: string): string | undefined {
  const aliases = hostAliases(host);
  let best: string | undefined;
  let bestLen = -1;
  for (const k of keys) {
    const { host: h, path } = keyHost(k);
    if (!aliases.includes(h)) continue;
    if (path) {
      if (!repository || !(repository === path || repository.startsWith(`${path}/`))) continue;
    }
    if (path.length > bestLen) {
      best = k;
      bestLen = path.length;
    }
  }
  return best;
}

function fromEntry(e: AuthEntry): Credential | undefined {
  const c: Credential = {};
  if (e.auth) {
    const decoded = Buffer.from(e.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon > 0) {
      c.username = decoded.slice(0, colon);
      c.password = decoded.slice(colon + 1);
    }
  }
  if (e.username) c.username = e.username;
  if (e.password) c.password = e.password;
  if (e.identitytoken) c.identityToken = e.identitytoken;
  if (e.registrytoken) c.registryToken = e.registrytoken;
  return c.username || c.identityToken || c.registryToken ? c : undefined;
}

/** The server URL a credential helper is asked for: Docker Hub keeps its legacy address. */
function helperServer(host: string): string {
  return hostAliases(host).includes("docker.io") ? "https://index.docker.io/v1/" : host;
}

/** Run `docker-credential-<helper> get`; undefined when it has nothing for the server. */
export async function runCredentialHelper(
  helper: string,
  server: string,
  signal?: AbortSignal,
): Promise<Credential | undefined> {
  const bin = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ["get"], { stdio: ["pipe", "pipe", "pipe"], ...(signal ? { signal } : {}) });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      err += d;
    });
    child.on("error", (e) =>
      reject(new Error(`credential helper ${bin} could not run: ${e.message}`, { cause: e })),
    );
    child.on("close", (code) => {
      if (code !== 0) {
        const text = `${out}${err}`.trim();
        if (/not found|no credentials/i.test(text)) {
          resolve(undefined);
          return;
        }
        reject(new Error(`credential helper ${bin} failed (exit ${code}): ${text.slice(0, 200)}`));
        return;
      }
      try {
        const j = JSON.parse(out) as { Username?: string; Secret?: string };
        if (!j.Secret) {
          resolve(undefined);
          return;
        }
        // Docker's convention: the username "<token>" marks the secret as an identity token.
        if (j.Username === "<token>") resolve({ identityToken: j.Secret });
        else resolve({ username: j.Username ?? "", password: j.Secret });
      } catch (e) {
        reject(new Error(`credential helper ${bin} printed no JSON`, { cause: e }));
      }
    });
    child.stdin.on("error", () => {
      // a helper that exits before reading stdin is reported by its exit status
    });
    child.stdin.end(server);
  });
}

async function readConfig(file: string): Promise<ConfigFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as ConfigFile;
  } catch (err) {
    throw new Error(`credential file ${file} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** Look up credentials for a registry host (and optionally a repository, for namespaced auth.json keys). */
export async function lookupCredential(
  host: string,
  opts: CredentialOptions,
  repository?: string,
): Promise<CredentialLookup> {
  const searched: string[] = [];
  for (const file of credentialFiles(opts)) {
    searched.push(file);
    const cfg = await readConfig(file);
    if (!cfg) continue;
    const helperKey = matchKey(Object.keys(cfg.credHelpers ?? {}), host);
    if (helperKey && cfg.credHelpers?.[helperKey]) {
      const helper = cfg.credHelpers[helperKey];
      searched.push(`docker-credential-${helper}`);
      const c = await runHelperQuiet(helper, host, opts.signal, searched);
      if (c) return { credential: c, source: `docker-credential-${helper} (from ${file})`, searched };
    }
    const authKey = matchKey(Object.keys(cfg.auths ?? {}), host, repository);
    const entry = authKey ? cfg.auths?.[authKey] : undefined;
    const c = entry ? fromEntry(entry) : undefined;
    if (c) return { credential: c, source: `${file} (auths["${authKey}"])`, searched };
    if (cfg.credsStore) {
      searched.push(`docker-credential-${cfg.credsStore}`);
      const s = await runHelperQuiet(cfg.credsStore, host, opts.signal, searched);
      if (s) return { credential: s, source: `docker-credential-${cfg.credsStore} (from ${file})`, searched };
    }
  }
  return { searched };
}

async function runHelperQuiet(
  helper: string,
  host: string,
  signal: AbortSignal | undefined,
  searched: string[],
): Promise<Credential | undefined> {
  try {
    return await runCredentialHelper(helper, helperServer(host), signal);
  } catch (err) {
    if (signal?.aborted) throw err;
    // A configured helper that is missing on this machine must not block anonymous access;
    // the note surfaces in the message if the registry then refuses us.
    searched.push(`(${(err as Error).message})`);
    return undefined;
  }
}
