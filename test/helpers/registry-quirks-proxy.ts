/**
 * A small HTTP server in front of the real (plain, anonymous) test registry that behaves the way
 * registries sites actually run do, where they depart from the OCI distribution spec. Each
 * behaviour is one switch of `Quirks`; `PROFILES` bundles them per product, each with the public
 * report (vendor documentation or tracker) it reproduces. Everything a quirk does not touch is
 * forwarded unchanged, so content lands in (and is read back from) the real registry.
 *
 * Point the code under test at `proxy.host` as if it were the registry (plainHTTP for that host).
 * `proxy.counts` says what the quirks did, so a test can assert they really happened.
 */
import { randomBytes } from "node:crypto";
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface Quirks {
  /**
   * Harbor: the first path component is a project, which must exist; a push into a missing project
   * answers 401 UNAUTHORIZED ("project … not found"), late and misleadingly.
   * goharbor/harbor#966, #890 (401 "authentication required"), goharbor/harbor-helm#849 (500),
   * goharbor/harbor#20544 ("you need to create a project first").
   */
  projects?: Set<string>;
  /**
   * Harbor's project API (`GET /api/v2.0/projects?project_name=`, `POST /api/v2.0/projects`), the
   * way an administrator (or a tool with the right) creates a project. Harbor REST API v2.0.
   */
  projectApi?: boolean;
  /** Who may create projects through that API (Basic credentials; Harbor's API takes them). */
  projectAdmin?: { user: string; password: string };
  /**
   * Harbor: a cross-repository mount from a repository the token cannot read (or that does not
   * exist) answers 401 instead of starting an upload with 202. goharbor/harbor#17097.
   */
  mountUnauthorized?: boolean;
  /** Harbor before 2.8: no OCI referrers API (404). goharbor/harbor#17928 (target 2.8.0). */
  noReferrersApi?: boolean;
  /**
   * Nexus Repository (and CNCF distribution itself): the single-POST monolithic upload
   * (`POST …/uploads/?digest=` with the blob as body) is not supported; the POST only opens a
   * session and the body is ignored. distribution/distribution#1170; sonatype/nexus-public#967 shows
   * the POST-then-PUT form Nexus does accept.
   */
  singlePostIgnored?: boolean;
  /**
   * Nexus Repository: Basic authentication, with an upper-case `BASIC` challenge, not Bearer tokens
   * (`forceBasicAuth` defaults to true). sonatype/nexus-public#921.
   */
  basicAuth?: { user: string; password: string };
  /**
   * Artifactory: a blob HEAD answers 200 for a blob the registry holds in another repository, while
   * GET (and the manifest PUT) in this repository do not find it: the client skips the upload and
   * the manifest PUT fails with MANIFEST_BLOB_UNKNOWN. gardener/cc-utils#1752,
   * opencontainers/distribution-spec#569, containerd/containerd#3556 (RTFACT-20170).
   */
  lyingBlobHead?: boolean;
  /**
   * GitLab: at most this many path components in a repository name (group/project plus two
   * levels); deeper names answer 401 insufficient_scope. GitLab container registry docs ("up to
   * three levels of image repository names"), via sameersbn/docker-gitlab#1252; Dokploy/dokploy#4293.
   */
  maxDepth?: number;
  /**
   * Quay: only allow-listed config media types / artifactTypes (FEATURE_GENERAL_OCI_SUPPORT,
   * ALLOWED_OCI_ARTIFACT_TYPES); others answer 400 MANIFEST_INVALID. oras-project/oras#738,
   * quay/quay#803, quay/quay#877 (Helm and cosign allowed by default), deckhouse/deckhouse#10672.
   */
  allowedConfigTypes?: Set<string>;
  /**
   * Quay pages tag lists by 50 whatever `n` asks (Link with `next_page=`): ivanilves/lstags#185,
   * deitch/docker_registry2#56, regclient/regclient#272. ACR pages by 100:
   * Azure/azure-powershell#16032, Azure/acr#389.
   */
  tagPageSize?: number;
  /**
   * ECR: repositories must exist before a push; anything else answers 404 NAME_UNKNOWN "The
   * repository with name '…' does not exist in the registry". plexsystems/sinker#55,
   * regclient/regclient#869, aws/containers-roadmap#853.
   */
  repositories?: Set<string>;
  /**
   * ECR: every chunk but the last must be at least this many bytes (5 MiB, the layer-part minimum
   * of ECR's UploadLayerPart); a chunk after a smaller one is refused. aws/containers-roadmap#2831
   * documents ECR's chunked-upload deviations.
   */
  minChunkBytes?: number;
  /** ECR: an intermediate PATCH answers 201, not 202. aws/containers-roadmap#2831. */
  patchAnswers201?: boolean;
  /**
   * Gitea: one PATCH per upload; a second answers 400 BLOB_UPLOAD_INVALID "Stream uploads after
   * first write are not allowed". dotnet/sdk-container-builds#471.
   */
  singlePatch?: boolean;
  /**
   * Zot without `compat: [docker2s2]`: Docker v2 schema 2 manifests and lists answer 400
   * MANIFEST_INVALID. project-zot/zot#724, #2234, jikig-ai/soleur#6205.
   */
  ociOnly?: boolean;
  /**
   * A manifest over this size answers 413 (the spec's floor is 4 MB that clients may rely on).
   * opencontainers/distribution-spec#293, #260; distribution/distribution#4636.
   */
  maxManifestBytes?: number;
  /**
   * Bearer token auth by this proxy's own token service, which honours only one `scope` per token
   * request: "first" grants the first scope and ignores the rest (goharbor/harbor#2411: "just one
   * is handled … the mount operation can not be handled"); "refuse" answers 400 to a request with
   * several. Either way a cross-repository mount lacks the pull right on its source.
   */
  oneScopePerToken?: "first" | "refuse";
  /**
   * Artifactory's repository-path access (reverse-proxy method "Repository Path", REPOPATHPREFIX):
   * the registry API lives under `/artifactory/api/docker/<repository key>/v2/`, a plain `/v2/`
   * answers 404, and Location/Link headers name absolute paths under the prefix. JFrog docs:
   * https://jfrog.com/help/r/jfrog-artifactory-documentation/docker-v1-repository-path-and-domain
   * ("the repository URL must be prefixed with api/docker": http://HOST:8081/artifactory/api/docker/<repository key>),
   * https://jfrog.com/help/r/jfrog-rest-apis/possible-values-for-dockerreverseproxymethod. The same
   * shape as any registry behind a reverse proxy at a sub-path.
   */
  pathPrefix?: string;
}

const MiB = 1024 * 1024;

export const PROFILE_NAMES = [
  "harbor",
  "nexus",
  "artifactory",
  "artifactory-path",
  "gitlab",
  "quay",
  "ecr",
  "acr",
  "gitea",
  "zot",
  "manifest-4mb",
  "one-scope-token",
] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

/** Where the `artifactory-path` profile serves the registry (a local Docker repository's key). */
export const ARTIFACTORY_PATH_PREFIX = "/artifactory/api/docker/docker-local";

/** Quay's default allow-list: images plus Helm and cosign (quay/quay#877). */
export const QUAY_DEFAULT_CONFIG_TYPES = [
  "application/vnd.oci.image.config.v1+json",
  "application/vnd.docker.container.image.v1+json",
  "application/vnd.cncf.helm.config.v1+json",
  "application/vnd.dev.cosign.simplesigning.v1+json",
];

/** The quirks of one product; the sets are fresh per call so a test can fill them in. */
export function profile(name: ProfileName): Quirks {
  switch (name) {
    case "harbor":
      return {
        projects: new Set(),
        projectApi: true,
        projectAdmin: { user: "harbor-admin", password: randomToken() },
        mountUnauthorized: true,
        noReferrersApi: true,
      };
    case "nexus":
      return { singlePostIgnored: true, basicAuth: { user: "nexus-user", password: randomToken() } };
    case "artifactory":
      return { lyingBlobHead: true };
    case "artifactory-path":
      return { lyingBlobHead: true, pathPrefix: ARTIFACTORY_PATH_PREFIX };
    case "gitlab":
      return { maxDepth: 4 };
    case "quay":
      return { allowedConfigTypes: new Set(QUAY_DEFAULT_CONFIG_TYPES), tagPageSize: 50 };
    case "ecr":
      return { repositories: new Set(), minChunkBytes: 5 * MiB, patchAnswers201: true };
    case "acr":
      return { tagPageSize: 100 };
    case "gitea":
      return { singlePatch: true };
    case "zot":
      return { ociOnly: true };
    case "manifest-4mb":
      return { maxManifestBytes: 4 * MiB };
    case "one-scope-token":
      return { oneScopePerToken: "refuse" };
  }
}

export interface QuirkCounts {
  requests: number;
  /** What the quirks did, by name: "mount-401", "lying-head", "second-patch-refused", … */
  applied: Record<string, number>;
  /** Requests that changed content upstream (POST/PUT/PATCH/DELETE forwarded). */
  writes: number;
  /** Token requests by how many scopes they named. */
  tokenScopes: number[];
}

const DOCKER_TYPES = new Set([
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
]);

interface Upload {
  patches: number;
  lastPatchBytes: number;
}

function randomToken(): string {
  return randomBytes(12).toString("hex");
}

function splitHost(hostPort: string): [string, number] {
  const i = hostPort.lastIndexOf(":");
  return [hostPort.slice(0, i), Number(hostPort.slice(i + 1))];
}

/** `/v2/<name>/<kind>/…` → name and kind (kind: manifests, blobs, uploads, tags, referrers). */
function routeOf(path: string): { name: string; kind: string; rest: string } | undefined {
  const m = /^\/v2\/(.+?)\/(manifests|blobs\/uploads|blobs|tags|referrers)(\/.*)?$/.exec(path);
  if (!m) return undefined;
  return { name: m[1]!, kind: m[2]!, rest: (m[3] ?? "").replace(/^\//, "") };
}

export class RegistryQuirksProxy {
  readonly counts: QuirkCounts = { requests: 0, applied: {}, writes: 0, tokenScopes: [] };
  private readonly sockets = new Set<Socket>();
  private readonly uploads = new Map<string, Upload>();
  /** Digests this registry holds somewhere (any repository): what a lying HEAD answers 200 for. */
  private readonly knownBlobs = new Set<string>();
  private readonly tokens = new Map<string, Set<string>>();
  private readonly server;
  host = "";

  constructor(
    private readonly upstream: string,
    public quirks: Quirks,
  ) {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.error(res, 502, "UNKNOWN", String(err));
        else res.destroy();
      });
    });
    this.server.on("connection", (s: Socket) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
  }

  static async start(upstream: string, quirks: Quirks): Promise<RegistryQuirksProxy> {
    const p = new RegistryQuirksProxy(upstream, quirks);
    await new Promise<void>((r) => p.server.listen(0, "127.0.0.1", () => r()));
    p.host = `127.0.0.1:${(p.server.address() as AddressInfo).port}`;
    return p;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }

  /**
   * Headers of an answer as the client sees them: under a path prefix, Location and Link name
   * absolute paths under the prefix (the registry behind knows nothing of it).
   */
  private outward(headers: IncomingMessage["headers"]): IncomingMessage["headers"] {
    const prefix = this.quirks.pathPrefix;
    if (!prefix) return headers;
    const out = { ...headers };
    const loc = out.location;
    if (typeof loc === "string") {
      const u = new URL(loc, `http://${this.host}`);
      if (u.pathname.startsWith("/v2/")) {
        out.location = `${prefix}${u.pathname}${u.search}`;
        this.note("location-prefixed");
      }
    }
    const link = out.link;
    if (typeof link === "string") out.link = link.replace(/<(?:https?:\/\/[^/>]+)?\/v2\//g, `<${prefix}/v2/`);
    return out;
  }

  private note(what: string): void {
    this.counts.applied[what] = (this.counts.applied[what] ?? 0) + 1;
  }

  private error(
    res: ServerResponse,
    status: number,
    code: string,
    message: string,
    headers: Record<string, string> = {},
  ): void {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify({ errors: [{ code, message }] }));
  }

  private challenge(scope?: string): Record<string, string> {
    const q = this.quirks;
    if (q.basicAuth) return { "www-authenticate": 'BASIC realm="Sonatype Nexus Repository Manager"' };
    const s = scope ? `,scope="${scope}"` : "";
    return { "www-authenticate": `Bearer realm="http://${this.host}/token",service="quirks"${s}` };
  }

  private async handle(req: IncomingMessage, res: ServerResponse) {
    this.counts.requests++;
    const q = this.quirks;
    const url = new URL(req.url ?? "/", `http://${this.host}`);
    const method = req.method ?? "GET";
    if (q.pathPrefix) {
      // the registry lives under the prefix only; everything below sees the path without it
      if (url.pathname === `${q.pathPrefix}/v2` || url.pathname.startsWith(`${q.pathPrefix}/v2/`)) {
        url.pathname = url.pathname.slice(q.pathPrefix.length);
        this.note("prefixed");
      } else if (url.pathname === "/v2" || url.pathname.startsWith("/v2/")) {
        req.resume();
        this.note("unprefixed-404");
        return this.error(
          res,
          404,
          "NOT_FOUND",
          `no registry at ${url.pathname}; it lives under ${q.pathPrefix}/v2/`,
        );
      }
    }

    if (url.pathname === "/token") return this.token(url, res);
    if (url.pathname === "/api/v2.0/ping" && this.quirks.projectApi) {
      req.resume();
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("Pong");
      return;
    }
    if (url.pathname.startsWith("/api/v2.0/projects")) return this.projectApi(req, url, res);

    if (!this.authorized(req, url, method)) {
      req.resume();
      const route = routeOf(url.pathname);
      const scope = route
        ? `repository:${route.name}:${method === "GET" || method === "HEAD" ? "pull" : "pull,push"}`
        : undefined;
      this.note("unauthorized");
      return this.error(res, 401, "UNAUTHORIZED", "authentication required", this.challenge(scope));
    }

    const route = routeOf(url.pathname);
    if (route) {
      const refusal = this.refusal(method, url, route, Number(req.headers["content-length"] ?? 0));
      if (refusal) {
        req.resume();
        this.note(refusal.quirk);
        return this.error(res, refusal.status, refusal.code, refusal.message, refusal.headers);
      }
      if (route.kind === "manifests" && method === "PUT") return this.putManifest(req, res, url);
      if (route.kind === "blobs" && method === "HEAD" && q.lyingBlobHead) {
        const up = await this.forwardBuffered("HEAD", url, req.headers);
        if (up.status === 404 && this.knownBlobs.has(route.rest)) {
          this.note("lying-head");
          res.writeHead(200, { "docker-content-digest": route.rest, "content-length": "0" });
          res.end();
          return;
        }
        res.writeHead(up.status, up.headers as Record<string, string>);
        res.end();
        return;
      }
      if (route.kind === "tags" && method === "GET" && q.tagPageSize)
        return this.pagedTags(url, route.name, res);
      if (route.kind === "blobs/uploads" && method === "PATCH") this.countPatch(route.rest, req);
    }
    this.forward(req, res, url);
  }

  /** A reason to refuse this request before it reaches the registry, if a quirk has one. */
  private refusal(
    method: string,
    url: URL,
    route: { name: string; kind: string; rest: string },
    bodyBytes: number,
  ):
    | { quirk: string; status: number; code: string; message: string; headers?: Record<string, string> }
    | undefined {
    const q = this.quirks;
    const write = method !== "GET" && method !== "HEAD";
    if (q.repositories && !q.repositories.has(route.name)) {
      return {
        quirk: "repository-missing",
        status: 404,
        code: "NAME_UNKNOWN",
        message: `The repository with name '${route.name}' does not exist in the registry with id '123456789012'`,
      };
    }
    if (q.maxDepth !== undefined && route.name.split("/").length > q.maxDepth) {
      return {
        quirk: "too-deep",
        status: 401,
        code: "UNAUTHORIZED",
        message: "authentication required",
        headers: {
          "www-authenticate": `Bearer realm="http://${this.host}/token",service="quirks",scope="repository:${route.name}:pull,push",error="insufficient_scope"`,
        },
      };
    }
    if (q.projects && write) {
      const project = route.name.split("/")[0]!;
      if (!q.projects.has(project)) {
        return {
          quirk: "project-missing",
          status: 401,
          code: "UNAUTHORIZED",
          message: `project ${project} not found: project ${project} not found`,
          headers: this.challenge(`repository:${route.name}:pull,push`),
        };
      }
    }
    if (route.kind === "blobs/uploads" && method === "POST" && url.searchParams.has("mount")) {
      const from = url.searchParams.get("from") ?? "";
      if (q.mountUnauthorized) {
        return {
          quirk: "mount-401",
          status: 401,
          code: "UNAUTHORIZED",
          message: `project ${from.split("/")[0]} not found: project ${from.split("/")[0]} not found`,
          headers: this.challenge(`repository:${from}:pull`),
        };
      }
    }
    if (route.kind === "referrers" && q.noReferrersApi) {
      return { quirk: "no-referrers-api", status: 404, code: "NOT_FOUND", message: "not found" };
    }
    if (route.kind === "blobs/uploads" && method === "PATCH" && route.rest) {
      const up = this.uploads.get(route.rest);
      if (q.singlePatch && up && up.patches >= 1) {
        return {
          quirk: "second-patch-refused",
          status: 400,
          code: "BLOB_UPLOAD_INVALID",
          message: "Stream uploads after first write are not allowed",
        };
      }
      if (q.minChunkBytes !== undefined && up && up.patches >= 1 && up.lastPatchBytes < q.minChunkBytes) {
        return {
          quirk: "chunk-too-small",
          status: 400,
          code: "BLOB_UPLOAD_INVALID",
          message: `Layer part size must be at least ${q.minChunkBytes} bytes (the previous part had ${up.lastPatchBytes})`,
        };
      }
    }
    if (route.kind === "blobs/uploads" && method === "PUT" && route.rest && q.minChunkBytes !== undefined) {
      // the closing PUT carries the last part: only parts before it are held to the minimum
      const up = this.uploads.get(route.rest);
      if (up && up.patches >= 1 && bodyBytes > 0 && up.lastPatchBytes < q.minChunkBytes) {
        return {
          quirk: "chunk-too-small",
          status: 400,
          code: "BLOB_UPLOAD_INVALID",
          message: `Layer part size must be at least ${q.minChunkBytes} bytes`,
        };
      }
    }
    return undefined;
  }

  private countPatch(uploadId: string, req: IncomingMessage): void {
    const up = this.uploads.get(uploadId) ?? { patches: 0, lastPatchBytes: 0 };
    up.patches++;
    up.lastPatchBytes = Number(req.headers["content-length"] ?? 0);
    this.uploads.set(uploadId, up);
    if (this.quirks.patchAnswers201) this.note("patch-201");
  }

  private authorized(req: IncomingMessage, url: URL, method: string): boolean {
    const q = this.quirks;
    if (!url.pathname.startsWith("/v2")) return true;
    const auth = req.headers.authorization ?? "";
    if (q.basicAuth) {
      const want = `Basic ${Buffer.from(`${q.basicAuth.user}:${q.basicAuth.password}`).toString("base64")}`;
      return auth === want;
    }
    if (!q.oneScopePerToken) return true;
    const granted = auth.startsWith("Bearer ") ? this.tokens.get(auth.slice(7)) : undefined;
    if (!granted) return false;
    const route = routeOf(url.pathname);
    if (!route) return true;
    const action = method === "GET" || method === "HEAD" ? "pull" : "push";
    if (!granted.has(`${route.name}:${action}`)) return false;
    const from = url.searchParams.get("from");
    if (method === "POST" && url.searchParams.has("mount") && from && !granted.has(`${from}:pull`)) {
      this.note("mount-without-source-scope");
      return false;
    }
    return true;
  }

  private token(url: URL, res: ServerResponse) {
    const scopes = url.searchParams
      .getAll("scope")
      .flatMap((s) => s.split(" "))
      .filter(Boolean);
    this.counts.tokenScopes.push(scopes.length);
    if (this.quirks.oneScopePerToken === "refuse" && scopes.length > 1) {
      this.note("multi-scope-refused");
      return this.error(res, 400, "DENIED", "only one scope per token request");
    }
    const use = this.quirks.oneScopePerToken ? scopes.slice(0, 1) : scopes;
    const granted = new Set<string>();
    for (const sc of use) {
      const m = /^repository:(.+):([a-z,*]+)$/.exec(sc);
      if (!m) continue;
      for (const a of m[2]!.split(",")) granted.add(`${m[1]}:${a}`);
    }
    const token = randomToken();
    this.tokens.set(token, granted);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ token, expires_in: 300 }));
  }

  private projectApi(req: IncomingMessage, url: URL, res: ServerResponse) {
    const projects = this.quirks.projects;
    if (!this.quirks.projectApi || !projects) {
      req.resume();
      return this.error(res, 404, "NOT_FOUND", "no such API");
    }
    if (req.method === "HEAD" || req.method === "GET") {
      req.resume();
      const name = url.searchParams.get("project_name") ?? "";
      res.writeHead(projects.has(name) ? 200 : 404, { "content-type": "application/json" });
      res.end(req.method === "GET" && projects.has(name) ? JSON.stringify([{ name }]) : undefined);
      return;
    }
    if (req.method === "POST") {
      const admin = this.quirks.projectAdmin;
      const want = admin && `Basic ${Buffer.from(`${admin.user}:${admin.password}`).toString("base64")}`;
      if (want && req.headers.authorization !== want) {
        req.resume();
        this.note("project-create-refused");
        this.error(res, 401, "UNAUTHORIZED", "unauthorized");
        return;
      }
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        let name = "";
        try {
          name = String(
            (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { project_name?: unknown }).project_name ??
              "",
          );
        } catch {
          // answered below
        }
        if (!/^[a-z0-9][a-z0-9._-]*$/.test(name))
          return this.error(res, 400, "BAD_REQUEST", "invalid project_name");
        if (projects.has(name)) return this.error(res, 409, "CONFLICT", `project ${name} already exists`);
        projects.add(name);
        this.note("project-created");
        res.writeHead(201, { location: `/api/v2.0/projects/${name}` });
        res.end();
      });
      return;
    }
    req.resume();
    this.error(res, 405, "METHOD_NOT_ALLOWED", "method not allowed");
  }

  private putManifest(req: IncomingMessage, res: ServerResponse, url: URL) {
    const q = this.quirks;
    const declared = Number(req.headers["content-length"] ?? 0);
    if (q.maxManifestBytes !== undefined && declared > q.maxManifestBytes) {
      req.resume();
      this.note("manifest-too-large");
      return this.error(res, 413, "MANIFEST_INVALID", `manifest over ${q.maxManifestBytes} bytes`);
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const type = String(req.headers["content-type"] ?? "")
        .split(";")[0]!
        .trim();
      if (q.ociOnly && DOCKER_TYPES.has(type)) {
        this.note("docker-refused");
        return this.error(res, 400, "MANIFEST_INVALID", "manifest invalid");
      }
      if (q.allowedConfigTypes) {
        let parsed: { config?: { mediaType?: string }; artifactType?: string } = {};
        try {
          parsed = JSON.parse(body.toString("utf8")) as typeof parsed;
        } catch {
          // the registry judges malformed JSON
        }
        const kinds = [parsed.artifactType, parsed.config?.mediaType].filter((k): k is string => !!k);
        const refused = kinds.find((k) => !q.allowedConfigTypes!.has(k));
        if (refused) {
          this.note("type-refused");
          return this.error(res, 400, "MANIFEST_INVALID", `manifest invalid: unsupported type ${refused}`);
        }
      }
      this.counts.writes++;
      const up = httpRequest(
        {
          ...this.target(url),
          method: "PUT",
          headers: { ...req.headers, "content-length": String(body.length) },
          agent: false,
        },
        (ur) => {
          res.writeHead(ur.statusCode ?? 502, this.outward(ur.headers));
          ur.pipe(res);
        },
      );
      up.on("error", () => res.destroy());
      up.end(body);
    });
  }

  private target(url: URL): { host: string; port: number; path: string } {
    const [host, port] = splitHost(this.upstream);
    return { host, port, path: `${url.pathname}${url.search}` };
  }

  private forwardBuffered(
    method: string,
    url: URL,
    headers: IncomingMessage["headers"],
  ): Promise<{ status: number; headers: IncomingMessage["headers"]; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const h = { ...headers };
      delete h.authorization;
      const r = httpRequest({ ...this.target(url), method, headers: h, agent: false }, (ur) => {
        const chunks: Buffer[] = [];
        ur.on("data", (c: Buffer) => chunks.push(c));
        ur.on("end", () =>
          resolve({ status: ur.statusCode ?? 502, headers: ur.headers, body: Buffer.concat(chunks) }),
        );
        ur.on("error", reject);
      });
      r.on("error", reject);
      r.end();
    });
  }

  private async pagedTags(url: URL, name: string, res: ServerResponse): Promise<void> {
    const size = this.quirks.tagPageSize!;
    const all = new URL(`/v2/${name}/tags/list?n=100000`, url);
    const up = await this.forwardBuffered("GET", all, {});
    if (up.status !== 200) {
      res.writeHead(up.status, up.headers as Record<string, string>);
      res.end(up.body);
      return;
    }
    const tags = ((JSON.parse(up.body.toString("utf8")) as { tags?: string[] | null }).tags ?? []).sort();
    const cursor = url.searchParams.get("next_page") ?? url.searchParams.get("last");
    const after = cursor ? Buffer.from(cursor, "base64url").toString("utf8") : undefined;
    const from = after === undefined ? 0 : tags.findIndex((t) => t > after);
    const asked = Number(url.searchParams.get("n") ?? size);
    const n = Math.min(size, asked > 0 ? asked : size);
    const page = from < 0 ? [] : tags.slice(from, from + n);
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (from >= 0 && from + n < tags.length) {
      this.note("tag-page");
      const next = Buffer.from(page[page.length - 1]!).toString("base64url");
      headers.link = `</v2/${name}/tags/list?next_page=${next}&n=${n}>; rel="next"`;
    }
    res.writeHead(200, this.outward(headers));
    res.end(JSON.stringify({ name, tags: page }));
  }

  private forward(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const q = this.quirks;
    const method = req.method ?? "GET";
    const headers = { ...req.headers };
    // the registry behind is anonymous: this proxy's own credentials stay here
    delete headers.authorization;
    const isWrite = method !== "GET" && method !== "HEAD";
    if (isWrite) this.counts.writes++;
    const singlePost =
      method === "POST" && /\/blobs\/uploads\/?$/.test(url.pathname) && url.searchParams.has("digest");
    if (singlePost && q.singlePostIgnored) this.note("single-post-ignored");
    const up = httpRequest({ ...this.target(url), method, headers, agent: false }, (ur) => {
      let status = ur.statusCode ?? 502;
      const route = routeOf(url.pathname);
      if (route?.kind === "blobs/uploads" && method === "PATCH" && status === 202 && q.patchAnswers201)
        status = 201;
      if (route?.kind === "blobs/uploads" && method === "PUT" && status === 201) {
        const digest = url.searchParams.get("digest");
        if (digest) this.knownBlobs.add(digest);
        if (route.rest) this.uploads.delete(route.rest);
      }
      if (route?.kind === "blobs/uploads" && method === "DELETE" && route.rest)
        this.uploads.delete(route.rest);
      res.writeHead(status, this.outward(ur.headers));
      ur.pipe(res);
    });
    up.on("error", () => res.destroy());
    res.on("close", () => up.destroy());
    req.pipe(up);
  }
}
