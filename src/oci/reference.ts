/**
 * Image references as Docker and the OCI distribution spec write them, normalized the way the Docker CLI
 * does: `busybox` → `docker.io/library/busybox:latest`.
 */
import { UsageError } from "../errors.js";

export interface Reference {
  /** Registry host with optional port, e.g. `docker.io`, `127.0.0.1:5000`, `[::1]:5000`. */
  registry: string;
  /** Repository path inside the registry, e.g. `library/busybox`. */
  repository: string;
  tag?: string;
  digest?: string;
}

export const DEFAULT_REGISTRY = "docker.io";
const LEGACY_REGISTRY = "index.docker.io";
const OFFICIAL_PREFIX = "library/";
const DEFAULT_TAG = "latest";
const NAME_MAX = 255;

// Grammar of distribution/reference: lowercase path components joined by `.`, `_`, `__` or dashes.
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const SHA256 = /^sha256:[a-f0-9]{64}$/;
const HEX64 = /^[a-f0-9]{64}$/;

function fail(input: string, what: string): never {
  throw new UsageError(`invalid image reference "${input}": ${what}`);
}

function validHost(input: string, host: string): void {
  let name = host;
  let port: string | undefined;
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    if (end < 0) fail(input, `registry host "${host}" has an unclosed IPv6 bracket`);
    const ip = host.slice(1, end);
    if (!/^[0-9a-fA-F:.]+$/.test(ip) || !ip.includes(":"))
      fail(input, `registry host "${host}" is not an IPv6 address`);
    const rest = host.slice(end + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) fail(input, `registry host "${host}" has text after the IPv6 address`);
      port = rest.slice(1);
    }
    name = "";
  } else {
    const colon = host.indexOf(":");
    if (colon >= 0) {
      name = host.slice(0, colon);
      port = host.slice(colon + 1);
    }
  }
  if (port !== undefined && !/^[0-9]+$/.test(port)) fail(input, `registry port "${port}" is not a number`);
  if (port !== undefined && Number(port) > 65535) fail(input, `registry port ${port} is out of range`);
  if (name !== "" || !host.startsWith("[")) {
    if (name === "") fail(input, "the registry host is empty");
    for (const part of name.split(".")) {
      if (!DOMAIN_COMPONENT.test(part)) fail(input, `registry host "${name}" is not a valid host name`);
    }
  }
}

/**
 * Parse and normalize an image reference. The first path component is a registry host when it contains
 * `.` or `:`, is `localhost`, or has uppercase letters (as Docker decides); otherwise the registry is
 * docker.io, where one-component names gain `library/`. `latest` is added only when neither a tag nor a
 * digest is given.
 */
export function parseReference(s: string): Reference {
  const input = s;
  // Values from parsed YAML/JSON may be anything; describing one must not call its own toString.
  if (typeof s !== "string")
    fail(`(a value of type ${Array.isArray(s) ? "array" : typeof s})`, "it is not text");
  if (s.trim() === "") fail(s, "it is empty");
  if (s !== s.trim()) fail(input, "it has leading or trailing spaces");
  if (/\s/.test(s)) fail(input, "it contains whitespace");
  if (s.includes("://")) fail(input, "a reference has no URL scheme (write host/repository:tag)");

  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) fail(input, `digest "${digest}" is not algorithm:hex`);
    if (digest.startsWith("sha256:") && !SHA256.test(digest)) {
      fail(input, `digest "${digest}" is not sha256: followed by 64 lowercase hex characters`);
    }
  }

  // A tag follows the last colon that comes after the last slash; an earlier colon is a port.
  let tag: string | undefined;
  const slash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) {
      fail(
        input,
        `tag "${tag}" must be 1-128 characters of letters, digits, "_", "." or "-", not starting with "." or "-"`,
      );
    }
  }

  let registry: string;
  let repository: string;
  const first = rest.indexOf("/");
  const head = first >= 0 ? rest.slice(0, first) : "";
  if (
    first < 0 ||
    (!/[.:]/.test(head) && head !== "localhost" && head.toLowerCase() === head && !head.startsWith("["))
  ) {
    registry = DEFAULT_REGISTRY;
    repository = rest;
  } else {
    registry = head;
    repository = rest.slice(first + 1);
    validHost(input, registry);
  }
  if (registry === LEGACY_REGISTRY) registry = DEFAULT_REGISTRY;
  if (repository === "") fail(input, "the repository name is empty");
  if (registry === DEFAULT_REGISTRY && !repository.includes("/")) repository = OFFICIAL_PREFIX + repository;

  if (repository.toLowerCase() !== repository) {
    fail(input, `repository name "${repository}" must be lowercase`);
  }
  for (const part of repository.split("/")) {
    if (part === "") fail(input, `repository name "${repository}" has an empty path component`);
    if (!PATH_COMPONENT.test(part)) {
      fail(
        input,
        `repository path component "${part}" may contain only a-z, 0-9 and single separators ".", "_", "__" or "-" between them`,
      );
    }
  }
  if (
    registry === DEFAULT_REGISTRY &&
    HEX64.test(repository.slice(OFFICIAL_PREFIX.length)) &&
    !tag &&
    !digest
  ) {
    fail(input, "a 64-character hexadecimal string is an image ID, not a repository name");
  }
  if (registry.length + 1 + repository.length > NAME_MAX) {
    fail(input, `the name is longer than ${NAME_MAX} characters`);
  }

  const ref: Reference = { registry, repository };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  if (tag === undefined && digest === undefined) ref.tag = DEFAULT_TAG;
  return ref;
}

/** `registry/repository[:tag][@digest]`, always with the registry. */
export function formatReference(r: Reference): string {
  let out = repositoryOf(r);
  if (r.tag) out += `:${r.tag}`;
  if (r.digest) out += `@${r.digest}`;
  return out;
}

/** `registry/repository`, e.g. `docker.io/library/busybox`. */
export function repositoryOf(r: Reference): string {
  return `${r.registry}/${r.repository}`;
}

/** The tag or digest to ask a registry for: the digest when both are given (it pins the content). */
export function refOf(r: Reference): string {
  return r.digest ?? r.tag ?? DEFAULT_TAG;
}

/** Shortest form a person would type, as `docker` prints it: `busybox:1.37`, `ghcr.io/org/x@sha256:…`. */
export function familiarReference(r: Reference): string {
  let name = repositoryOf(r);
  if (r.registry === DEFAULT_REGISTRY) {
    name = r.repository.startsWith(OFFICIAL_PREFIX)
      ? r.repository.slice(OFFICIAL_PREFIX.length)
      : r.repository;
  }
  if (r.tag) name += `:${r.tag}`;
  if (r.digest) name += `@${r.digest}`;
  return name;
}
